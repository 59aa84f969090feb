import type { Queryable } from './db.js';

/** Active workflows that carry a cron schedule, with when they last changed (activation). */
export async function findScheduledWorkflows(
  db: Queryable,
): Promise<Array<{ id: string; schedule: unknown; updated_at: Date }>> {
  const { rows } = await db.query<{ id: string; schedule: unknown; updated_at: Date }>(
    `SELECT id, config->'trigger'->'schedule' AS schedule, updated_at FROM workflows
      WHERE status = 'active' AND config->'trigger' ? 'schedule'`,
  );
  return rows;
}
