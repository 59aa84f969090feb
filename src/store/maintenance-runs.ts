import type { Queryable } from './db.js';

/**
 * SQL of `maintenance_runs` (migration retention): one row per pass of a background purge,
 * so that any process can say what the last one did. A pass's counts grow in the transactions
 * that delete, so they stay exact whatever happens to the pass afterwards.
 */

export interface MaintenanceRun {
  started_at: Date;
  /** Null while the pass runs, or for good when it was cut short. */
  ended_at: Date | null;
  executions: number;
  step_runs: number;
  events: number;
}

/** The kind of the retention pass's rows (and the name of its lock). */
export const RETENTION_PASS = 'retention';

export type MaintenanceCounts = Pick<MaintenanceRun, 'executions' | 'step_runs' | 'events'>;

/** Passes of one kind kept; older rows are deleted when a pass begins. */
const KEPT_RUNS = 100;

/** Records the start of a pass of `kind`; returns its id. */
export async function beginMaintenanceRun(db: Queryable, kind: string): Promise<number> {
  const { rows } = await db.query<{ id: number }>(
    `WITH pruned AS (
       DELETE FROM maintenance_runs
        WHERE kind = $1 AND id < (SELECT min(id) FROM (
          SELECT id FROM maintenance_runs WHERE kind = $1 ORDER BY id DESC LIMIT $2) AS kept)
     )
     INSERT INTO maintenance_runs (kind) VALUES ($1) RETURNING id`,
    [kind, KEPT_RUNS - 1],
  );
  return (rows[0] as { id: number }).id;
}

/** Adds what a batch deleted to its pass, in the batch's transaction. */
export async function countMaintenanceRun(
  tx: Queryable,
  id: number,
  counts: MaintenanceCounts,
): Promise<void> {
  await tx.query(
    `UPDATE maintenance_runs
        SET executions = executions + $2, step_runs = step_runs + $3, events = events + $4
      WHERE id = $1`,
    [id, counts.executions, counts.step_runs, counts.events],
  );
}

export async function endMaintenanceRun(db: Queryable, id: number): Promise<void> {
  await db.query('UPDATE maintenance_runs SET ended_at = clock_timestamp() WHERE id = $1', [id]);
}

/** The most recent pass of `kind` (running, ended or cut short), or null before the first. */
export async function lastMaintenanceRun(
  db: Queryable,
  kind: string,
): Promise<MaintenanceRun | null> {
  const { rows } = await db.query<MaintenanceRun>(
    `SELECT started_at, ended_at, executions, step_runs, events FROM maintenance_runs
      WHERE kind = $1 ORDER BY id DESC LIMIT 1`,
    [kind],
  );
  return rows[0] ?? null;
}
