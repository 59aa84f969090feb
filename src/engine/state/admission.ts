import type { ExecutionRow } from '../../domain/execution.js';
import type { ConcurrencyConfig } from '../../domain/flow-control.js';
import type { WorkflowDefinition } from '../../domain/workflow-definition.js';
import type { Queryable } from '../../store/db.js';
import * as slots from '../../store/execution-slots.js';
import * as executions from '../../store/executions.js';
import { evaluateFlowKey } from '../flow-keys.js';
import { advance } from './advance.js';
import { stillCollecting } from './debounce.js';
import type { Effects } from './effects.js';
import { finish } from './finish.js';
import type { Machine } from './machine.js';
import { fillSlots } from './slots.js';

/**
 * Admission of queued executions under their workflow's `config.concurrency`
 * (docs/ARCHITECTURE.md, "Flow control"). A start never evaluates the key: it inserts the
 * execution `queued` and leaves its admission to a worker's advance job, which evaluates the
 * key in the expression sandbox and then, under the (workflow, key) lock, admits it if a slot
 * is free, or applies `on_limit`.
 */

/**
 * The execution's flow key: config.concurrency's key expression over {input, labels} (none:
 * one budget for the workflow), else config.fairness_key's. It names both its slot budget and
 * the fairness group of its jobs.
 */
async function flowKey(
  m: Machine,
  definition: WorkflowDefinition,
  execution: ExecutionRow,
): Promise<{ key: string; error: string | null }> {
  const { concurrency, fairness_key: fairnessKey } = definition.config;
  const source = concurrency ? concurrency.key : fairnessKey;
  if (source === undefined) return { key: '', error: null };
  const context = {
    input: execution.input_data,
    labels: {},
    steps: {},
    iteration: 0,
    execution: {
      id: execution.id,
      workflow_id: execution.workflow_id,
      workflow_version: execution.workflow_version,
    },
  };
  return evaluateFlowKey(source, context, m.options.expressionTimeoutMs);
}

/** What cancel_new and cancel_oldest write as the cancelled execution's error. */
function limitReason(config: ConcurrencyConfig, key: string): string {
  const scope = key === '' ? 'its workflow' : `key "${key}"`;
  return `${config.limit} execution(s) of ${scope} already run (config.concurrency.on_limit ${config.on_limit})`;
}

/**
 * Admits a queued, locked execution, or leaves it queued, or cancels it (cancel_new), or
 * cancels the oldest execution running under its key to make room (cancel_oldest).
 */
export async function admit(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
  effects: Effects,
): Promise<Effects> {
  if (await stillCollecting(tx, execution)) return effects;
  const definition = await m.definition(tx, execution.workflow_id, execution.workflow_version);
  const config = definition.config.concurrency;
  const keyed = config !== undefined || definition.config.fairness_key !== undefined;
  let queued = execution;
  if (keyed && execution.concurrency_key === null) {
    const { key, error } = await flowKey(m, definition, execution);
    await slots.setConcurrencyKey(tx, execution.id, key, error);
    queued = { ...execution, concurrency_key: key };
  }
  if (!config || (await fillSlots(m, tx, queued, effects)).includes(execution.id)) {
    if (!config) await executions.setExecutionStatus(tx, execution.id, 'running');
    return advance(m, tx, { ...queued, status: 'running' }, effects);
  }
  const key = queued.concurrency_key as string;
  if (config.on_limit === 'cancel_new') {
    await finish(m, tx, queued, { status: 'cancelled', error: limitReason(config, key) }, effects);
  } else if (config.on_limit === 'cancel_oldest') {
    for (const oldest of await slots.lockOldestHolders(tx, execution.workflow_id, key, 1)) {
      const reason = `${limitReason(config, key)}: cancelled to make room for ${execution.id}`;
      // Its end admits the line's first execution: this one, unless others queued before it.
      await finish(m, tx, oldest, { status: 'cancelled', error: reason }, effects);
    }
    const now = await executions.lockExecution(tx, execution.id);
    if (now?.status === 'running') {
      // Admitted by that end, which also asked for an advance job: it advances here instead.
      effects.advanceExecutions = effects.advanceExecutions.filter((id) => id !== now.id);
      return advance(m, tx, now, effects);
    }
  }
  return effects;
}
