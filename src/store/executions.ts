import type { ExecutionRow, StepRunRow } from '../domain/execution.js';
import type { ExecutionStatus } from '../domain/statuses.js';
import { UNFINISHED_EXECUTION_STATUSES } from '../domain/statuses.js';
import type { ExecutionTraceContext } from '../domain/trace-context.js';
import type { WorkflowDefinition } from '../domain/workflow-definition.js';
import type { Queryable } from './db.js';
import {
  EXECUTION_COLUMNS,
  EXECUTION_VIEW_COLUMNS,
  firstAttempt,
  RUN_COLUMNS,
  reviveExecution,
  reviveRun,
} from './execution-columns.js';
import { type ExecutionFilter, filterConditions } from './execution-filter.js';
import { REOPENED_STEP_STATUSES } from './sql-statuses.js';
import { uncountEnded } from './workflow-counter-store.js';
import { type StoredStepDefinition, storedStep } from './workflow-rows.js';

/** SQL for execution rows: start, read, lock, list, status, end and reopen. Every function
 * takes the pool or a transaction. */

export async function loadDefinition(
  db: Queryable,
  workflowId: string,
  version: number,
): Promise<WorkflowDefinition | null> {
  const { rows } = await db.query<{
    definition: Omit<WorkflowDefinition, 'steps'> & { steps: StoredStepDefinition[] };
  }>('SELECT definition FROM workflow_versions WHERE workflow_id = $1 AND version = $2', [
    workflowId,
    version,
  ]);
  const definition = rows[0]?.definition;
  return definition ? { ...definition, steps: definition.steps.map(storedStep) } : null;
}

/** The workflow's status and current version: what an execute request pins. */
export async function findWorkflowHead(
  db: Queryable,
  workflowId: string,
): Promise<{ status: string; version: number; workflow_type: string } | null> {
  const { rows } = await db.query<{ status: string; version: number; workflow_type: string }>(
    'SELECT status, version, workflow_type FROM workflows WHERE id = $1',
    [workflowId],
  );
  return rows[0] ?? null;
}

export interface NewExecution {
  id: string;
  workflowId: string;
  version: number;
  input: unknown;
  idempotencyKey: string | null;
  timeoutSeconds: number | null;
  /** Set for a sub-workflow execution: the run that waits for it. */
  parent?: { executionId: string; runId: number; attempt: number } | undefined;
  /** What started it: `{type: 'api'|'event'|'schedule'|'subworkflow', ...}`. */
  trigger?: Record<string, unknown> | undefined;
  /** 1 (first) to 10 (last). */
  priority: number;
  /** Starts `queued`, holding no worker, until it is admitted (config.concurrency). */
  queued?: boolean;
  labels?: Record<string, string> | undefined;
  /** Its flow key, when known at its start, and why it is `__error__` if it is. */
  flowKey?: { key: string; error: string | null } | null;
  /** Its trace context (README "Tracing"); absent when tracing is off. */
  traceContext?: ExecutionTraceContext | undefined;
}

/**
 * Inserts a running execution of the workflow version `expected` pins, counts its start for
 * the workflow (a delta, see wf_finish_execution) and inserts its first iteration's runs
 * (insertIterationRuns), in one statement. Null, with nothing written, when the workflow is
 * not at that version with a runnable status any more, or the idempotency key was used.
 */
export async function insertExecution(
  db: Queryable,
  execution: NewExecution,
  expected: { runnable: readonly string[]; pinned?: boolean },
  runs: { stepIds: readonly string[]; queued: readonly string[] },
): Promise<{ row: ExecutionRow; runs: StepRunRow[] } | null> {
  const { rows } = await db.query<{
    execution: Record<string, unknown>;
    runs: Array<Record<string, unknown>> | null;
  }>({
    name: 'insert-execution',
    text: `WITH inserted AS (
             INSERT INTO workflow_executions
               (id, workflow_id, workflow_version, status, input_data, idempotency_key, started_at,
                deadline_at, parent_execution_id, parent_run_id, trigger, priority, concurrency_key,
                concurrency_key_error, labels, trace_context)
             SELECT $1, w.id, $3::int, CASE WHEN $14::boolean THEN 'queued' ELSE 'running' END,
                    $4, $5, now(),
                    CASE WHEN $6::int IS NULL THEN NULL ELSE now() + make_interval(secs => $6::int) END,
                    $7, $8, $9, $13, $15, $16, $17::jsonb, $19::jsonb
               FROM workflows w
              WHERE w.id = $2 AND (w.version = $3 OR $18::boolean) AND w.status = ANY($10::text[])
             ON CONFLICT (workflow_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING ${EXECUTION_COLUMNS}
           ), counted AS (
             INSERT INTO workflow_counter_deltas (workflow_id, started_at)
             SELECT workflow_id, started_at FROM inserted
           ), runs AS (
             INSERT INTO step_executions (execution_id, step_id, iteration, status, attempt, queued_at)
             SELECT i.id, s.step_id, 0, ${firstAttempt('s.step_id', '$12')}
               FROM inserted i, unnest($11::text[]) WITH ORDINALITY AS s(step_id, position)
              ORDER BY s.position
             RETURNING ${RUN_COLUMNS}
           )
           SELECT to_jsonb(i) AS execution,
                  (SELECT jsonb_agg(to_jsonb(r) ORDER BY r.id) FROM runs r) AS runs
             FROM inserted i`,
    values: [
      execution.id,
      execution.workflowId,
      execution.version,
      JSON.stringify(execution.input ?? {}),
      execution.idempotencyKey,
      execution.timeoutSeconds,
      execution.parent?.executionId ?? null,
      execution.parent?.runId ?? null,
      JSON.stringify({
        ...(execution.trigger ?? { type: 'api' }),
        ...(execution.parent ? { parent_attempt: execution.parent.attempt } : {}),
      }),
      expected.runnable,
      runs.stepIds,
      runs.queued,
      execution.priority,
      execution.queued === true,
      execution.flowKey?.key ?? null,
      execution.flowKey?.error ?? null,
      JSON.stringify(execution.labels ?? {}),
      // An explicitly asked older version: any stored one (the foreign key checks it exists).
      expected.pinned === true,
      execution.traceContext ? JSON.stringify(execution.traceContext) : null,
    ],
  });
  const inserted = rows[0];
  if (!inserted) return null;
  return {
    row: reviveExecution(inserted.execution),
    runs: (inserted.runs ?? []).map(reviveRun),
  };
}

export async function findByIdempotencyKey(
  db: Queryable,
  workflowId: string,
  key: string,
): Promise<ExecutionRow | null> {
  const { rows } = await db.query<ExecutionRow>(
    'SELECT * FROM workflow_executions WHERE workflow_id = $1 AND idempotency_key = $2',
    [workflowId, key],
  );
  return rows[0] ?? null;
}

export async function getExecution(db: Queryable, id: string): Promise<ExecutionRow | null> {
  const { rows } = await db.query<ExecutionRow>(
    `SELECT ${EXECUTION_VIEW_COLUMNS} FROM workflow_executions e WHERE e.id = $1`,
    [id],
  );
  return rows[0] ?? null;
}

/** Locks the execution row: every state change of an execution serialises on it. */
export async function lockExecution(db: Queryable, id: string): Promise<ExecutionRow | null> {
  const { rows } = await db.query<ExecutionRow>({
    name: 'lock-execution',
    text: `SELECT ${EXECUTION_COLUMNS} FROM workflow_executions WHERE id = $1 FOR UPDATE`,
    values: [id],
  });
  return rows[0] ?? null;
}

export interface ExecutionListQuery extends ExecutionFilter {
  /** Keyset position: rows strictly after (created_at, id) in descending order. */
  after?: { createdAt: string; id: string } | undefined;
  limit: number;
}

/** Newest first; the created_at text keeps microseconds so the cursor never skips a row. */
export async function listExecutions(
  db: Queryable,
  query: ExecutionListQuery,
): Promise<Array<ExecutionRow & { created_at_key: string }>> {
  const where = filterConditions(query, 4);
  const { rows } = await db.query<ExecutionRow & { created_at_key: string }>(
    `SELECT ${EXECUTION_VIEW_COLUMNS},
            to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at_key
       FROM workflow_executions e
      WHERE ${where.sql}
        AND ($2::timestamptz IS NULL OR (e.created_at, e.id) < ($2::timestamptz, $3::text))
      ORDER BY e.created_at DESC, e.id DESC
      LIMIT $1`,
    [query.limit, query.after?.createdAt ?? null, query.after?.id ?? null, ...where.values],
  );
  return rows;
}

export async function setExecutionStatus(
  db: Queryable,
  executionId: string,
  status: ExecutionStatus,
): Promise<void> {
  await db.query(
    'UPDATE workflow_executions SET status = $2, updated_at = now() WHERE id = $1 AND status <> $2',
    [executionId, status],
  );
}

export async function startIteration(
  db: Queryable,
  executionId: string,
  iteration: number,
): Promise<void> {
  await db.query(
    'UPDATE workflow_executions SET current_iteration = $2, updated_at = now() WHERE id = $1',
    [executionId, iteration],
  );
}

/** Ends an execution and counts it for its workflow (wf_finish_execution). */
export async function finishExecution(
  db: Queryable,
  execution: ExecutionRow,
  outcome: {
    status: 'completed' | 'failed' | 'cancelled' | 'timed_out';
    output?: unknown;
    error?: string;
    errorDetails?: unknown;
  },
): Promise<ExecutionRow> {
  const { rows } = await db.query<ExecutionRow>({
    name: 'finish-execution',
    text: `SELECT ${EXECUTION_COLUMNS} FROM wf_finish_execution($1, $2, $3, $4, $5)`,
    values: [
      execution.id,
      outcome.status,
      outcome.output === undefined ? null : JSON.stringify(outcome.output),
      outcome.error ?? null,
      outcome.errorDetails === undefined ? null : JSON.stringify(outcome.errorDetails),
    ],
  });
  return rows[0] as ExecutionRow;
}

/** Puts a failed execution back to running and its failed/cancelled runs back to pending. */
export async function reopenExecution(
  db: Queryable,
  execution: ExecutionRow,
  steps?: readonly string[],
): Promise<void> {
  // Without `steps`, the runs that failed (or were cancelled by the failure) run again; with
  // them (an edited retry, README "Edit and resume"), exactly those steps' runs do.
  const which = steps ? 'step_id = ANY($3::text[])' : 'status = ANY($3::text[])';
  await db.query(
    `UPDATE step_executions
        SET status = 'pending', first_attempt = attempt + 1, error = NULL, wait_reason = NULL,
            lease_id = NULL, completed_at = NULL, item_count = NULL, items = NULL,
            items_materialised = 0, items_active = 0, items_waiting = 0, items_done = 0,
            items_failed = 0, updated_at = now()
      WHERE execution_id = $1 AND iteration = $2 AND item_index = -1 AND ${which}`,
    [execution.id, execution.current_iteration, steps ?? REOPENED_STEP_STATUSES],
  );
  // Items of a for_each step that failed run again from scratch when the step runs again.
  await db.query(
    `DELETE FROM for_each_item_deltas d
      USING step_executions p
      WHERE d.parent_id = p.id AND p.execution_id = $1 AND p.iteration = $2
        AND p.item_index = -1 AND p.status = 'pending'`,
    [execution.id, execution.current_iteration],
  );
  await db.query(
    `DELETE FROM step_executions s
      WHERE s.execution_id = $1 AND s.iteration = $2 AND s.item_index >= 0
        AND EXISTS (SELECT 1 FROM step_executions p
                     WHERE p.execution_id = s.execution_id AND p.iteration = s.iteration
                       AND p.step_id = s.step_id AND p.item_index = -1 AND p.status = 'pending')`,
    [execution.id, execution.current_iteration],
  );
  await db.query(
    `UPDATE workflow_executions
        SET status = 'running', error = NULL, error_details = NULL, completed_at = NULL,
            duration_seconds = NULL, output_data = NULL, updated_at = now(),
            deadline_at = CASE WHEN deadline_at IS NULL THEN NULL
                               ELSE now() + (deadline_at - COALESCE(started_at, created_at)) END
      WHERE id = $1`,
    [execution.id],
  );
  // The ended execution was counted; reopening takes it back out until it ends again.
  await uncountEnded(db, execution);
}

export async function listUnfinishedChildren(
  db: Queryable,
  parentExecutionId: string,
): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM workflow_executions
      WHERE parent_execution_id = $1 AND status = ANY($2::text[])`,
    [parentExecutionId, UNFINISHED_EXECUTION_STATUSES],
  );
  return rows.map((row) => row.id);
}

/** Replaces an execution's input (an edited retry, README "Edit and resume"). */
export async function replaceInput(
  db: Queryable,
  executionId: string,
  input: unknown,
): Promise<void> {
  await db.query(
    'UPDATE workflow_executions SET input_data = $2, updated_at = now() WHERE id = $1',
    [executionId, JSON.stringify(input)],
  );
}

/** Replaces the recorded output of a completed step's own run in the current iteration. */
export async function replaceStepOutput(
  db: Queryable,
  execution: ExecutionRow,
  stepId: string,
  output: unknown,
): Promise<void> {
  await db.query(
    `UPDATE step_executions SET output = $4, updated_at = now()
      WHERE execution_id = $1 AND iteration = $2 AND step_id = $3 AND item_index = -1
        AND status = 'completed'`,
    [execution.id, execution.current_iteration, stepId, JSON.stringify(output)],
  );
}
