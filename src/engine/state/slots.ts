import type { ExecutionRow } from '../../domain/execution.js';
import type { Queryable } from '../../store/db.js';
import * as slots from '../../store/execution-slots.js';
import type { Effects } from './effects.js';
import type { Machine } from './machine.js';

/**
 * Execution slots under `config.concurrency` (docs/ARCHITECTURE.md, "Flow control"): what an
 * end, and an admission, do with the line of executions queued under the same key.
 */

/**
 * Admits, under the (workflow, key) lock, the executions queued under `execution`'s key while
 * its limit leaves slots free: each admitted one but `execution` itself gets an advance job
 * (its first steps start on a worker). Returns the admitted ids. Nothing for an execution
 * with no key (no config.concurrency, or not keyed yet).
 */
export async function fillSlots(
  m: Machine,
  tx: Queryable,
  execution: Pick<ExecutionRow, 'id' | 'workflow_id' | 'workflow_version' | 'concurrency_key'>,
  effects: Effects,
): Promise<string[]> {
  const key = execution.concurrency_key;
  if (key === null) return [];
  const definition = await m.definition(tx, execution.workflow_id, execution.workflow_version);
  const limit = definition.config.concurrency?.limit;
  if (limit === undefined) return [];
  await slots.lockExecutionKey(tx, execution.workflow_id, key);
  const admitted = await slots.admitQueued(tx, execution.workflow_id, key, limit);
  for (const id of admitted) {
    if (id !== execution.id) effects.advanceExecutions.push(id);
  }
  return admitted;
}
