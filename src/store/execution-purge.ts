import { FINISHED_EXECUTION_STATUSES, UNFINISHED_EXECUTION_STATUSES } from '../domain/statuses.js';
import type { Queryable } from './db.js';

/**
 * SQL that deletes finished executions for good (retention, bulk delete; docs/ARCHITECTURE.md,
 * "Retention"). Nothing here touches a workflow's counters: the statistics' totals of ended
 * executions are counters, not counts of rows, so they stay what they were.
 */

export interface PurgeCounts {
  executions: number;
  step_runs: number;
}

/** Ids of the descendants (sub-workflow children, their children...) of each of `roots`. */
async function descendantsOf(
  tx: Queryable,
  roots: readonly string[],
): Promise<Map<string, string[]>> {
  const { rows } = await tx.query<{ root: string; id: string }>(
    `WITH RECURSIVE tree(root, id) AS (
       SELECT c.parent_execution_id, c.id FROM workflow_executions c
        WHERE c.parent_execution_id = ANY($1::text[])
       UNION ALL
       SELECT t.root, c.id FROM tree t JOIN workflow_executions c ON c.parent_execution_id = t.id
     )
     SELECT root, id FROM tree`,
    [roots],
  );
  const byRoot = new Map<string, string[]>();
  for (const row of rows) byRoot.set(row.root, [...(byRoot.get(row.root) ?? []), row.id]);
  return byRoot;
}

/**
 * Of `ids`, those that may go: finished, not locked by another transaction, no parent still
 * running (it may yet read its child), and every descendant finished and lockable, since
 * deleting an execution cascades to its children. Returns them with their descendants.
 */
async function lockPurgeable(
  tx: Queryable,
  ids: readonly string[],
): Promise<{ roots: string[]; all: string[] }> {
  // SKIP LOCKED passes over rows of other transactions only: rows this transaction locked
  // already (bulk delete locks before it calls) are taken as they are.
  const { rows } = await tx.query<{ id: string }>(
    `SELECT e.id FROM workflow_executions e
      WHERE e.id = ANY($1::text[]) AND e.status = ANY($2::text[])
        AND NOT EXISTS (SELECT 1 FROM workflow_executions p
                         WHERE p.id = e.parent_execution_id AND p.status = ANY($3::text[]))
      ORDER BY e.id
        FOR UPDATE OF e SKIP LOCKED`,
    [ids, FINISHED_EXECUTION_STATUSES, UNFINISHED_EXECUTION_STATUSES],
  );
  const locked = rows.map((row) => row.id);
  if (locked.length === 0) return { roots: [], all: [] };
  const descendants = await descendantsOf(tx, locked);
  if (descendants.size === 0) return { roots: locked, all: locked };
  const { rows: finished } = await tx.query<{ id: string }>(
    `SELECT id FROM workflow_executions WHERE id = ANY($1::text[]) AND status = ANY($2::text[])
      ORDER BY id FOR UPDATE SKIP LOCKED`,
    [[...new Set([...descendants.values()].flat())], FINISHED_EXECUTION_STATUSES],
  );
  const gone = new Set(finished.map((row) => row.id));
  const roots = locked.filter((id) =>
    (descendants.get(id) ?? []).every((child) => gone.has(child)),
  );
  const all = new Set(roots.flatMap((id) => [id, ...(descendants.get(id) ?? [])]));
  return { roots, all: [...all] };
}

/**
 * Deletes, in the caller's transaction, those of `ids` that are finished and have no unfinished
 * descendant, passing over rows another transaction holds locked; with them go their
 * sub-workflow descendants (the foreign key cascades), step runs and task tokens (cascades),
 * the for_each count deltas of their runs, their rows in the event outbox and their recorded
 * manual actions (execution-actions.ts). `deleted` lists
 * the ids of `ids` deleted; the counts include the descendants that went with them. Works
 * when the caller already holds the row locks in the same transaction.
 */
export async function purgeFinishedExecutions(
  tx: Queryable,
  ids: readonly string[],
): Promise<PurgeCounts & { deleted: string[] }> {
  if (ids.length === 0) return { executions: 0, step_runs: 0, deleted: [] };
  const { roots, all } = await lockPurgeable(tx, ids);
  if (roots.length === 0) return { executions: 0, step_runs: 0, deleted: [] };
  // Deltas, outbox rows and recorded actions have no foreign key (see their migrations):
  // deleted by hand.
  const { rows } = await tx.query<{ step_runs: number; deleted: string[] | null }>(
    `WITH runs AS MATERIALIZED (
       SELECT id, item_index FROM step_executions WHERE execution_id = ANY($1::text[])
     ), deltas AS (
       DELETE FROM for_each_item_deltas
        WHERE parent_id IN (SELECT id FROM runs WHERE item_index = -1)
     ), outbox AS (
       DELETE FROM execution_event_outbox WHERE execution_id = ANY($1::text[])
     ), actions AS (
       DELETE FROM execution_actions WHERE execution_id = ANY($1::text[])
     ), gone AS (
       DELETE FROM workflow_executions WHERE id = ANY($2::text[]) RETURNING id
     )
     SELECT (SELECT count(*) FROM runs)::int AS step_runs,
            (SELECT array_agg(id ORDER BY id) FROM gone) AS deleted`,
    [all, roots],
  );
  const row = rows[0];
  return { executions: all.length, step_runs: row?.step_runs ?? 0, deleted: row?.deleted ?? [] };
}

/** Where a keyset scan of a workflow's executions stands: after (created_at, id); null
 * created_at: before the first. */
export interface ExecutionKey {
  created_at: Date | null;
  id: string;
}

/** An execution retention may purge (its key is where the scan goes on) and its runs. */
export interface ExpiredExecution extends ExecutionKey {
  created_at: Date;
  step_runs: number;
}

/**
 * The oldest finished executions of a workflow that ended more than `days` days ago, after
 * `after` in (created_at, id) order, with how many step runs each has. One range of
 * workflow_executions_workflow_created_idx: an execution that ended before the cutoff was
 * created before it, so no index of its own is needed (every index there costs the engine).
 */
export async function findExpiredExecutions(
  db: Queryable,
  workflowId: string,
  days: number,
  after: ExecutionKey,
  limit: number,
): Promise<ExpiredExecution[]> {
  const { rows } = await db.query<ExpiredExecution>(
    `SELECT e.id, e.created_at,
            (SELECT count(*) FROM step_executions s WHERE s.execution_id = e.id)::int AS step_runs
       FROM workflow_executions e
      WHERE e.workflow_id = $1
        AND e.created_at < now() - make_interval(days => $2)
        AND (e.created_at, e.id) > (coalesce($3::timestamptz, '-infinity'), $4::text)
        AND e.completed_at < now() - make_interval(days => $2)
        AND e.status = ANY($5::text[])
      ORDER BY e.created_at, e.id
      LIMIT $6`,
    [workflowId, days, after.created_at, after.id, FINISHED_EXECUTION_STATUSES, limit],
  );
  return rows;
}

/** Every workflow with its own `config.retention_days` as stored (any JSON, or null). */
export async function listWorkflowRetention(
  db: Queryable,
): Promise<Array<{ id: string; retention_days: unknown }>> {
  const { rows } = await db.query<{ id: string; retention_days: unknown }>(
    `SELECT id, config->'retention_days' AS retention_days FROM workflows ORDER BY id`,
  );
  return rows;
}

/** Deletes up to `limit` of the oldest events received more than `days` days ago. */
export async function purgeOldEvents(db: Queryable, days: number, limit: number): Promise<number> {
  const { rowCount } = await db.query(
    `DELETE FROM events WHERE id IN (
       SELECT id FROM events WHERE received_at < now() - make_interval(days => $1)
        ORDER BY received_at LIMIT $2 FOR UPDATE SKIP LOCKED)`,
    [days, limit],
  );
  return rowCount ?? 0;
}
