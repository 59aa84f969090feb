import type {
  EventWaitSpec,
  ExecutionRow,
  ParkedWait,
  StepRunRow,
} from '../../domain/execution.js';
import { UNFINISHED_EXECUTION_STATUSES } from '../../domain/statuses.js';
import { WorkflowNotFoundError, WorkflowNotRunnableError } from '../../errors.js';
import { type Queryable, withTransaction } from '../../store/db.js';
import * as eventStore from '../../store/event-store.js';
import { subworkflowDepth } from '../../store/execution-lineage.js';
import * as executions from '../../store/executions.js';
import * as stepRuns from '../../store/step-runs.js';
import * as sweep from '../../store/sweep-queries.js';
import { subworkflowTrace } from '../attempt-tracing.js';
import { evaluateCondition } from '../expressions.js';
import type { WaitRequest } from '../steps/types.js';
import { advance } from './advance.js';
import { type Effects, mergeEffects, noEffects } from './effects.js';
import { expressionContext } from './iteration-runs.js';
import { lockExecutionIn, withLockedExecution } from './lock.js';
import type { AttemptResult, Machine } from './machine.js';
import { type AttemptOutcome, applyOutcome } from './outcome.js';
import { start } from './start.js';

/**
 * Runs that wait for someone else: parking them, and waking them when the event, the
 * sub-workflow or the buffered event they wait for turns up.
 *
 * Delivery and waiting never miss each other: storing an event and a run starting to wait
 * both take the event type's lock; the run, when it starts waiting, takes a matching event
 * already stored, and the event, once stored, resumes the runs already waiting.
 */

/** An event as steps and expressions see it. */
export function eventOutput(event: eventStore.EventRow): Record<string, unknown> {
  return {
    id: event.id,
    type: event.type,
    data: event.data,
    correlation_key: event.correlation_key,
    received_at: event.received_at.toISOString(),
  };
}

/** Whether an event satisfies a waiting run's match expression (none: any event does). */
export async function eventMatches(
  m: Machine,
  match: string | null,
  execution: ExecutionRow,
  runs: readonly StepRunRow[],
  event: eventStore.EventRow,
): Promise<boolean> {
  if (match === null) return true;
  try {
    return await evaluateCondition(
      match,
      {
        ...expressionContext(execution, execution.current_iteration, runs),
        event: eventOutput(event),
      },
      { timeoutMs: m.options.expressionTimeoutMs },
    );
  } catch (error) {
    m.options.logger.warn(
      { err: error, executionId: execution.id },
      'event match expression failed',
    );
    return false;
  }
}

/**
 * Resumes a run waiting for an event with this one if it matches: the one definition of
 * "this event is for that run", for events arriving and events already buffered. The caller
 * holds the execution and the run locked; `runs` are the execution's current iteration's.
 */
async function resumeWithEvent(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
  run: StepRunRow,
  match: string | null,
  runs: readonly StepRunRow[],
  event: eventStore.EventRow,
  effects: Effects,
): Promise<boolean> {
  if (!(await eventMatches(m, match, execution, runs, event))) return false;
  await eventStore.appendResumedStep(tx, event.id, {
    execution_id: execution.id,
    step_id: run.step_id,
  });
  await resolveWait(
    m,
    tx,
    execution,
    run,
    { kind: 'completed', output: eventOutput(event) },
    effects,
  );
  return true;
}

/**
 * Resolves a run that waits for an event with the first matching event received since
 * `since`, if there is one. The caller holds the event type's lock, the execution and the run.
 */
export async function takeBufferedEvent(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
  run: StepRunRow,
  wait: EventWaitSpec,
  since: Date,
  effects: Effects,
): Promise<boolean> {
  const recent = await eventStore.findRecentEvents(tx, wait.event, wait.correlation_key, since);
  if (recent.length === 0) return false;
  const runs = await stepRuns.loadIterationRuns(tx, execution.id, execution.current_iteration);
  for (const event of recent) {
    if (await resumeWithEvent(m, tx, execution, run, wait.match, runs, event, effects)) return true;
  }
  return false;
}

/** Delivers a stored event to one run that waited for it, in a transaction of its own. */
export async function deliverEvent(
  m: Machine,
  event: eventStore.EventRow,
  candidate: Pick<StepRunRow, 'id' | 'attempt' | 'execution_id'>,
): Promise<Effects> {
  const effects = noEffects();
  const { pool } = m.options;
  await withLockedExecution(
    pool,
    candidate.execution_id,
    UNFINISHED_EXECUTION_STATUSES,
    async (tx, execution) => {
      const run = await sweep.lockEventWait(tx, candidate.id, candidate.attempt);
      // Only events at least as new as the run: an earlier loop iteration's are not for it.
      if (!run || event.received_at < run.created_at) return;
      const runs = await stepRuns.loadIterationRuns(tx, execution.id, execution.current_iteration);
      const { match } = run.wait_spec;
      await resumeWithEvent(m, tx, execution, run, match, runs, event, effects);
    },
  );
  return effects;
}

/**
 * A run still waiting for an event long after it started: looks again for a matching event
 * (one stored by a process that died before resuming its waiters). True when it resumed;
 * otherwise the run is touched, so it is not looked at again until it idles once more.
 */
export async function retakeBufferedEvent(
  m: Machine,
  idle: Pick<StepRunRow, 'id' | 'attempt' | 'execution_id'>,
  effects: Effects,
): Promise<boolean> {
  // Lock order as when a run starts waiting: execution, run, then the event type.
  const resumed = await withLockedExecution(
    m.options.pool,
    idle.execution_id,
    UNFINISHED_EXECUTION_STATUSES,
    async (tx, execution) => {
      const run = await sweep.lockEventWait(tx, idle.id, idle.attempt);
      if (!run) return false;
      const wait = run.wait_spec;
      await eventStore.lockEventType(tx, wait.event);
      if (await takeBufferedEvent(m, tx, execution, run, wait, run.created_at, effects)) {
        return true;
      }
      await sweep.touchRuns(tx, [run.id]);
      return false;
    },
  );
  return resumed ?? false;
}

/** Sub-workflow levels below a top-level execution when MAX_SUBWORKFLOW_DEPTH is not given. */
export const DEFAULT_MAX_SUBWORKFLOW_DEPTH = 10;

/**
 * Resumes the run that waits for this ended sub-workflow execution, with the child's output
 * or its failure (retryable: a new attempt starts a new child, the step's retry policy decides).
 * A child that failed on the depth limit fails its parent's step the same way, not retryable:
 * every retry would hit the limit again, and retries at each level of a deep chain multiply.
 */
export async function childEnded(m: Machine, childExecutionId: string): Promise<Effects> {
  return withTransaction(m.options.pool, async (tx) => {
    const child = await executions.getExecution(tx, childExecutionId);
    if (!child?.parent_execution_id || child.parent_run_id === null) return noEffects();
    if (UNFINISHED_EXECUTION_STATUSES.includes(child.status)) return noEffects();
    const parent = await lockExecutionIn(
      tx,
      child.parent_execution_id,
      UNFINISHED_EXECUTION_STATUSES,
    );
    const run = parent ? await sweep.lockChildWait(tx, child.parent_run_id, child.id) : null;
    if (!parent || !run) return noEffects();
    return resolveWait(
      m,
      tx,
      parent,
      run,
      child.status === 'completed'
        ? { kind: 'completed', output: child.output_data ?? null }
        : {
            kind: 'failed',
            error: {
              message: `sub-workflow execution ${child.id} ${child.status}${child.error ? `: ${child.error}` : ''}`,
              ...(failedOnDepth(child)
                ? { type: DEPTH_ERROR, retryable: false }
                : { type: 'subworkflow_failed', retryable: true }),
              attempt: run.attempt,
              details: { execution_id: child.id, status: child.status },
            },
          },
    );
  });
}

/**
 * Ends a wait from outside the worker (an event, a finished sub-workflow): the caller holds
 * the execution and the run locked in `tx` and has checked that the run still waits.
 */
export async function resolveWait(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
  run: StepRunRow,
  result: AttemptOutcome,
  effects: Effects = noEffects(),
): Promise<Effects> {
  return mergeEffects(effects, await applyOutcome(m, tx, execution, run, result));
}

/**
 * Parks a run until the party it waits for answers. A wait for an event first looks at the
 * events that arrived since the execution started (within the buffer window), under the
 * event type's lock, so an event posted just before the run started waiting is not lost.
 * A sub-workflow is started in the same transaction.
 */
export async function park(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
  run: StepRunRow,
  result: Extract<AttemptResult, { kind: 'wait' }>,
  effects: Effects,
): Promise<Effects> {
  const { wait } = result;
  if (wait.kind === 'child') return startChild(m, tx, execution, run, wait, effects);
  if (wait.kind === 'event') {
    await eventStore.lockEventType(tx, wait.event);
    // Events older than the run (an earlier loop iteration's, say) are not for it.
    const since = new Date(
      Math.max(run.created_at.getTime(), Date.now() - m.options.eventBufferMs),
    );
    if (await takeBufferedEvent(m, tx, execution, run, wait, since, effects)) return effects;
  }
  await stepRuns.parkRun(tx, run.id, {
    reason: result.reason,
    wakeAt: null,
    wait: parkedWait(wait),
  });
  return advance(m, tx, execution, effects);
}

/** What a run parked for a task or an event records of its wait: the request minus its kind. */
function parkedWait(wait: Exclude<WaitRequest, { kind: 'child' }>): ParkedWait {
  if (wait.kind === 'task') {
    const { kind, ...spec } = wait;
    return { kind, spec };
  }
  const { kind, ...spec } = wait;
  return { kind, spec };
}

const DEPTH_ERROR = 'subworkflow_depth';

function failedOnDepth(child: ExecutionRow): boolean {
  const details = child.error_details;
  return typeof details === 'object' && details !== null && 'type' in details
    ? details.type === DEPTH_ERROR
    : false;
}

/**
 * Why the execution may not start a sub-workflow: its own chain of parents is already
 * MAX_SUBWORKFLOW_DEPTH deep (a workflow that starts itself would go on for ever). Only an
 * execution that is itself a sub-workflow pays the walk up its parents.
 */
async function depthProblem(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
): Promise<string | null> {
  if (execution.parent_execution_id === null) return null;
  const limit = m.options.maxSubworkflowDepth ?? DEFAULT_MAX_SUBWORKFLOW_DEPTH;
  const depth = await subworkflowDepth(tx, execution.id, limit);
  if (depth < limit) return null;
  return `sub-workflow not started: execution ${execution.id} is already ${depth} sub-workflow levels deep, the limit (MAX_SUBWORKFLOW_DEPTH=${limit})`;
}

/** Starts the sub-workflow a run waits for and parks the run; a sub-workflow that cannot
 * start fails the run instead. */
async function startChild(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
  run: StepRunRow,
  wait: Extract<WaitRequest, { kind: 'child' }>,
  effects: Effects,
): Promise<Effects> {
  const tooDeep = await depthProblem(m, tx, execution);
  if (tooDeep) {
    const error = { message: tooDeep, type: DEPTH_ERROR, retryable: false, attempt: run.attempt };
    return resolveWait(m, tx, execution, run, { kind: 'failed', error }, effects);
  }
  let child: ExecutionRow;
  try {
    ({ row: child } = await start(
      m,
      tx,
      {
        workflowId: wait.workflow_id,
        input: wait.input,
        // The same attempt never starts two children, even when it runs again.
        idempotencyKey: `parent-${run.id}-${run.attempt}`,
        parent: { executionId: execution.id, runId: run.id, attempt: run.attempt },
        trigger: { type: 'subworkflow', parent_execution_id: execution.id, step_id: run.step_id },
        labels: execution.labels,
        traceContext: await subworkflowTrace(tx, execution.id),
      },
      effects,
    ));
  } catch (error) {
    if (!(error instanceof WorkflowNotFoundError || error instanceof WorkflowNotRunnableError)) {
      throw error;
    }
    const failure = { message: error.message, type: 'subworkflow_unavailable', retryable: false };
    const result: AttemptOutcome = {
      kind: 'failed',
      error: { ...failure, attempt: run.attempt },
    };
    return resolveWait(m, tx, execution, run, result, effects);
  }
  await stepRuns.parkRun(tx, run.id, {
    reason: `waiting for sub-workflow execution ${child.id}`,
    wakeAt: null,
    wait: { kind: 'child', spec: { workflow_id: wait.workflow_id, execution_id: child.id } },
  });
  return advance(m, tx, execution, effects);
}
