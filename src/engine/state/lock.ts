import type { ExecutionRow } from '../../domain/execution.js';
import { EXECUTION_STATUSES, type ExecutionStatus } from '../../domain/statuses.js';
import { type Pool, type Queryable, withTransaction } from '../../store/db.js';
import * as executions from '../../store/executions.js';

/** Any execution, whatever its status. */
export const ANY_EXECUTION_STATUS: readonly ExecutionStatus[] = EXECUTION_STATUSES;

/**
 * Locks an execution in the caller's transaction: every change to an execution's state holds
 * its row lock, so parallel completions, operator actions and the sweep never race. Null when
 * it is missing or its status is not one of `allowed` (then nothing may change).
 */
export async function lockExecutionIn(
  tx: Queryable,
  executionId: string,
  allowed: readonly ExecutionStatus[],
): Promise<ExecutionRow | null> {
  const execution = await executions.lockExecution(tx, executionId);
  return execution && allowed.includes(execution.status) ? execution : null;
}

/**
 * In a transaction of its own: locks the execution and, when its status is one of `allowed`,
 * acts on it. Otherwise `refused` says what to throw (told the row, null if missing); without
 * it the transaction ends with nothing done and null is returned.
 */
export async function withLockedExecution<T>(
  pool: Pool,
  executionId: string,
  allowed: readonly ExecutionStatus[],
  act: (tx: Queryable, execution: ExecutionRow) => Promise<T>,
  refused?: (found: ExecutionRow | null) => Error,
): Promise<T | null> {
  return withTransaction(pool, async (tx) => {
    const execution = await executions.lockExecution(tx, executionId);
    if (execution && allowed.includes(execution.status)) return act(tx, execution);
    if (refused) throw refused(execution);
    return null;
  });
}
