import type { Queryable } from './db.js';
import { FAILURE_COUNTED_STATUSES } from './sql-statuses.js';

/**
 * SQL of the workflows' execution counters (the seed's execution_count, success_count,
 * failure_count, average_duration_seconds, started_at, completed_at, plus cancelled and timed
 * out counts): a workflow's row plus the deltas that executions inserted since the last fold
 * (see the workflow-counters migration). Readers always add both, so a fold never shows.
 */

/** Deltas added up, under their own names: what readers add and what a fold moves. */
const DELTA_SUMS = `sum(ended) AS ended, sum(completed) AS completed, sum(failed) AS failed,
  sum(cancelled) AS cancelled, sum(timed_out) AS timed_out,
  sum(duration_seconds) AS duration_seconds, max(started_at) AS started_at,
  max(completed_at) AS completed_at`;

/** Joins `d`, the unfolded deltas of workflow `w`, to a query over `workflows w`. */
export const UNFOLDED_DELTAS = `LEFT JOIN LATERAL (
  SELECT ${DELTA_SUMS} FROM workflow_counter_deltas WHERE workflow_id = w.id) AS d ON true`;

const ENDED = 'coalesce(w.execution_count, 0) + coalesce(d.ended, 0)';

/** The counter columns of `w` with `d` (UNFOLDED_DELTAS) added, as the seed names them. */
export const COUNTER_COLUMNS = `
  greatest(w.started_at, d.started_at) AS started_at,
  greatest(w.completed_at, d.completed_at) AS completed_at,
  (${ENDED})::int AS execution_count,
  (coalesce(w.success_count, 0) + coalesce(d.completed, 0))::int AS success_count,
  (coalesce(w.failure_count, 0) + coalesce(d.failed, 0))::int AS failure_count,
  (w.cancelled_count + coalesce(d.cancelled, 0))::int AS cancelled_count,
  (w.timed_out_count + coalesce(d.timed_out, 0))::int AS timed_out_count,
  (w.total_duration_seconds + coalesce(d.duration_seconds, 0))::float8 AS total_duration_seconds,
  CASE WHEN ${ENDED} > 0
       THEN round((w.total_duration_seconds + coalesce(d.duration_seconds, 0)) / (${ENDED}), 2)
       ELSE 0 END AS average_duration_seconds`;

export interface WorkflowCounters {
  execution_count: number;
  success_count: number;
  failure_count: number;
  cancelled_count: number;
  timed_out_count: number;
  /** Of the ended executions; the average is rounded to hundredths, as the seed's column. */
  total_duration_seconds: number;
  average_duration_seconds: number;
  /** When its latest execution started (kept when retention purged the rows). */
  started_at: Date | null;
}

/** How many ended executions end each way. */
export type EndedCounts = Record<'completed' | 'failed' | 'cancelled' | 'timed_out', number>;

/** Ended executions by status, from counters: the seed's failure_count counts timed out too. */
export function endedCounts(
  counters: Pick<
    WorkflowCounters,
    'success_count' | 'failure_count' | 'cancelled_count' | 'timed_out_count'
  >,
): EndedCounts {
  return {
    completed: counters.success_count,
    failed: counters.failure_count - counters.timed_out_count,
    cancelled: counters.cancelled_count,
    timed_out: counters.timed_out_count,
  };
}

/** Ended executions by status over every workflow. */
export async function readEndedTotals(db: Queryable): Promise<EndedCounts> {
  const { rows } = await db.query<Parameters<typeof endedCounts>[0]>(
    `SELECT coalesce(sum(success_count), 0)::int AS success_count,
            coalesce(sum(failure_count), 0)::int AS failure_count,
            coalesce(sum(cancelled_count), 0)::int AS cancelled_count,
            coalesce(sum(timed_out_count), 0)::int AS timed_out_count
       FROM (SELECT ${COUNTER_COLUMNS} FROM workflows w ${UNFOLDED_DELTAS}) AS counters`,
  );
  return endedCounts(rows[0] as Parameters<typeof endedCounts>[0]);
}

/**
 * Takes an ended execution back out of its workflow's counters (it is reopened to run again):
 * the opposite of the delta its end inserted (wf_finish_execution).
 */
export async function uncountEnded(
  db: Queryable,
  execution: { workflow_id: string; status: string; duration_seconds: number | null },
): Promise<void> {
  await db.query(
    `INSERT INTO workflow_counter_deltas
       (workflow_id, ended, completed, failed, cancelled, timed_out, duration_seconds)
     VALUES ($1, -1, -($2 = 'completed')::int, -($2 = ANY($4::text[]))::int,
             -($2 = 'cancelled')::int, -($2 = 'timed_out')::int, -$3::numeric)`,
    [
      execution.workflow_id,
      execution.status,
      execution.duration_seconds ?? 0,
      FAILURE_COUNTED_STATUSES,
    ],
  );
}

/** A workflow's counters, or null when it does not exist. */
export async function readCounters(
  db: Queryable,
  workflowId: string,
): Promise<WorkflowCounters | null> {
  const { rows } = await db.query<WorkflowCounters>(
    `SELECT ${COUNTER_COLUMNS} FROM workflows w ${UNFOLDED_DELTAS} WHERE w.id = $1`,
    [workflowId],
  );
  return rows[0] ?? null;
}

/** Deltas folded per pass at most: a backlog is worked off over several passes. */
const FOLD_BATCH = 10_000;

/**
 * Adds the oldest deltas to their workflows' rows and deletes them, in one statement: each
 * delta counts exactly once, and readers (row plus deltas) see the same totals before and
 * after. Concurrent folds skip the deltas another one took. Returns how many were folded.
 */
export async function foldCounterDeltas(db: Queryable): Promise<number> {
  const { rows } = await db.query<{ folded: number }>(
    `WITH taken AS (
       DELETE FROM workflow_counter_deltas
        WHERE id IN (SELECT id FROM workflow_counter_deltas ORDER BY id LIMIT $1)
       RETURNING *
     ), sums AS (
       SELECT workflow_id, ${DELTA_SUMS} FROM taken GROUP BY workflow_id
     ), folded AS (
       UPDATE workflows w
          SET execution_count = coalesce(w.execution_count, 0) + s.ended,
              success_count = coalesce(w.success_count, 0) + s.completed,
              failure_count = coalesce(w.failure_count, 0) + s.failed,
              cancelled_count = w.cancelled_count + s.cancelled,
              timed_out_count = w.timed_out_count + s.timed_out,
              total_duration_seconds = w.total_duration_seconds + s.duration_seconds,
              average_duration_seconds = CASE
                WHEN coalesce(w.execution_count, 0) + s.ended > 0
                THEN round((w.total_duration_seconds + s.duration_seconds)
                           / (coalesce(w.execution_count, 0) + s.ended), 2)
                ELSE 0 END,
              started_at = greatest(w.started_at, s.started_at),
              completed_at = greatest(w.completed_at, s.completed_at)
         FROM sums s
        WHERE w.id = s.workflow_id
     )
     SELECT count(*)::int AS folded FROM taken`,
    [FOLD_BATCH],
  );
  return rows[0]?.folded ?? 0;
}
