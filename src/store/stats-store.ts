import { FINISHED_EXECUTION_STATUSES } from '../domain/statuses.js';
import type { Queryable } from './db.js';
import { SQL_UNFINISHED_EXECUTIONS } from './sql-statuses.js';
import { endedCounts, readCounters, readEndedTotals } from './workflow-counter-store.js';

/**
 * SQL of the statistics endpoints. Every query reads an index range (see the monitoring
 * migration), so the cost grows with what is counted for one workflow or one time window,
 * not with the whole history.
 */

/** Unfinished executions are counted row by row, from their own small partial index, which
 * the predicate must spell as the index does. */
const UNFINISHED = SQL_UNFINISHED_EXECUTIONS;

export interface WorkflowHead {
  id: string;
  name: string;
  workflow_type: string;
  status: string;
  version: number;
}

export async function findWorkflowHead(db: Queryable, id: string): Promise<WorkflowHead | null> {
  const { rows } = await db.query<WorkflowHead>(
    'SELECT id, name, workflow_type, status, version FROM workflows WHERE id = $1',
    [id],
  );
  return rows[0] ?? null;
}

export interface ExecutionAggregate {
  counts: Record<string, number>;
  average_duration_seconds: number | null;
  last_execution_at: Date | null;
}

/**
 * Executions of one workflow by status, and the average duration of those that ended: the
 * ended ones from the workflow's counters, the unfinished ones counted from their own small
 * index; neither grows with the history.
 */
export async function workflowExecutionAggregate(
  db: Queryable,
  workflowId: string,
): Promise<ExecutionAggregate> {
  const [counters, unfinished, last] = await Promise.all([
    readCounters(db, workflowId),
    db.query<{ status: string; count: number }>(
      `SELECT status, count(*)::int AS count FROM workflow_executions
        WHERE workflow_id = $1 AND status IN ${UNFINISHED}
        GROUP BY status`,
      [workflowId],
    ),
    db.query<{ created_at: Date }>(
      `SELECT created_at FROM workflow_executions WHERE workflow_id = $1
        ORDER BY created_at DESC, id DESC LIMIT 1`,
      [workflowId],
    ),
  ]);
  return {
    counts: {
      ...Object.fromEntries(unfinished.rows.map((row) => [row.status, row.count])),
      ...(counters ? endedCounts(counters) : {}),
    },
    average_duration_seconds:
      counters && counters.execution_count > 0
        ? counters.total_duration_seconds / counters.execution_count
        : null,
    // The counters remember the latest start when retention purged every row.
    last_execution_at: last.rows[0]?.created_at ?? counters?.started_at ?? null,
  };
}

export interface StepAggregateRow {
  step_id: string;
  runs: number;
  completed: number;
  failures: number;
  skipped: number;
  cancelled: number;
  attempts: number;
  retries: number;
  average_duration_seconds: number | null;
}

export interface WindowAggregate {
  /** Executions in the window: the `window` newest, or all when fewer. */
  executions: number;
  /** Median and 95th percentile duration of the ended ones. */
  p50: number | null;
  p95: number | null;
  /** Per step: runs that started, their outcomes, attempts and retries (for_each items
   * included) and the average duration of the completed ones. */
  steps: StepAggregateRow[];
}

/**
 * What a workflow's `window` most recent executions say, in one statement over one read of
 * the window: its cost is bounded by the window however long the history.
 */
export async function workflowWindowAggregate(
  db: Queryable,
  workflowId: string,
  window: number,
): Promise<WindowAggregate> {
  const { rows } = await db.query<
    { executions: number; p50: number | null; p95: number | null } & {
      [K in keyof StepAggregateRow]: StepAggregateRow[K] | null;
    }
  >(
    `WITH recent AS MATERIALIZED (
       SELECT id, status, duration_seconds FROM workflow_executions WHERE workflow_id = $1
        ORDER BY created_at DESC, id DESC LIMIT $2
     ), durations AS (
       SELECT count(*)::int AS executions,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_seconds)
                FILTER (WHERE status = ANY($3::text[]))::float8 AS p50,
              percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_seconds)
                FILTER (WHERE status = ANY($3::text[]))::float8 AS p95
         FROM recent
     ), steps AS (
       SELECT s.step_id,
              count(*) FILTER (WHERE s.item_index = -1 AND s.started_at IS NOT NULL)::int AS runs,
              count(*) FILTER (WHERE s.item_index = -1 AND s.status = 'completed')::int AS completed,
              count(*) FILTER (WHERE s.item_index = -1 AND s.status = 'failed')::int AS failures,
              count(*) FILTER (WHERE s.item_index = -1 AND s.status = 'skipped')::int AS skipped,
              count(*) FILTER (WHERE s.item_index = -1 AND s.status = 'cancelled')::int AS cancelled,
              coalesce(sum(s.attempt), 0)::int AS attempts,
              coalesce(sum(greatest(s.attempt - 1, 0)), 0)::int AS retries,
              (avg(extract(epoch FROM s.completed_at - s.started_at))
                 FILTER (WHERE s.item_index = -1 AND s.status = 'completed'))::float8
                AS average_duration_seconds
         FROM recent r
         JOIN step_executions s ON s.execution_id = r.id
        GROUP BY s.step_id
     )
     SELECT d.executions, d.p50, d.p95, s.* FROM durations d LEFT JOIN steps s ON true`,
    [workflowId, window, FINISHED_EXECUTION_STATUSES],
  );
  const first = rows[0];
  return {
    executions: first?.executions ?? 0,
    p50: first?.p50 ?? null,
    p95: first?.p95 ?? null,
    steps: rows.filter((row) => row.step_id !== null) as StepAggregateRow[],
  };
}

export interface SystemAggregate {
  workflows: Array<{ status: string; workflow_type: string; count: number }>;
  executions: Array<{ status: string; count: number }>;
  window: {
    started_last_hour: number;
    started_last_day: number;
    finished_last_5_minutes: number;
    finished_last_hour: number;
    finished_last_day: number;
  };
  steps: {
    finished_last_hour: number;
    average_queue_seconds: number | null;
    average_duration_seconds: number | null;
  };
}

/** Service-wide counts: workflows, executions by status, recent activity, step latency. */
export async function systemAggregate(db: Queryable): Promise<SystemAggregate> {
  const [workflows, ended, unfinished, window, steps] = await Promise.all([
    db.query<{ status: string; workflow_type: string; count: number }>(
      `SELECT status, workflow_type, count(*)::int AS count FROM workflows
        GROUP BY status, workflow_type`,
    ),
    // Ended executions from the workflows' counters: nothing here grows with the history.
    readEndedTotals(db),
    db.query<{ status: string; count: number }>(
      `SELECT status, count(*)::int AS count FROM workflow_executions
        WHERE status IN ${UNFINISHED} GROUP BY status`,
    ),
    db.query<SystemAggregate['window']>(
      `SELECT
         (SELECT count(*) FROM workflow_executions
           WHERE created_at >= now() - interval '1 hour')::int AS started_last_hour,
         (SELECT count(*) FROM workflow_executions
           WHERE created_at >= now() - interval '1 day')::int AS started_last_day,
         (SELECT count(*) FROM workflow_executions
           WHERE completed_at >= now() - interval '5 minutes')::int AS finished_last_5_minutes,
         (SELECT count(*) FROM workflow_executions
           WHERE completed_at >= now() - interval '1 hour')::int AS finished_last_hour,
         (SELECT count(*) FROM workflow_executions
           WHERE completed_at >= now() - interval '1 day')::int AS finished_last_day`,
    ),
    // Queue latency of first attempts: a retry re-stamps queued_at but not started_at.
    db.query<SystemAggregate['steps']>(
      `SELECT count(*)::int AS finished_last_hour,
              (avg(extract(epoch FROM started_at - queued_at))
                 FILTER (WHERE attempt = 1 AND started_at >= queued_at))::float8
                AS average_queue_seconds,
              (avg(extract(epoch FROM completed_at - started_at))
                 FILTER (WHERE status = 'completed' AND started_at IS NOT NULL))::float8
                AS average_duration_seconds
         FROM step_executions
        WHERE completed_at >= now() - interval '1 hour'`,
    ),
  ]);
  return {
    workflows: workflows.rows,
    executions: [
      ...Object.entries(ended).map(([status, count]) => ({ status, count })),
      ...unfinished.rows,
    ],
    window: window.rows[0] as SystemAggregate['window'],
    steps: steps.rows[0] as SystemAggregate['steps'],
  };
}
