import type { ExecutionRow, StepRunRow } from '../domain/execution.js';
import { SQL_UNFINISHED_EXECUTIONS } from './sql-statuses.js';

/**
 * The column lists and SQL fragments the execution and run statements share, and the revival
 * of rows that come back as JSON.
 */

/**
 * The columns of ExecutionRow and StepRunRow, named rather than `*`: hot statements are
 * prepared once per connection, and Postgres refuses to run a prepared statement whose result
 * type changed, as `*` would after a migration adds a column under a running service.
 */
export const EXECUTION_COLUMNS = `id, workflow_id, status, input_data, output_data, step_results, started_at,
  completed_at, error, error_details, duration_seconds, created_at, updated_at, workflow_version,
  idempotency_key, current_iteration, deadline_at, parent_execution_id, parent_run_id, trigger, priority,
  concurrency_key, debounce_until, labels`;
export const RUN_COLUMNS = `id, execution_id, step_id, iteration, item_index, status, attempt, first_attempt,
  lease_id, item, item_count, items_materialised, items_active, items_waiting, items_done, items_failed, output, error, wait_reason, wait_kind, wait_spec, worker_id,
  heartbeat_at, wake_at, deadline_at, queued_at, started_at, completed_at, created_at, updated_at,
  limit_keys, limit_wait`;

/** An execution as readers see it: step_results as stored once it ended, derived before
 * (steps record nothing on the execution row: see wf_step_results). */
export const EXECUTION_VIEW_COLUMNS = `e.*, CASE WHEN e.status IN ${SQL_UNFINISHED_EXECUTIONS}
  THEN wf_step_results(e.id) ELSE e.step_results END AS step_results`;

/** `columns` as `alias.column` each, for statements that join. */
export function qualified(alias: string, columns: string): string {
  return columns.replace(/\w+/g, (column) => `${alias}.${column}`);
}

/**
 * The step's own run of a for_each step once expanded: an aggregate of its item runs that the
 * state manager finishes itself. No worker may claim it and the sweep must never enqueue it,
 * though it is `running` with no lease and no job while its items run.
 */
export const FOR_EACH_AGGREGATE = '(s.item_index = -1 AND s.item_count IS NOT NULL)';

/** A new attempt forgets what the previous one waited for. */
export const CLEAR_WAIT =
  'wait_kind = NULL, wait_spec = NULL, worker_id = NULL, heartbeat_at = NULL';

/**
 * status, attempt and queued_at of a new run of step `stepId`: queued for its first attempt
 * when `queued` (a text[] parameter) names it, as queueRuns would leave it, else pending.
 */
export function firstAttempt(stepId: string, queued: string): string {
  const isQueued = `${stepId} = ANY(${queued}::text[])`;
  return `CASE WHEN ${isQueued} THEN 'queued' ELSE 'pending' END,
          CASE WHEN ${isQueued} THEN 1 ELSE 0 END,
          CASE WHEN ${isQueued} THEN now() END`;
}

/** Timestamps of a row that comes back as JSON, turned into Dates as pg turns them. */
const EXECUTION_DATES = [
  'started_at',
  'completed_at',
  'created_at',
  'updated_at',
  'deadline_at',
  'debounce_until',
];
const RUN_DATES = [
  'heartbeat_at',
  'wake_at',
  'deadline_at',
  'queued_at',
  'started_at',
  'completed_at',
  'created_at',
  'updated_at',
];

function revive<Row>(json: Record<string, unknown>, dates: readonly string[]): Row {
  for (const key of dates) {
    const value = json[key];
    if (typeof value === 'string') json[key] = new Date(value);
  }
  return json as Row;
}

/** An execution row that came back as JSON (to_jsonb), as pg would have returned it. */
export function reviveExecution(json: Record<string, unknown>): ExecutionRow {
  return revive<ExecutionRow>(json, EXECUTION_DATES);
}

/** A run row that came back as JSON (to_jsonb), as pg would have returned it. */
export function reviveRun(json: Record<string, unknown>): StepRunRow {
  return revive<StepRunRow>(json, RUN_DATES);
}
