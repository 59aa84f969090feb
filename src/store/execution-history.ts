import type { StepStatus } from '../domain/statuses.js';
import type { Queryable } from './db.js';

/**
 * What GET /executions/{id}/history derives from the step runs when it is read
 * (docs/ARCHITECTURE.md, "History"): the engine writes nothing for it.
 */

/** A step's own run as the history reads it; for_each items only as their counts. */
export interface HistoryRun {
  step_id: string;
  iteration: number;
  status: StepStatus;
  attempt: number;
  error: unknown;
  wait_kind: string | null;
  wait_reason: string | null;
  item_count: number | null;
  items_done: number;
  items_failed: number;
  started_at: Date | null;
  completed_at: Date | null;
  updated_at: Date;
}

/** The steps' own runs of every iteration, in the order they were created. */
export async function listHistoryRuns(db: Queryable, executionId: string): Promise<HistoryRun[]> {
  const { rows } = await db.query<HistoryRun>(
    `SELECT step_id, iteration, status, attempt, error, wait_kind, wait_reason, item_count,
            items_done, items_failed, started_at, completed_at, updated_at
       FROM step_executions WHERE execution_id = $1 AND item_index = -1 ORDER BY id`,
    [executionId],
  );
  return rows;
}
