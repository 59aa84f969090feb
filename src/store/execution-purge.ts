// TEMPORARY stand-in until the retention branch lands (removed at merge).
import type { Queryable } from './db.js';
export interface PurgeCounts {
  executions: number;
  step_runs: number;
}
export async function purgeFinishedExecutions(
  tx: Queryable,
  ids: readonly string[],
): Promise<PurgeCounts & { deleted: string[] }> {
  const { rows } = await tx.query<{ id: string }>(
    `DELETE FROM workflow_executions e WHERE id = ANY($1::text[])
       AND status IN ('completed','failed','cancelled','timed_out')
       AND NOT EXISTS (SELECT 1 FROM workflow_executions c WHERE c.parent_execution_id = e.id
                        AND c.status NOT IN ('completed','failed','cancelled','timed_out'))
     RETURNING id`,
    [ids],
  );
  return { executions: rows.length, step_runs: 0, deleted: rows.map((r) => r.id) };
}
