import type { ExecutionRow } from '../domain/execution.js';
import { SLOT_HOLDING_EXECUTION_STATUSES } from '../domain/statuses.js';
import { lockFlowKey, workflowKey } from './advisory-locks.js';
import type { Queryable } from './db.js';
import { EXECUTION_COLUMNS } from './execution-columns.js';
import { sqlList } from './sql-statuses.js';

/**
 * The slots of executions under their workflow's `config.concurrency` (docs/ARCHITECTURE.md,
 * "Flow control"): counted from the rows themselves, never from a counter that could drift,
 * and changed only under the (workflow, key) advisory lock.
 */

/** The partial index's predicate (workflow_executions_concurrency_idx), spelt as it is. */
const HOLDING = sqlList(SLOT_HOLDING_EXECUTION_STATUSES);

/**
 * Serialises, until the transaction ends, every admission and every end under this workflow
 * and key: an end that frees a slot then always sees the executions queued before it.
 */
export function lockExecutionKey(tx: Queryable, workflowId: string, key: string) {
  return lockFlowKey(tx, 'executionKey', workflowKey(workflowId, key));
}

export async function setConcurrencyKey(
  tx: Queryable,
  executionId: string,
  key: string,
  error: string | null,
): Promise<void> {
  await tx.query(
    `UPDATE workflow_executions SET concurrency_key = $2, concurrency_key_error = $3, updated_at = now()
      WHERE id = $1`,
    [executionId, key, error],
  );
}

/**
 * Admits the executions queued under this workflow and key, in priority then arrival order,
 * while fewer than `limit` hold a slot: each becomes `running`. Those another transaction has
 * locked are passed over (their own admission or the sweep takes them). Returns their ids.
 */
export async function admitQueued(
  tx: Queryable,
  workflowId: string,
  key: string,
  limit: number,
): Promise<string[]> {
  const { rows } = await tx.query<{ id: string }>(
    `WITH holders AS (
       SELECT count(*)::int AS n FROM workflow_executions
        WHERE workflow_id = $1 AND concurrency_key = $2 AND status IN ${HOLDING}
     ), admitted AS (
       SELECT id FROM workflow_executions
        WHERE workflow_id = $1 AND concurrency_key = $2 AND status = 'queued'
        ORDER BY priority, created_at, id
        LIMIT GREATEST($3 - (SELECT n FROM holders), 0)
        FOR UPDATE SKIP LOCKED
     )
     UPDATE workflow_executions e SET status = 'running', updated_at = now()
       FROM admitted WHERE e.id = admitted.id
     RETURNING e.id`,
    [workflowId, key, limit],
  );
  return rows.map((row) => row.id);
}

/** The oldest executions holding a slot of this key that no other transaction has locked,
 * locked: what `cancel_oldest` cancels. */
export async function lockOldestHolders(
  tx: Queryable,
  workflowId: string,
  key: string,
  count: number,
): Promise<ExecutionRow[]> {
  const { rows } = await tx.query<ExecutionRow>(
    `SELECT ${EXECUTION_COLUMNS} FROM workflow_executions
      WHERE workflow_id = $1 AND concurrency_key = $2 AND status IN ${HOLDING}
      ORDER BY created_at, id LIMIT $3
      FOR UPDATE SKIP LOCKED`,
    [workflowId, key, count],
  );
  return rows;
}

/** Where a queued execution stands: the slots its key holds, and how many go before it. */
export interface SlotStanding {
  in_use: number;
  ahead: number;
  key_error: string | null;
}

export async function slotStanding(db: Queryable, execution: ExecutionRow): Promise<SlotStanding> {
  const { rows } = await db.query<SlotStanding>(
    `SELECT (SELECT count(*)::int FROM workflow_executions
              WHERE workflow_id = e.workflow_id AND concurrency_key = e.concurrency_key
                AND status IN ${HOLDING}) AS in_use,
            (SELECT count(*)::int FROM workflow_executions q
              WHERE q.workflow_id = e.workflow_id AND q.concurrency_key = e.concurrency_key
                AND q.status = 'queued'
                AND (q.priority, q.created_at, q.id) < (e.priority, e.created_at, e.id)) AS ahead,
            e.concurrency_key_error AS key_error
       FROM workflow_executions e WHERE e.id = $1`,
    [execution.id],
  );
  return rows[0] ?? { in_use: 0, ahead: 0, key_error: null };
}

/**
 * Queued executions nothing moved for `idleAfterMs`: those never keyed (their admission job
 * was lost) by id, and the keys with a line, once each (a slot may have freed while an end
 * passed over a locked one). The sweep admits them again.
 */
export async function findIdleQueued(
  db: Queryable,
  idleAfterMs: number,
  limit: number,
): Promise<Array<{ id: string; keyed: boolean }>> {
  const { rows } = await db.query<{ id: string; keyed: boolean }>(
    `SELECT DISTINCT ON (workflow_id, COALESCE(concurrency_key, id)) id, concurrency_key IS NOT NULL AS keyed
       FROM workflow_executions
      WHERE status = 'queued' AND updated_at < now() - make_interval(secs => $1::double precision / 1000)
      ORDER BY workflow_id, COALESCE(concurrency_key, id), priority, created_at, id
      LIMIT $2`,
    [idleAfterMs, limit],
  );
  return rows;
}
