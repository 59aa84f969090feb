import type { Queryable } from './db.js';

/** SQL of the execution change outbox (filled by triggers, see the monitoring migration). */

/** One committed change of an execution or of one of its step runs, with what it belongs to. */
export interface OutboxRow {
  id: number;
  execution_id: string;
  /** Null for a change of the execution itself. */
  run_id: number | null;
  step_id: string | null;
  iteration: number | null;
  item_index: number | null;
  status: string;
  previous_status: string | null;
  attempt: number | null;
  detail: Record<string, unknown>;
  occurred_at: Date;
  /** Null when the execution is gone (its workflow was deleted). */
  workflow_id: string | null;
  workflow_version: number | null;
}

/** An outbox row with the types its pinned definition gives it (null when unknown). */
export interface DescribedOutboxRow extends OutboxRow {
  workflow_type: string | null;
  step_type: string | null;
}

// One relay at a time across processes, so rows are published in id order.
const RELAY_LOCK_KEY = 7_210_492_603;

/** Whether anything waits in the outbox: a cheap check before taking the relay lock. */
export async function outboxHasRows(db: Queryable): Promise<boolean> {
  const { rows } = await db.query('SELECT 1 FROM execution_event_outbox LIMIT 1');
  return rows.length > 0;
}

/** Takes the relay lock for the caller's transaction; false when another relay holds it. */
export async function tryRelayLock(tx: Queryable): Promise<boolean> {
  const { rows } = await tx.query<{ locked: boolean }>(
    'SELECT pg_try_advisory_xact_lock($1) AS locked',
    [RELAY_LOCK_KEY],
  );
  return rows[0]?.locked === true;
}

/**
 * Deletes the oldest rows and returns them in order, with the workflow version their
 * execution pinned. Inside a transaction: publish, then commit (or roll back to keep).
 */
export async function takeOutboxBatch(tx: Queryable, limit: number): Promise<OutboxRow[]> {
  const { rows } = await tx.query<OutboxRow>(
    `WITH batch AS (
       DELETE FROM execution_event_outbox
        WHERE id IN (SELECT id FROM execution_event_outbox ORDER BY id LIMIT $1)
       RETURNING *
     )
     SELECT b.*, e.workflow_id, e.workflow_version
       FROM batch b LEFT JOIN workflow_executions e ON e.id = b.execution_id
      ORDER BY b.id`,
    [limit],
  );
  return rows;
}

/** Drops rows nobody could publish for a long time (Redis away): the outbox stays bounded. */
export async function dropOutboxRowsOlderThan(db: Queryable, seconds: number): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM execution_event_outbox
      WHERE id IN (SELECT id FROM execution_event_outbox
                    WHERE occurred_at < now() - make_interval(secs => $1::int)
                    ORDER BY id LIMIT 10000)`,
    [seconds],
  );
  return rowCount ?? 0;
}
