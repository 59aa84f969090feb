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
 * (docs/ARCHITECTURE.md, "Flow control"). A start evaluates the key (like any expression:
 * sandboxed when it may be expensive, under the time limit), inserts the execution `queued`
 * and admits it in the same transaction if its key has a free slot (admitKeyed), else applies
 * `on_limit`; an end admits the next in line (slots.ts). An advance job admits the rest: a
 * debounced execution at its window's end, a retried one, one the sweep finds idle.
 */

/**
 * The flow key of an execution of `definition`: config.concurrency's key expression over
 * {input, labels} (none: one budget for the workflow), else config.fairness_key's; null when
 * the workflow has neither. It names both its slot budget and the fairness group of its jobs.
 */
export async function flowKey(
  m: Machine,
  definition: WorkflowDefinition,
  execution: Pick<
    ExecutionRow,
    'id' | 'workflow_id' | 'workflow_version' | 'input_data' | 'labels'
  >,
): Promise<{ key: string; error: string | null } | null> {
  const { concurrency, fairness_key: fairnessKey } = definition.config;
  if (!concurrency && fairnessKey === undefined) return null;
  const source = concurrency ? concurrency.key : fairnessKey;
  const subject = { ...execution, input: execution.input_data };
  return evaluateFlowKey(source, subject, m.options.expressionTimeoutMs);
}

/** What cancel_new and cancel_oldest write as the cancelled execution's error. */
function limitReason(config: ConcurrencyConfig, key: string): string {
  const scope = key === '' ? 'its workflow' : `key "${key}"`;
  return `${config.limit} execution(s) of ${scope} already run (config.concurrency.on_limit ${config.on_limit})`;
}

/**
 * Admits a queued, locked execution whose key is known, if its key has a free slot; else
 * applies `on_limit`: it stays queued, is cancelled (cancel_new), or the oldest execution
 * running under its key is cancelled to make room (cancel_oldest). Returns the execution as
 * it is left; an admitted one is `running` and not advanced yet.
 */
export async function admitKeyed(
  m: Machine,
  tx: Queryable,
  queued: ExecutionRow,
  config: ConcurrencyConfig,
  effects: Effects,
): Promise<ExecutionRow> {
  if ((await fillSlots(m, tx, queued, effects)).includes(queued.id)) {
    return { ...queued, status: 'running' };
  }
  const key = queued.concurrency_key as string;
  if (config.on_limit === 'cancel_new') {
    return finish(m, tx, queued, { status: 'cancelled', error: limitReason(config, key) }, effects);
  }
  if (config.on_limit !== 'cancel_oldest') return queued;
  for (const oldest of await slots.lockOldestHolders(tx, queued.workflow_id, key, 1)) {
    const reason = `${limitReason(config, key)}: cancelled to make room for ${queued.id}`;
    // Its end admits the line's first execution: this one, unless others queued before it.
    await finish(m, tx, oldest, { status: 'cancelled', error: reason }, effects);
  }
  const now = (await executions.lockExecution(tx, queued.id)) ?? queued;
  // Admitted by that end, which asked for an advance job: the caller decides how it advances.
  effects.advanceExecutions = effects.advanceExecutions.filter((id) => id !== now.id);
  return now;
}

/**
 * The admission job of a queued, locked execution (a debounce window's end, a retry, or one
 * whose key was not known at its start): evaluates its key if needed, admits it or applies
 * `on_limit`, and advances it once admitted.
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
  let queued = execution;
  if (execution.concurrency_key === null) {
    const evaluated = await flowKey(m, definition, execution);
    if (evaluated) {
      await slots.setConcurrencyKey(tx, execution.id, evaluated.key, evaluated.error);
      queued = { ...execution, concurrency_key: evaluated.key };
    }
  }
  if (!config) {
    await executions.setExecutionStatus(tx, execution.id, 'running');
    return advance(m, tx, { ...queued, status: 'running' }, effects);
  }
  const now = await admitKeyed(m, tx, queued, config, effects);
  return now.status === 'running' ? advance(m, tx, now, effects) : effects;
}
