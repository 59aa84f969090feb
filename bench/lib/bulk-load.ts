import type pg from 'pg';

/**
 * Filling a workload's own database with history by SQL, as the history and purge workloads
 * do: far faster than running the executions, and left as the engine and autovacuum would
 * leave it.
 */

/** Runs `load` in one transaction without triggers (no outbox rows) or foreign-key checks,
 * then vacuums and analyses the execution tables. */
export async function bulkLoad(db: pg.Client, load: () => Promise<void>): Promise<void> {
  await db.query('SET session_replication_role = replica');
  await db.query('BEGIN');
  try {
    await load();
    await db.query('COMMIT');
  } catch (error) {
    await db.query('ROLLBACK');
    throw error;
  } finally {
    await db.query('SET session_replication_role = DEFAULT');
  }
  await db.query('VACUUM ANALYZE workflow_executions');
  await db.query('VACUUM ANALYZE step_executions');
}

/** A workflow's counters from its execution rows, as the engine leaves them once the sweep
 * folded its deltas. */
export async function countersFromRows(db: pg.Client, workflowId: string): Promise<void> {
  await db.query(
    `UPDATE workflows w
        SET execution_count = c.ended, success_count = c.completed, failure_count = c.failed,
            cancelled_count = c.cancelled, timed_out_count = c.timed_out,
            total_duration_seconds = c.duration,
            average_duration_seconds = round(c.duration / greatest(c.ended, 1), 2),
            started_at = c.started_at, completed_at = c.completed_at
       FROM (SELECT count(*) AS ended, count(*) FILTER (WHERE status = 'completed') AS completed,
                    count(*) FILTER (WHERE status IN ('failed', 'timed_out')) AS failed,
                    count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
                    count(*) FILTER (WHERE status = 'timed_out') AS timed_out,
                    coalesce(sum(duration_seconds), 0) AS duration,
                    max(created_at) AS started_at, max(completed_at) AS completed_at
               FROM workflow_executions WHERE workflow_id = $1) AS c
      WHERE w.id = $1`,
    [workflowId],
  );
}
