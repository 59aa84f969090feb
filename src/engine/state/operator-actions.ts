import type { ExecutionRow } from '../../domain/execution.js';
import { type ExecutionStatus, UNFINISHED_EXECUTION_STATUSES } from '../../domain/statuses.js';
import { ExecutionNotFoundError, ExecutionStateError } from '../../errors.js';
import type { Queryable } from '../../store/db.js';
import * as executions from '../../store/executions.js';
import * as stepRuns from '../../store/step-runs.js';
import { type Effects, jobOfRun, noEffects } from './effects.js';
import { finish } from './finish.js';
import { withLockedExecution } from './lock.js';
import type { Machine } from './machine.js';

/**
 * What an operator asks of one execution: cancel, retry, pause, resume. Each locks the
 * execution, refuses (404, 409) unless its status allows the action, and returns the effects
 * to apply once committed.
 */

async function act(
  m: Machine,
  id: string,
  allowed: readonly ExecutionStatus[],
  refusal: string,
  change: (tx: Queryable, execution: ExecutionRow, effects: Effects) => Promise<unknown>,
): Promise<Effects> {
  const effects = noEffects();
  await withLockedExecution(
    m.options.pool,
    id,
    allowed,
    (tx, execution) => change(tx, execution, effects),
    (found) =>
      found ? new ExecutionStateError(id, found.status, refusal) : new ExecutionNotFoundError(id),
  );
  return effects;
}

/** Stops an unfinished execution; running attempts are aborted and their late results ignored. */
export function cancel(m: Machine, id: string): Promise<Effects> {
  return act(
    m,
    id,
    UNFINISHED_EXECUTION_STATUSES,
    'only an unfinished execution can be cancelled',
    (tx, execution, effects) =>
      finish(m, tx, execution, { status: 'cancelled', error: 'Cancelled on request' }, effects),
  );
}

/** Resumes a failed or timed-out execution from its failed steps, keeping completed results. */
export function retry(m: Machine, id: string): Promise<Effects> {
  return act(
    m,
    id,
    ['failed', 'timed_out'],
    'only a failed or timed-out execution can be retried',
    async (tx, execution, effects) => {
      await executions.reopenExecution(tx, execution);
      const { config } = await m.definition(tx, execution.workflow_id, execution.workflow_version);
      // Under config.concurrency it takes a slot again only through admission, like a start.
      if (config.concurrency) await executions.setExecutionStatus(tx, id, 'queued');
      // Its failed steps' conditions and for_each lists are decided by a worker's advance job,
      // not in this request (docs/ARCHITECTURE.md, "Life of a request").
      effects.advanceExecutions.push(id);
      effects.changedWorkflows.push(execution.workflow_id);
    },
  );
}

/** Holds an execution: running attempts finish, but no new step starts until resume. */
export function pause(m: Machine, id: string): Promise<Effects> {
  return act(
    m,
    id,
    ['running', 'waiting'],
    'only a running or waiting execution can be paused',
    (tx) => executions.setExecutionStatus(tx, id, 'paused'),
  );
}

/** Lets a paused execution go on: starts what became ready and re-queues what was held. */
export function resume(m: Machine, id: string): Promise<Effects> {
  return act(
    m,
    id,
    ['paused'],
    'only a paused execution can be resumed',
    async (tx, execution, effects) => {
      await executions.setExecutionStatus(tx, id, 'running');
      const resumed = { ...execution, status: 'running' as const };
      for (const run of await stepRuns.listHeldRuns(tx, id)) {
        effects.jobs.push({
          ...jobOfRun(resumed, run),
          ...(run.wake_at ? { runAt: run.wake_at } : {}),
          // A sleeping run needs its wake-up, not a new attempt.
          ...(run.status === 'waiting' ? { wake: true } : {}),
        });
      }
      // What became ready while paused starts from a worker's advance job, as above.
      effects.advanceExecutions.push(id);
    },
  );
}
