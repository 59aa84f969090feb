import type { Queryable } from './db.js';

/**
 * How many sub-workflow levels lie above an execution: 0 for one started by the API, an
 * event or a schedule, 1 for its child, and so on. Walks parent_execution_id up by primary
 * key, at most `limit` levels (a longer chain answers `limit`), so the cost is bounded by the
 * limit and paid by sub-workflow starts alone, never by a step.
 */
export async function subworkflowDepth(
  db: Queryable,
  executionId: string,
  limit: number,
): Promise<number> {
  const { rows } = await db.query<{ depth: number }>({
    name: 'subworkflow-depth',
    text: `WITH RECURSIVE chain (parent, depth) AS (
             SELECT parent_execution_id, 0 FROM workflow_executions WHERE id = $1
             UNION ALL
             SELECT e.parent_execution_id, c.depth + 1
               FROM chain c JOIN workflow_executions e ON e.id = c.parent
              WHERE c.depth < $2
           )
           SELECT max(depth)::int AS depth FROM chain`,
    values: [executionId, limit],
  });
  return rows[0]?.depth ?? 0;
}
