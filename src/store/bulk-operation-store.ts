import type {
  ActionParams,
  BulkAction,
  BulkOperation,
  ItemOutcome,
  SkipReason,
} from '../domain/bulk-actions.js';
import type { Pool, Queryable } from './db.js';
import { withTransaction } from './db.js';
import { type ExecutionFilter, filterConditions } from './execution-filter.js';
import { SQL_UNFINISHED_EXECUTIONS } from './sql-statuses.js';

/**
 * SQL of bulk operations and their items (see the bulk-operations migration). Every change
 * that a lease guards names the owner, so a process that lost its lease changes nothing.
 */

const COLUMN_NAMES = [
  'id',
  'action',
  'filter',
  'params',
  'reason',
  'requested_by',
  'status',
  'matched',
  'done',
  'failed',
  'skipped',
  'skipped_by_reason',
  'snapshot_done',
  'error',
  'created_at',
  'started_at',
  'ended_at',
];
const OPERATION_COLUMNS = COLUMN_NAMES.join(', ');

export interface NewOperation {
  id: string;
  action: BulkAction;
  filter: Record<string, unknown>;
  params: ActionParams;
  reason: string | null;
  requestedBy: string | null;
}

export async function insertOperation(db: Queryable, op: NewOperation): Promise<BulkOperation> {
  const { rows } = await db.query<BulkOperation>(
    `INSERT INTO bulk_operations (id, action, filter, params, reason, requested_by)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${OPERATION_COLUMNS}`,
    [
      op.id,
      op.action,
      JSON.stringify(op.filter),
      JSON.stringify(op.params),
      op.reason,
      op.requestedBy,
    ],
  );
  return rows[0] as BulkOperation;
}

export async function getOperation(db: Queryable, id: string): Promise<BulkOperation | null> {
  const { rows } = await db.query<BulkOperation>(
    `SELECT ${OPERATION_COLUMNS} FROM bulk_operations WHERE id = $1`,
    [id],
  );
  return rows[0] ?? null;
}

/** The newest operations first. */
export async function listOperations(db: Queryable, limit: number): Promise<BulkOperation[]> {
  const { rows } = await db.query<BulkOperation>(
    `SELECT ${OPERATION_COLUMNS} FROM bulk_operations ORDER BY created_at DESC, id DESC LIMIT $1`,
    [limit],
  );
  return rows;
}

/** Stops a running operation: items not acted on yet stay so. Null when it is missing. */
export async function cancelOperation(db: Queryable, id: string): Promise<BulkOperation | null> {
  await db.query(
    `UPDATE bulk_operations SET status = 'cancelled', ended_at = now(), lease_owner = NULL
      WHERE id = $1 AND status = 'running'`,
    [id],
  );
  return getOperation(db, id);
}

/**
 * Takes the oldest running operation that no live process holds (never claimed, its lease
 * lapsed, or already this owner's), for `leaseMs`. `takenOver` says another process held it,
 * so its counts must be taken again from the items.
 */
export async function claimOperation(
  db: Queryable,
  owner: string,
  leaseMs: number,
): Promise<(BulkOperation & { taken_over: boolean }) | null> {
  const { rows } = await db.query<BulkOperation & { taken_over: boolean }>(
    `WITH picked AS (
       SELECT id, lease_owner AS previous FROM bulk_operations
        WHERE status = 'running'
          AND (lease_until IS NULL OR lease_until < now() OR lease_owner = $1)
        ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED
     )
     UPDATE bulk_operations o
        SET lease_owner = $1, lease_until = now() + make_interval(secs => $2::float8 / 1000),
            started_at = coalesce(o.started_at, now())
       FROM picked WHERE o.id = picked.id
     RETURNING ${COLUMN_NAMES.map((name) => `o.${name}`).join(', ')},
               (picked.previous IS NOT NULL AND picked.previous <> $1) AS taken_over`,
    [owner, leaseMs],
  );
  return rows[0] ?? null;
}

/** Extends the lease; false when the operation is no longer running or no longer ours. */
export async function renewLease(
  db: Queryable,
  id: string,
  owner: string,
  leaseMs: number,
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE bulk_operations SET lease_until = now() + make_interval(secs => $3::float8 / 1000)
      WHERE id = $1 AND lease_owner = $2 AND status = 'running'`,
    [id, owner, leaseMs],
  );
  return rowCount === 1;
}

/**
 * Lists the next page of matching executions into the operation's items, newest first from
 * where the last page stopped, and moves the position on, in one transaction under the
 * operation's lock: a crash resumes the snapshot from the last committed page. Executions
 * created after the operation are never matched. False when the lease was lost.
 */
export async function snapshotPage(
  pool: Pool,
  op: { id: string; created_at: Date },
  owner: string,
  filter: ExecutionFilter,
  pageSize: number,
): Promise<boolean> {
  return withTransaction(pool, async (tx) => {
    const { rows: held } = await tx.query<{
      snapshot_after_created: string | null;
      snapshot_after_id: string | null;
    }>(
      `SELECT snapshot_after_created, snapshot_after_id FROM bulk_operations
        WHERE id = $1 AND lease_owner = $2 AND status = 'running' FOR UPDATE`,
      [op.id, owner],
    );
    const position = held[0];
    if (!position) return false;
    const where = filterConditions(filter, 6);
    await tx.query(
      `WITH page AS (
         SELECT e.id, e.created_at,
                to_char(e.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_key
           FROM workflow_executions e
          WHERE ${where.sql} AND e.created_at <= $2
            AND ($3::timestamptz IS NULL OR (e.created_at, e.id) < ($3::timestamptz, $4::text))
          ORDER BY e.created_at DESC, e.id DESC LIMIT $5
       ), added AS (
         INSERT INTO bulk_operation_items (operation_id, execution_id)
         SELECT $1, id FROM page ON CONFLICT DO NOTHING RETURNING 1
       ), last AS (
         SELECT created_key, id FROM page ORDER BY created_at, id LIMIT 1
       )
       UPDATE bulk_operations
          SET matched = matched + (SELECT count(*) FROM added),
              snapshot_after_created = coalesce((SELECT created_key FROM last), snapshot_after_created),
              snapshot_after_id = coalesce((SELECT id FROM last), snapshot_after_id),
              snapshot_done = (SELECT count(*) FROM page) < $5
        WHERE id = $1`,
      [
        op.id,
        op.created_at,
        position.snapshot_after_created,
        position.snapshot_after_id,
        pageSize,
        ...where.values,
      ],
    );
    return true;
  });
}

/** Items not acted on yet. */
export async function pendingItems(db: Queryable, id: string, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ execution_id: string }>(
    `SELECT execution_id FROM bulk_operation_items
      WHERE operation_id = $1 AND outcome IS NULL LIMIT $2`,
    [id, limit],
  );
  return rows.map((row) => row.execution_id);
}

/**
 * Records an item's outcome in the transaction that acted on its execution. False, and
 * nothing written, when it already has one or the operation stopped running: the caller then
 * rolls its action back.
 */
export async function recordOutcome(
  tx: Queryable,
  id: string,
  executionId: string,
  outcome: ItemOutcome,
): Promise<boolean> {
  const detail =
    outcome.outcome === 'skipped'
      ? outcome.reason
      : outcome.outcome === 'failed'
        ? outcome.detail
        : null;
  const { rowCount } = await tx.query(
    `UPDATE bulk_operation_items SET outcome = $3, detail = $4
      WHERE operation_id = $1 AND execution_id = $2 AND outcome IS NULL
        AND EXISTS (SELECT 1 FROM bulk_operations WHERE id = $1 AND status = 'running')`,
    [id, executionId, outcome.outcome, detail],
  );
  return rowCount === 1;
}

/** What a batch came to, added to the operation's counts. */
export interface BatchCounts {
  done: number;
  failed: number;
  skipped: Partial<Record<SkipReason, number>>;
}

/** Adds a batch's counts, if the lease is still ours (a new holder counts the items again). */
export async function addCounts(
  db: Queryable,
  id: string,
  owner: string,
  counts: BatchCounts,
): Promise<void> {
  const skipped = Object.values(counts.skipped).reduce((sum, count) => sum + count, 0);
  await db.query(
    `UPDATE bulk_operations o
        SET done = done + $3, failed = failed + $4, skipped = skipped + $5,
            skipped_by_reason = (
              SELECT coalesce(jsonb_object_agg(k, coalesce((o.skipped_by_reason->>k)::int, 0)
                                                   + coalesce(($6::jsonb->>k)::int, 0)), '{}')
                FROM (SELECT jsonb_object_keys(o.skipped_by_reason)
                      UNION SELECT jsonb_object_keys($6::jsonb)) AS keys(k))
      WHERE id = $1 AND lease_owner = $2`,
    [id, owner, counts.done, counts.failed, skipped, JSON.stringify(counts.skipped)],
  );
}

/** Counts the operation's items again: after a takeover, and when it ends. */
export async function recount(db: Queryable, id: string): Promise<void> {
  await db.query(
    `UPDATE bulk_operations o
        SET matched = c.matched, done = c.done, failed = c.failed, skipped = c.skipped,
            skipped_by_reason = c.by_reason
       FROM (SELECT count(*)::int AS matched,
                    count(*) FILTER (WHERE outcome = 'done')::int AS done,
                    count(*) FILTER (WHERE outcome = 'failed')::int AS failed,
                    count(*) FILTER (WHERE outcome = 'skipped')::int AS skipped,
                    (SELECT coalesce(jsonb_object_agg(detail, n), '{}') FROM (
                       SELECT detail, count(*)::int AS n FROM bulk_operation_items
                        WHERE operation_id = $1 AND outcome = 'skipped' GROUP BY detail) AS r)
                      AS by_reason
               FROM bulk_operation_items WHERE operation_id = $1) AS c
      WHERE o.id = $1`,
    [id],
  );
}

/** Ends a running operation this owner holds: completed, or failed with the error. */
export async function endOperation(
  db: Queryable,
  id: string,
  owner: string,
  status: 'completed' | 'failed',
  error: string | null = null,
): Promise<void> {
  await db.query(
    `UPDATE bulk_operations SET status = $3, error = $4, ended_at = now(), lease_owner = NULL
      WHERE id = $1 AND lease_owner = $2 AND status = 'running'`,
    [id, owner, status, error],
  );
}

/** How many of these executions have not ended. */
export async function unfinishedAmong(db: Queryable, ids: readonly string[]): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM workflow_executions
      WHERE id = ANY($1::text[]) AND status IN ${SQL_UNFINISHED_EXECUTIONS}`,
    [ids],
  );
  return rows[0]?.n ?? 0;
}

/**
 * Deletes up to `limit` operations that ended more than `days` days ago, with their items:
 * retention's share of bulk actions. Few operations a pass, since each may hold thousands of
 * items; people start them, so a few an hour keeps up.
 */
export async function purgeEndedOperations(
  db: Queryable,
  days: number,
  limit: number,
): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM bulk_operations WHERE id IN (
       SELECT id FROM bulk_operations
        WHERE status <> 'running' AND ended_at < now() - make_interval(days => $1)
        ORDER BY ended_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
    [days, limit],
  );
  return rowCount ?? 0;
}
