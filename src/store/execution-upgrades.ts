import type { StepStatus } from '../domain/statuses.js';
import type { Queryable } from './db.js';

/**
 * SQL of an execution's move to another version of its workflow (engine/state/upgrade.ts),
 * always called with the execution's row locked in the caller's transaction.
 */

/** Every own run of the execution (any iteration, no for_each items): how far each step got. */
export async function ownRunStates(
  db: Queryable,
  executionId: string,
): Promise<Array<{ step_id: string; status: StepStatus; attempt: number }>> {
  const { rows } = await db.query<{ step_id: string; status: StepStatus; attempt: number }>(
    `SELECT step_id, status, attempt FROM step_executions
      WHERE execution_id = $1 AND item_index = -1
      ORDER BY iteration, id`,
    [executionId],
  );
  return rows;
}

/**
 * Deletes the never-started runs of steps the new version no longer has, in one iteration:
 * pending, or cancelled before a first attempt (engine/upgrade-plan.ts, neverStarted).
 */
export async function deletePendingRuns(
  db: Queryable,
  executionId: string,
  iteration: number,
  stepIds: readonly string[],
): Promise<void> {
  if (stepIds.length === 0) return;
  await db.query(
    `DELETE FROM step_executions
      WHERE execution_id = $1 AND iteration = $2 AND step_id = ANY($3::text[])
        AND (status = 'pending' OR (status = 'cancelled' AND attempt = 0))`,
    [executionId, iteration, stepIds],
  );
}

/** Pins the execution to another stored version of its workflow. */
export async function setWorkflowVersion(
  db: Queryable,
  executionId: string,
  version: number,
): Promise<void> {
  await db.query(
    'UPDATE workflow_executions SET workflow_version = $2, updated_at = now() WHERE id = $1',
    [executionId, version],
  );
}
