import { randomUUID } from 'node:crypto';
import { UNFINISHED_EXECUTION_STATUSES, type WorkflowStatus } from '../domain/statuses.js';
import type {
  StepDefinition,
  WorkflowDefinition,
  WorkflowType,
} from '../domain/workflow-definition.js';
import { ValidationFailedError, WorkflowBusyError } from '../errors.js';
import type { StepView, WorkflowPage, WorkflowRow, WorkflowView } from '../schemas/workflows.js';
import { decodeCursor, toPage } from './cursor.js';
import { isPgError, type Pool, type PoolClient, type Queryable, withTransaction } from './db.js';
import { COUNTER_COLUMNS, UNFOLDED_DELTAS } from './workflow-counter-store.js';

export type {
  StepView,
  WorkflowPage,
  WorkflowRow,
  WorkflowSummary,
  WorkflowView,
} from '../schemas/workflows.js';

/**
 * All SQL for workflow definitions: `workflows`, `workflow_steps` and `workflow_versions`.
 * Every state change runs in one transaction; every value travels as a query parameter.
 */

/** A workflow with its normalised step definitions, in definition order. */
export interface StoredWorkflow extends WorkflowRow {
  steps: StepDefinition[];
}

/** The fields a create or update writes, with the validated definition. */
export interface WorkflowWrite {
  name: string;
  description: string | null;
  workflow_type: WorkflowType;
  status: WorkflowStatus;
  config: Record<string, unknown>;
  metadata: Record<string, unknown>;
  tags: string[];
  definition: WorkflowDefinition;
}

export interface WorkflowListQuery {
  status?: WorkflowStatus | undefined;
  workflow_type?: WorkflowType | undefined;
  /** The workflow carries every one of these tags. */
  tags?: string[] | undefined;
  /** Case-insensitive substring of the name. */
  search?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

// Postgres refuses U+0000 in text (22021) and in jsonb (22P05): the request is at fault.
const CHARACTER_NOT_IN_REPERTOIRE = '22021';
const UNTRANSLATABLE_CHARACTER = '22P05';

/** Select from `workflows w ${UNFOLDED_DELTAS}`: the counters include unfolded deltas. */
const COLUMNS = `
  w.id, w.name, w.description, w.workflow_type, coalesce(w.status, 'draft') AS status,
  coalesce(w.config, '{}'::jsonb) AS config, coalesce(w.metadata, '{}'::jsonb) AS metadata,
  coalesce(w.tags, '{}'::text[]) AS tags, w.created_at, w.updated_at, w.version,
  ${COUNTER_COLUMNS}`;

/**
 * The cursor needs created_at with its full microsecond precision: a JS Date keeps only
 * milliseconds, and rows inserted in one transaction share created_at, so a truncated value
 * would skip or repeat rows at page boundaries.
 */
const CURSOR_TIMESTAMP = `to_char(w.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

interface RawWorkflowRow {
  id: string;
  name: string;
  description: string | null;
  workflow_type: string;
  status: string;
  config: Record<string, unknown>;
  metadata: Record<string, unknown>;
  tags: string[];
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  completed_at: Date | null;
  execution_count: number;
  success_count: number;
  failure_count: number;
  average_duration_seconds: number;
  version: number;
}

function iso(value: Date | null): string | null {
  return value === null ? null : value.toISOString();
}

function toRow(raw: RawWorkflowRow): WorkflowRow {
  return {
    id: raw.id,
    name: raw.name,
    description: raw.description,
    workflow_type: raw.workflow_type as WorkflowType,
    status: raw.status as WorkflowStatus,
    config: raw.config,
    metadata: raw.metadata,
    tags: raw.tags,
    created_at: raw.created_at.toISOString(),
    updated_at: raw.updated_at.toISOString(),
    started_at: iso(raw.started_at),
    completed_at: iso(raw.completed_at),
    execution_count: raw.execution_count,
    success_count: raw.success_count,
    failure_count: raw.failure_count,
    average_duration_seconds: raw.average_duration_seconds,
    version: raw.version,
  };
}

/** Shapes a stored step definition for the API. */
export function toStepView(step: StepDefinition): StepView {
  return {
    id: step.id,
    name: step.name,
    step_type: step.step_type,
    agent_id: step.agent_id,
    config: step.config,
    dependencies: step.dependencies ?? [],
    condition: step.condition,
    for_each: step.for_each,
    for_each_concurrency: step.for_each_concurrency,
    timeout_seconds: step.timeout_seconds,
    retry_count: step.retry_count,
    retry_backoff: step.retry_backoff,
    continue_on_error: step.continue_on_error,
  };
}

/** Shapes a stored workflow for the API. */
export function toWorkflowView(workflow: StoredWorkflow): WorkflowView {
  const { steps, ...row } = workflow;
  return { ...row, steps: steps.map(toStepView) };
}

function newWorkflowId(): string {
  return `wf_${randomUUID().replaceAll('-', '')}`;
}

function newStepRowId(): string {
  return `ws_${randomUUID().replaceAll('-', '')}`;
}

function rethrowUnstorable(error: unknown): never {
  if (isPgError(error, CHARACTER_NOT_IN_REPERTOIRE) || isPgError(error, UNTRANSLATABLE_CHARACTER)) {
    throw new ValidationFailedError([
      { path: 'body', message: 'contains the character U+0000, which cannot be stored' },
    ]);
  }
  throw error;
}

/** Postgres rejects U+0000 in text: such an id cannot exist, so it is simply not found. */
function isLookupableId(id: string): boolean {
  return id.length > 0 && !id.includes('\u0000');
}

export class WorkflowStore {
  constructor(private readonly pool: Pool) {}

  /** Inserts a workflow, its steps and its version 1 in one transaction. */
  async insert(write: WorkflowWrite): Promise<StoredWorkflow> {
    const id = newWorkflowId();
    try {
      return await withTransaction(this.pool, async (client) => {
        await client.query(
          `INSERT INTO workflows
             (id, name, description, workflow_type, status, config, metadata, tags, version)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 1)`,
          [
            id,
            write.name,
            write.description,
            write.workflow_type,
            write.status,
            write.config,
            write.metadata,
            write.tags,
          ],
        );
        await this.writeSteps(client, id, write.definition.steps);
        await this.insertVersion(client, id, 1, write.definition);
        const row = (await this.readRow(client, id, '')) as WorkflowRow;
        return { ...row, steps: write.definition.steps };
      });
    } catch (error) {
      rethrowUnstorable(error);
    }
  }

  /** The workflow with its steps, or null when there is none with this id. */
  async get(id: string): Promise<StoredWorkflow | null> {
    if (!isLookupableId(id)) return null;
    return this.read(this.pool, id, '');
  }

  /**
   * Applies `change` to the current workflow under a row lock, so concurrent updates apply one
   * after the other and each sees the previous one's result. `change` returns the complete new
   * state; the version goes up by one and the new definition is pinned as that version.
   * Resolves to null when the workflow does not exist.
   */
  async update(
    id: string,
    change: (current: StoredWorkflow) => WorkflowWrite,
  ): Promise<StoredWorkflow | null> {
    if (!isLookupableId(id)) return null;
    try {
      return await withTransaction(this.pool, async (client) => {
        // NO KEY UPDATE serialises writers of this row without blocking executions being
        // inserted (their foreign key takes KEY SHARE, which DELETE's FOR UPDATE does block).
        const current = await this.read(client, id, 'FOR NO KEY UPDATE OF w');
        if (current === null) return null;
        const next = change(current);
        await client.query(
          `UPDATE workflows
              SET name = $2, description = $3, workflow_type = $4, status = $5, config = $6,
                  metadata = $7, tags = $8, version = version + 1, updated_at = now()
            WHERE id = $1`,
          [
            id,
            next.name,
            next.description,
            next.workflow_type,
            next.status,
            next.config,
            next.metadata,
            next.tags,
          ],
        );
        const row = (await this.readRow(client, id, '')) as WorkflowRow;
        await this.writeSteps(client, id, next.definition.steps);
        await this.insertVersion(client, id, row.version, next.definition);
        return { ...row, steps: next.definition.steps };
      });
    } catch (error) {
      rethrowUnstorable(error);
    }
  }

  /**
   * Deletes a workflow with its steps, versions and finished executions. Throws
   * WorkflowBusyError while it has unfinished executions. Resolves to false when not found.
   */
  async delete(id: string): Promise<boolean> {
    if (!isLookupableId(id)) return false;
    return withTransaction(this.pool, async (client) => {
      // FOR UPDATE conflicts with the KEY SHARE lock an execution insert takes through its
      // foreign key: an execution created concurrently is either counted here or refused.
      const locked = await client.query('SELECT 1 FROM workflows WHERE id = $1 FOR UPDATE', [id]);
      if (locked.rowCount === 0) return false;
      const { rows } = await client.query<{ active: number }>(
        `SELECT count(*)::int AS active FROM workflow_executions
          WHERE workflow_id = $1 AND status = ANY($2::text[])`,
        [id, UNFINISHED_EXECUTION_STATUSES],
      );
      const active = rows[0]?.active ?? 0;
      if (active > 0) throw new WorkflowBusyError(id, active);
      await client.query('DELETE FROM workflows WHERE id = $1', [id]);
      return true;
    });
  }

  /** A page of workflows, newest first, filtered; keyset-paginated by (created_at, id). */
  async list(query: WorkflowListQuery): Promise<WorkflowPage> {
    const params: unknown[] = [];
    const param = (value: unknown): string => {
      params.push(value);
      return `$${params.length}`;
    };
    const conditions: string[] = [];
    if (query.status !== undefined) conditions.push(`w.status = ${param(query.status)}`);
    if (query.workflow_type !== undefined) {
      conditions.push(`w.workflow_type = ${param(query.workflow_type)}`);
    }
    if (query.tags !== undefined && query.tags.length > 0) {
      conditions.push(`w.tags @> ${param(query.tags)}::text[]`);
    }
    if (query.search !== undefined && query.search.length > 0) {
      const escaped = query.search.replace(/[\\%_]/g, (character) => `\\${character}`);
      conditions.push(`w.name ILIKE ${param(`%${escaped}%`)}`);
    }
    if (query.cursor !== undefined) {
      const position = decodeCursor(query.cursor);
      conditions.push(
        `(w.created_at, w.id) < (${param(position.createdAt)}::timestamptz, ${param(position.id)})`,
      );
    }
    const where = conditions.length > 0 ? `WHERE ${conditions.join(' AND ')}` : '';
    // decodeCursor accepts only real instants in the form we issue, so Postgres cannot
    // reject a cursor's values here.
    const { rows } = await this.pool.query<
      RawWorkflowRow & { cursor_ts: string; steps_count: number }
    >(
      `SELECT ${COLUMNS}, ${CURSOR_TIMESTAMP} AS cursor_ts,
                (SELECT count(*)::int FROM workflow_steps s WHERE s.workflow_id = w.id) AS steps_count
           FROM workflows w ${UNFOLDED_DELTAS}
           ${where}
          ORDER BY w.created_at DESC, w.id DESC
          LIMIT ${param(query.limit + 1)}`,
      params,
    );
    return toPage(
      rows,
      query.limit,
      (raw) => ({ createdAt: raw.cursor_ts, id: raw.id }),
      (raw) => ({ ...toRow(raw), steps_count: raw.steps_count }),
    );
  }

  /** The definition a version pinned, or null when the workflow or version does not exist. */
  async getDefinition(id: string, version: number): Promise<WorkflowDefinition | null> {
    if (!isLookupableId(id)) return null;
    const { rows } = await this.pool.query<{ definition: WorkflowDefinition }>(
      'SELECT definition FROM workflow_versions WHERE workflow_id = $1 AND version = $2',
      [id, version],
    );
    return rows[0]?.definition ?? null;
  }

  private async readRow(
    db: Queryable,
    id: string,
    lock: '' | 'FOR NO KEY UPDATE OF w',
  ): Promise<WorkflowRow | null> {
    const { rows } = await db.query<RawWorkflowRow>(
      `SELECT ${COLUMNS} FROM workflows w ${UNFOLDED_DELTAS} WHERE w.id = $1 ${lock}`,
      [id],
    );
    return rows[0] === undefined ? null : toRow(rows[0]);
  }

  private async read(
    db: Queryable,
    id: string,
    lock: '' | 'FOR NO KEY UPDATE OF w',
  ): Promise<StoredWorkflow | null> {
    const row = await this.readRow(db, id, lock);
    if (row === null) return null;
    const steps = await db.query<{ definition: StepDefinition }>(
      'SELECT definition FROM workflow_steps WHERE workflow_id = $1 ORDER BY position',
      [id],
    );
    return { ...row, steps: steps.rows.map((step) => step.definition) };
  }

  /**
   * Makes the workflow's step rows exactly `steps`: rows of removed steps go, the others are
   * upserted by their stable key, so a step that stays keeps its row id. The seed's columns
   * are filled from the definition (dependencies: the declared ones, else []).
   */
  private async writeSteps(
    client: PoolClient,
    workflowId: string,
    steps: StepDefinition[],
  ): Promise<void> {
    const keys = steps.map((step) => step.id);
    await client.query(
      'DELETE FROM workflow_steps WHERE workflow_id = $1 AND NOT (step_key = ANY($2::text[]))',
      [workflowId, keys],
    );
    if (steps.length === 0) return;
    await client.query(
      `INSERT INTO workflow_steps AS ws
         (id, workflow_id, name, step_type, agent_id, config, dependencies, timeout_seconds,
          retry_count, step_key, position, definition)
       SELECT s.row_id, $1, s.d->>'name', s.d->>'step_type', s.d->>'agent_id',
              coalesce(s.d->'config', '{}'::jsonb),
              ARRAY(SELECT jsonb_array_elements_text(
                      coalesce(nullif(s.d->'dependencies', 'null'::jsonb), '[]'::jsonb))),
              (s.d->>'timeout_seconds')::int, (s.d->>'retry_count')::int,
              s.d->>'id', s.position - 1, s.d
         FROM ROWS FROM (jsonb_array_elements($2::jsonb), unnest($3::text[]))
              WITH ORDINALITY AS s(d, row_id, position)
       ON CONFLICT (workflow_id, step_key) DO UPDATE
          SET name = excluded.name, step_type = excluded.step_type,
              agent_id = excluded.agent_id, config = excluded.config,
              dependencies = excluded.dependencies, timeout_seconds = excluded.timeout_seconds,
              retry_count = excluded.retry_count, position = excluded.position,
              definition = excluded.definition, updated_at = now()`,
      [workflowId, JSON.stringify(steps), steps.map(() => newStepRowId())],
    );
  }

  private async insertVersion(
    client: PoolClient,
    workflowId: string,
    version: number,
    definition: WorkflowDefinition,
  ): Promise<void> {
    await client.query(
      'INSERT INTO workflow_versions (workflow_id, version, definition) VALUES ($1, $2, $3)',
      [workflowId, version, JSON.stringify(definition)],
    );
  }
}
