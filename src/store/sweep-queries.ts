import type { StepRunRow, WaitingRun } from '../domain/execution.js';
import { ADVANCING_EXECUTION_STATUSES, FINISHED_EXECUTION_STATUSES } from '../domain/statuses.js';
import type { Queryable } from './db.js';
import { FOR_EACH_AGGREGATE } from './execution-columns.js';
import { RUNNING_EXECUTION_STATUSES, SQL_UNFINISHED_EXECUTIONS } from './sql-statuses.js';

/**
 * What the recovery sweep looks for: runs and executions nothing moved for a while, attempts
 * and executions past their deadline, and waits whose answer was missed. Every function takes
 * the pool or a transaction.
 */

/** A run with the workflow version its execution pinned, as the sweep needs to enqueue it. */
export type PinnedRun = StepRunRow & {
  workflow_id: string;
  workflow_version: number;
  priority: number;
  concurrency_key: string | null;
};

/** The instant `$1` milliseconds ago: the statements' staleness or grace parameter. */
const MS_AGO = 'now() - make_interval(secs => $1::float8 / 1000)';

/**
 * Runs of running (not paused) executions for which `condition` holds, oldest `orderBy` first,
 * with what enqueueing them needs. $1 is the caller's duration (see MS_AGO), $2 the limit.
 */
async function findRunsOfRunningExecutions<Row extends StepRunRow = PinnedRun>(
  db: Queryable,
  condition: string,
  orderBy: 's.updated_at' | 's.deadline_at',
  ms: number,
  limit: number,
): Promise<Row[]> {
  const { rows } = await db.query<Row>(
    `SELECT s.*, e.workflow_id, e.workflow_version, e.priority, e.concurrency_key
       FROM step_executions s JOIN workflow_executions e ON e.id = s.execution_id
      WHERE ${condition} AND e.status = ANY($3::text[])
      ORDER BY ${orderBy} LIMIT $2`,
    [ms, limit, RUNNING_EXECUTION_STATUSES],
  );
  return rows;
}

/** Runs that are queued and due, of running executions, that nobody touched for a while. */
const STALE_QUEUED = `s.status = 'queued' AND s.updated_at < ${MS_AGO}`;
/** Running runs and sleeping runs whose job may have been lost (Redis flushed, worker gone). */
const STALE_ACTIVE = `NOT ${FOR_EACH_AGGREGATE}
        AND ((s.status = 'running' AND s.wait_kind IS NULL AND s.updated_at < ${MS_AGO})
          OR (s.status = 'waiting' AND s.wake_at IS NOT NULL AND s.wake_at < ${MS_AGO}))`;
/** Attempts past their deadline: the holder died or hung, or an outside answer never came. */
const OVERDUE = `(s.status = 'running' OR (s.status = 'waiting' AND s.wake_at IS NULL))
        AND NOT ${FOR_EACH_AGGREGATE} AND s.deadline_at < ${MS_AGO}`;
/** Runs waiting for an event that nothing touched for a while: the sweep looks for a match. */
const IDLE_EVENT_WAIT = `s.status = 'waiting' AND s.wait_kind = 'event' AND s.updated_at < ${MS_AGO}`;

export function findStaleQueuedRuns(db: Queryable, staleAfterMs: number, limit: number) {
  return findRunsOfRunningExecutions(db, STALE_QUEUED, 's.updated_at', staleAfterMs, limit);
}

export function findStaleActiveRuns(db: Queryable, staleAfterMs: number, limit: number) {
  return findRunsOfRunningExecutions(db, STALE_ACTIVE, 's.updated_at', staleAfterMs, limit);
}

export function findOverdueRuns(db: Queryable, graceMs: number, limit: number) {
  return findRunsOfRunningExecutions(db, OVERDUE, 's.deadline_at', graceMs, limit);
}

export function findIdleEventWaits(db: Queryable, idleAfterMs: number, limit: number) {
  return findRunsOfRunningExecutions<WaitingRun<'event'>>(
    db,
    IDLE_EVENT_WAIT,
    's.updated_at',
    idleAfterMs,
    limit,
  );
}

export async function findOverdueExecutions(db: Queryable, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM workflow_executions
      WHERE status IN ${SQL_UNFINISHED_EXECUTIONS} AND deadline_at < now()
      ORDER BY deadline_at LIMIT $1`,
    [limit],
  );
  return rows.map((row) => row.id);
}

/** Unfinished executions nothing touched for a while: the sweep re-runs the scheduler on them. */
export async function findIdleExecutions(
  db: Queryable,
  idleAfterMs: number,
  limit: number,
): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM workflow_executions
      WHERE status = ANY($3::text[]) AND updated_at < ${MS_AGO}
      ORDER BY updated_at LIMIT $2`,
    [idleAfterMs, limit, RUNNING_EXECUTION_STATUSES],
  );
  return rows.map((row) => row.id);
}

export async function touchRuns(db: Queryable, runIds: readonly number[]): Promise<void> {
  if (runIds.length === 0) return;
  await db.query('UPDATE step_executions SET updated_at = now() WHERE id = ANY($1::bigint[])', [
    runIds,
  ]);
}

export async function touchExecution(db: Queryable, executionId: string): Promise<void> {
  await db.query('UPDATE workflow_executions SET updated_at = now() WHERE id = $1', [executionId]);
}

/** Runs waiting for a sub-workflow whose execution has ended: the parent missed the news. */
export async function findEndedChildWaits(
  db: Queryable,
  limit: number,
): Promise<Array<{ child_id: string }>> {
  const { rows } = await db.query<{ child_id: string }>(
    `SELECT c.id AS child_id FROM step_executions s
       JOIN workflow_executions c ON c.parent_run_id = s.id
       JOIN workflow_executions p ON p.id = s.execution_id
      WHERE s.status = 'waiting' AND s.wait_kind = 'child' AND (s.wait_spec->>'execution_id') = c.id
        AND c.status = ANY($2::text[]) AND p.status = ANY($3::text[])
      LIMIT $1`,
    [limit, FINISHED_EXECUTION_STATUSES, ADVANCING_EXECUTION_STATUSES],
  );
  return rows;
}

/** Unfinished executions whose parent execution has ended: they must be cancelled. */
export async function findOrphanedChildren(db: Queryable, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT c.id FROM workflow_executions c JOIN workflow_executions p ON p.id = c.parent_execution_id
      WHERE c.status IN ${SQL_UNFINISHED_EXECUTIONS} AND p.status = ANY($2::text[])
      LIMIT $1`,
    [limit, FINISHED_EXECUTION_STATUSES],
  );
  return rows.map((row) => row.id);
}

/** Locks the run that waits for this child execution, if it still does. */
export async function lockChildWait(
  db: Queryable,
  runId: number,
  childExecutionId: string,
): Promise<WaitingRun<'child'> | null> {
  const { rows } = await db.query<WaitingRun<'child'>>(
    `SELECT * FROM step_executions
      WHERE id = $1 AND status = 'waiting' AND wait_kind = 'child' AND wait_spec->>'execution_id' = $2
      FOR UPDATE`,
    [runId, childExecutionId],
  );
  return rows[0] ?? null;
}

/** Locks a run that waits for an event, if it still does at this attempt. */
export async function lockEventWait(
  db: Queryable,
  runId: number,
  attempt: number,
): Promise<WaitingRun<'event'> | null> {
  const { rows } = await db.query<WaitingRun<'event'>>(
    `SELECT * FROM step_executions
      WHERE id = $1 AND attempt = $2 AND status = 'waiting' AND wait_kind = 'event' FOR UPDATE`,
    [runId, attempt],
  );
  return rows[0] ?? null;
}
