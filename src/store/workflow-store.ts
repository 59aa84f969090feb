import { randomUUID } from 'node:crypto';
import { UNFINISHED_EXECUTION_STATUSES } from '../domain/statuses.js';
import type { StepDefinition, WorkflowDefinition } from '../domain/workflow-definition.js';
import { ValidationFailedError, WorkflowBusyError } from '../errors.js';
import { decodeCursor, toPage } from './cursor.js';
import { isPgError, type Pool, type PoolClient, type Queryable, withTransaction } from './db.js';
import { loadDefinition } from './executions.js';
import { UNFOLDED_DELTAS } from './workflow-counter-store.js';
import {
  COLUMNS,
  CURSOR_TIMESTAMP,
  type RawWorkflowRow,
  type StoredStepDefinition,
  type StoredWorkflow,
  storedStep,
  toRow,
  type WorkflowListQuery,
  type WorkflowPage,
  type WorkflowRow,
  type WorkflowWrite,
} from './workflow-rows.js';

/**
 * All SQL for workflow definitions: `workflows`, `workflow_steps` and `workflow_versions`.
 * Every state change runs in one transaction; every value travels as a query parameter.
 */

// Postgres refuses U+0000 in text (22021) and in jsonb (22P05): the request is at fault.
const CHARACTER_NOT_IN_REPERTOIRE = '22021';
const UNTRANSLATABLE_CHARACTER = '22P05';

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

/** A stored version as the history lists it. */
export interface VersionSummary {
  version: number;
  created_at: Date;
  created_by: string | null;
  summary: string | null;
}

/** Who stores a version, and how its one-line summary is made from the version before. */
export interface VersionAuthor {
  createdBy: string | null;
  summary: (previous: WorkflowDefinition | null, next: WorkflowDefinition) => string;
}

export class WorkflowStore {
  constructor(private readonly pool: Pool) {}

  /**
   * Inserts a workflow, its steps and its version 1 in one transaction. `build` makes what is
   * written inside it: it may read and lock with the transaction (the limits its steps name)
   * and throws to refuse the write.
   */
  async insert(
    build: (db: Queryable) => Promise<WorkflowWrite>,
    author: VersionAuthor,
  ): Promise<StoredWorkflow> {
    const id = newWorkflowId();
    try {
      return await withTransaction(this.pool, async (client) => {
        const write = await build(client);
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
        await this.insertVersion(client, id, 1, write.definition, {
          ...author,
          summary: author.summary(null, write.definition),
        });
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
   * state (it may read and lock with the transaction, and throws to refuse the write); the
   * version goes up by one and the new definition is pinned as that version.
   * Resolves to null when the workflow does not exist.
   */
  async update(
    id: string,
    change: (current: StoredWorkflow, db: Queryable) => Promise<WorkflowWrite>,
    author: VersionAuthor,
  ): Promise<StoredWorkflow | null> {
    if (!isLookupableId(id)) return null;
    try {
      return await withTransaction(this.pool, async (client) => {
        // NO KEY UPDATE serialises writers of this row without blocking executions being
        // inserted (their foreign key takes KEY SHARE, which DELETE's FOR UPDATE does block).
        const current = await this.read(client, id, 'FOR NO KEY UPDATE OF w');
        if (current === null) return null;
        const next = await change(current, client);
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
        const previous = await loadDefinition(client, id, current.version);
        await this.insertVersion(client, id, row.version, next.definition, {
          ...author,
          summary: author.summary(previous, next.definition),
        });
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
    return loadDefinition(this.pool, id, version);
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
    const steps = await db.query<{ definition: StoredStepDefinition }>(
      'SELECT definition FROM workflow_steps WHERE workflow_id = $1 ORDER BY position',
      [id],
    );
    return { ...row, steps: steps.rows.map((step) => storedStep(step.definition)) };
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

  /** A page of the workflow's versions, newest first; null when the workflow does not exist. */
  async listVersions(
    id: string,
    query: { limit: number; before?: number | undefined },
  ): Promise<VersionSummary[] | null> {
    if (!isLookupableId(id)) return null;
    const { rows } = await this.pool.query<VersionSummary & { exists: boolean }>(
      `SELECT v.version, v.created_at, v.created_by, v.summary
         FROM workflows w
         JOIN workflow_versions v ON v.workflow_id = w.id
        WHERE w.id = $1 AND ($2::int IS NULL OR v.version < $2::int)
        ORDER BY v.version DESC
        LIMIT $3`,
      [id, query.before ?? null, query.limit],
    );
    if (rows.length > 0) return rows;
    const found = await this.pool.query('SELECT 1 FROM workflows WHERE id = $1', [id]);
    return found.rowCount === 0 ? null : [];
  }

  /** One version with the definition it pinned, or null when it does not exist. */
  async getVersion(
    id: string,
    version: number,
  ): Promise<(VersionSummary & { definition: WorkflowDefinition }) | null> {
    if (!isLookupableId(id)) return null;
    const { rows } = await this.pool.query<VersionSummary & { definition: WorkflowDefinition }>(
      `SELECT version, created_at, created_by, summary, definition
         FROM workflow_versions WHERE workflow_id = $1 AND version = $2`,
      [id, version],
    );
    return rows[0] ?? null;
  }

  private async insertVersion(
    client: PoolClient,
    workflowId: string,
    version: number,
    definition: WorkflowDefinition,
    written: { createdBy: string | null; summary: string },
  ): Promise<void> {
    await client.query(
      `INSERT INTO workflow_versions (workflow_id, version, definition, created_by, summary)
       VALUES ($1, $2, $3, $4, $5)`,
      [workflowId, version, JSON.stringify(definition), written.createdBy, written.summary],
    );
  }
}
