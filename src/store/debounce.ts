import type { ExecutionRow } from '../domain/execution.js';
import { lockFlowKey, workflowKey } from './advisory-locks.js';
import type { Queryable } from './db.js';
import { EXECUTION_COLUMNS } from './execution-columns.js';

/**
 * Debounced starts (docs/ARCHITECTURE.md, "Flow control"): the one `queued` execution per
 * workflow and key that collects starts until its window closes. Changed only under the
 * (workflow, key) advisory lock, so two starts never both open a window.
 */

export function lockDebounceKey(tx: Queryable, workflowId: string, key: string) {
  return lockFlowKey(tx, 'debounceKey', workflowKey(workflowId, key));
}

/**
 * Collects a start into the execution whose window is open for this key, if there is one: it
 * takes the start's input, and its window closes `periodSeconds` from now, but never past its
 * deadline (max_wait_seconds after its first start).
 */
export async function collectInto(
  tx: Queryable,
  workflowId: string,
  key: string,
  input: unknown,
  periodSeconds: number,
): Promise<ExecutionRow | null> {
  const { rows } = await tx.query<ExecutionRow>(
    `UPDATE workflow_executions
        SET input_data = $3::jsonb, updated_at = now(),
            debounce_until = LEAST(now() + make_interval(secs => $4::int), debounce_deadline)
      WHERE workflow_id = $1 AND debounce_key = $2 AND status = 'queued'
        AND debounce_until IS NOT NULL
      RETURNING ${EXECUTION_COLUMNS}`,
    [workflowId, key, JSON.stringify(input ?? {}), periodSeconds],
  );
  return rows[0] ?? null;
}

/** Opens the window of a new execution: its first start's. */
export async function openWindow(
  tx: Queryable,
  executionId: string,
  key: string,
  periodSeconds: number,
  maxWaitSeconds: number,
): Promise<ExecutionRow> {
  const { rows } = await tx.query<ExecutionRow>(
    `UPDATE workflow_executions
        SET debounce_key = $2, debounce_until = now() + make_interval(secs => $3::int),
            debounce_deadline = now() + make_interval(secs => $4::int)
      WHERE id = $1
      RETURNING ${EXECUTION_COLUMNS}`,
    [executionId, key, periodSeconds, maxWaitSeconds],
  );
  return rows[0] as ExecutionRow;
}

/** Closes the window: later starts open a new one. */
export async function closeWindow(tx: Queryable, executionId: string): Promise<void> {
  await tx.query('UPDATE workflow_executions SET debounce_until = NULL WHERE id = $1', [
    executionId,
  ]);
}

/** What the diagnosis says of an execution collecting starts. */
export async function debounceWindow(
  db: Queryable,
  executionId: string,
): Promise<{ key: string; until: Date; deadline: Date } | null> {
  const { rows } = await db.query<{ key: string; until: Date; deadline: Date }>(
    `SELECT debounce_key AS key, debounce_until AS until, debounce_deadline AS deadline
       FROM workflow_executions WHERE id = $1 AND debounce_until IS NOT NULL`,
    [executionId],
  );
  return rows[0] ?? null;
}
