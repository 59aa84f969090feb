import type { StepRunRow } from '../domain/execution.js';
import type { LimitRefusal } from '../domain/limits.js';
import { lockFlowKey } from './advisory-locks.js';
import type { Queryable } from './db.js';
import { RUN_COLUMNS } from './execution-columns.js';
import type { LimitRow } from './limit-store.js';
import { SQL_LIMIT_COUNTED_RUNS } from './sql-statuses.js';

/**
 * The runtime of named limits (docs/ARCHITECTURE.md, "Flow control"): slots counted from the
 * runs themselves (`running` with the key in `limit_keys`), changed only under the key's
 * advisory lock, so no limit is exceeded whatever the number of workers, and a killed
 * worker's slot is held by its run until the run is re-run or ends.
 */

/** Locks the keys (limitKeyText) until the transaction ends, in one order so two
 * transactions that lock several never deadlock. */
export async function lockLimitKeys(tx: Queryable, keys: readonly string[]): Promise<void> {
  for (const key of [...new Set(keys)].sort()) {
    await lockFlowKey(tx, 'limitKey', key);
  }
}

export async function limitsNamed(tx: Queryable, names: readonly string[]): Promise<LimitRow[]> {
  const { rows } = await tx.query<LimitRow>('SELECT * FROM limits WHERE name = ANY($1::text[])', [
    [...names],
  ]);
  return rows;
}

/** Runs holding a slot of `key`, but `exceptRunId`. Each statement repeats the partial index's
 * predicate (SQL_LIMIT_COUNTED_RUNS) so the planner may use it. */
export async function countHolders(
  tx: Queryable,
  key: string,
  exceptRunId: number,
): Promise<number> {
  const { rows } = await tx.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM step_executions
      WHERE limit_keys IS NOT NULL AND status IN ${SQL_LIMIT_COUNTED_RUNS}
        AND status = 'running' AND limit_keys @> ARRAY[$1]::text[] AND id <> $2`,
    [key, exceptRunId],
  );
  return rows[0]?.n ?? 0;
}

/** The run, still under this lease, enters its limits: it holds a slot of each key. */
export async function enterLimits(
  tx: Queryable,
  runId: number,
  leaseId: string,
  keys: readonly string[],
): Promise<boolean> {
  const { rowCount } = await tx.query(
    `UPDATE step_executions
        SET limit_keys = $3::text[],
            limit_wait = CASE WHEN limit_wait IS NULL THEN NULL
                              ELSE jsonb_build_object('attempt', limit_wait->'attempt',
                                                      'turns', limit_wait->'turns') END
      WHERE id = $1 AND lease_id = $2 AND status = 'running'`,
    [runId, leaseId, [...keys]],
  );
  return rowCount === 1;
}

/**
 * The run, still under this lease, is turned away: without a slot it waits (`waiting`,
 * wait_kind 'limit', no job), without a token it is queued again for `wakeAt`. Its lease,
 * deadline and worker are released either way.
 */
export async function turnAway(
  tx: Queryable,
  runId: number,
  leaseId: string,
  keys: readonly string[],
  wait: LimitRefusal,
  reason: string,
  wakeAt: Date | null,
): Promise<StepRunRow | null> {
  const { rows } = await tx.query<StepRunRow>(
    `WITH turned AS (
       SELECT $4::jsonb || jsonb_build_object('attempt', attempt, 'turns',
                CASE WHEN (limit_wait->>'attempt')::int = attempt
                     THEN (limit_wait->>'turns')::int ELSE 0 END + 1) AS wait
         FROM step_executions WHERE id = $1
     )
     UPDATE step_executions
        SET status = CASE WHEN $6::timestamptz IS NULL THEN 'waiting' ELSE 'queued' END,
            wait_kind = CASE WHEN $6::timestamptz IS NULL THEN 'limit' END,
            wait_spec = CASE WHEN $6::timestamptz IS NULL THEN turned.wait END,
            limit_keys = $3::text[], limit_wait = turned.wait, wait_reason = $5, wake_at = $6,
            lease_id = NULL, deadline_at = NULL, queued_at = now(), updated_at = now()
       FROM turned
      WHERE id = $1 AND lease_id = $2 AND status = 'running'
     RETURNING ${RUN_COLUMNS}`,
    [runId, leaseId, [...keys], JSON.stringify(wait), reason, wakeAt],
  );
  return rows[0] ?? null;
}

/** A run a freed slot lets go: queued again, with what its job needs. */
export type FreedRun = Pick<
  StepRunRow,
  'id' | 'step_id' | 'attempt' | 'execution_id' | 'limit_wait'
> & {
  workflow_id: string;
  workflow_version: number;
  priority: number;
  concurrency_key: string | null;
};

/**
 * Up to `count` runs waiting for a slot of `key`, in their executions' priority then arrival
 * order, queued again (their claim checks every limit once more). Runs another transaction
 * has locked are passed over; the sweep comes back for them.
 */
export async function releaseWaiters(
  tx: Queryable,
  key: string,
  count: number,
): Promise<FreedRun[]> {
  if (count <= 0) return [];
  const { rows } = await tx.query<FreedRun>(
    `WITH freed AS (
       SELECT s.id FROM step_executions s JOIN workflow_executions e ON e.id = s.execution_id
        WHERE s.limit_keys IS NOT NULL AND s.status IN ${SQL_LIMIT_COUNTED_RUNS}
          AND s.status = 'waiting' AND s.wait_kind = 'limit' AND s.limit_keys @> ARRAY[$1]::text[]
        ORDER BY e.priority, s.queued_at, s.id
        LIMIT $2
        FOR UPDATE OF s SKIP LOCKED
     )
     UPDATE step_executions s
        SET status = 'queued', wait_kind = NULL, wait_spec = NULL, wait_reason = NULL,
            queued_at = now(), updated_at = now()
       FROM freed, workflow_executions e
      WHERE s.id = freed.id AND e.id = s.execution_id
     RETURNING s.id, s.step_id, s.attempt, s.execution_id, s.limit_wait, e.workflow_id,
               e.workflow_version, e.priority, e.concurrency_key`,
    [key, count],
  );
  return rows;
}

/** The keys the execution's running runs hold: what its end frees. */
export async function heldKeys(tx: Queryable, executionId: string): Promise<string[]> {
  const { rows } = await tx.query<{ key: string }>(
    `SELECT DISTINCT unnest(limit_keys) AS key FROM step_executions
      WHERE execution_id = $1 AND limit_keys IS NOT NULL AND status IN ${SQL_LIMIT_COUNTED_RUNS}
        AND status = 'running'`,
    [executionId],
  );
  return rows.map((row) => row.key);
}

/** Keys with runs waiting for a slot that nothing moved for `idleAfterMs`. */
export async function idleWaitingKeys(
  db: Queryable,
  idleAfterMs: number,
  limit: number,
): Promise<string[]> {
  const { rows } = await db.query<{ key: string }>(
    `SELECT DISTINCT unnest(limit_keys) AS key FROM step_executions
      WHERE limit_keys IS NOT NULL AND status IN ${SQL_LIMIT_COUNTED_RUNS}
        AND status = 'waiting' AND wait_kind = 'limit'
        AND updated_at < now() - make_interval(secs => $1::double precision / 1000)
      LIMIT $2`,
    [idleAfterMs, limit],
  );
  return rows.map((row) => row.key);
}
