import type { ExecutionRow, StepRunRow } from '../domain/execution.js';
import { limitWaitOf } from '../domain/limits.js';
import {
  ACTIVE_STEP_STATUSES,
  FINISHED_EXECUTION_STATUSES,
  isIn,
  TERMINAL_STEP_STATUSES,
} from '../domain/statuses.js';
import type { StepDefinition, WorkflowDefinition } from '../domain/workflow-definition.js';
import type { BlockedBy, Diagnosis, StepDiagnosis } from '../schemas/diagnosis.js';
import type { SlotStanding } from '../store/execution-slots.js';

/**
 * Why an execution is not running now, from what its rows say (README "Why is it waiting?").
 * Pure: the caller reads the rows, the fan-outs' item counts and when workers last polled.
 */

/** A worker that has not polled for a step type this long is reported as missing. */
export const NO_WORKER_SECONDS = 60;

/** The item runs of an expanded for_each step, by state. */
export interface ItemProgress {
  active: number;
  waiting: number;
  done: number;
  failed: number;
}

export interface DiagnosisInput {
  execution: Pick<ExecutionRow, 'id' | 'status' | 'concurrency_key' | 'priority'>;
  /** For a queued execution: its key's slots in use and the executions queued before it. */
  standing?: SlotStanding | undefined;
  /** Steps queued ahead of this execution's by priority, when one of its steps is queued. */
  aheadByPriority?: number | undefined;
  /** For an execution collecting debounced starts: its window. */
  window?: { key: string; until: Date; deadline: Date } | null | undefined;
  definition: WorkflowDefinition;
  /** The steps' own runs of the current iteration. */
  runs: readonly StepRunRow[];
  /** Item counts of each expanded for_each step, by its own run's id. */
  fanOuts: ReadonlyMap<number, ItemProgress>;
  /** When a worker last polled for each step type (`*`: a poll for any type). */
  polls: ReadonlyMap<string, Date>;
  now: Date;
}

const iso = (date: Date | null | undefined): string | null => (date ? date.toISOString() : null);

function fanOutReason(
  step: StepDefinition,
  run: StepRunRow,
  items: ItemProgress,
): { blocked_by: BlockedBy | null; summary: string } {
  const total = run.item_count ?? 0;
  const inFlight = items.active + items.waiting;
  const notStarted = total - items.done - inFlight;
  const progress = `${items.done} of ${total} items done (${items.failed} failed), ${items.active} running, ${items.waiting} waiting`;
  if (notStarted > 0 && inFlight >= step.for_each_concurrency) {
    return {
      blocked_by: {
        kind: 'concurrency',
        limit: 'for_each_concurrency',
        in_use: inFlight,
        max: step.for_each_concurrency,
        waiting: notStarted,
      },
      summary: `${progress}; ${notStarted} wait for a slot (for_each_concurrency ${step.for_each_concurrency})`,
    };
  }
  return { blocked_by: null, summary: `${progress}; ${Math.max(notStarted, 0)} not started` };
}

function waitReason(
  input: DiagnosisInput,
  run: StepRunRow,
): { blocked_by: BlockedBy; summary: string } {
  switch (run.wait_kind) {
    case 'event': {
      const { event, correlation_key } = run.wait_spec;
      const key = correlation_key === null ? '' : ` with correlation key ${correlation_key}`;
      return {
        blocked_by: { kind: 'event', event, correlation_key },
        summary: `waits for an event ${event}${key} (POST /events)`,
      };
    }
    case 'task': {
      const { step_type } = run.wait_spec;
      const last = input.polls.get(step_type) ?? input.polls.get('*') ?? null;
      const noWorker = !last || input.now.getTime() - last.getTime() > NO_WORKER_SECONDS * 1000;
      const who = noWorker
        ? `no worker has polled for ${step_type} in the last ${NO_WORKER_SECONDS} s`
        : `waits for a worker polling for ${step_type} (last poll ${last?.toISOString()})`;
      return {
        blocked_by: {
          kind: 'external_task',
          step_type,
          last_poll_at: iso(last),
          no_worker: noWorker,
        },
        summary: `an external task: ${who}`,
      };
    }
    case 'limit': {
      const wait = run.wait_spec;
      const error = wait.key_error === undefined ? {} : { key_error: wait.key_error };
      return {
        blocked_by: {
          kind: 'concurrency',
          limit: 'named_limit',
          name: wait.name,
          key: wait.key,
          ...error,
          in_use: wait.in_use ?? 0,
          max: wait.max ?? 0,
          waiting: 1,
        },
        summary: run.wait_reason ?? `waits for a slot of limit ${wait.name}`,
      };
    }
    case 'child':
      return {
        blocked_by: { kind: 'sub_workflow', execution_id: run.wait_spec.execution_id },
        summary: `waits for its sub-workflow execution ${run.wait_spec.execution_id}`,
      };
    case null:
      return run.wake_at
        ? {
            blocked_by: { kind: 'timer', eta: run.wake_at.toISOString() },
            summary: `sleeps until ${run.wake_at.toISOString()}`,
          }
        : {
            blocked_by: { kind: 'worker_capacity', since: iso(run.updated_at) },
            summary: 'waits for a worker',
          };
  }
}

function pendingReason(
  input: DiagnosisInput,
  step: StepDefinition,
  own: ReadonlyMap<string, StepRunRow>,
): { blocked_by: BlockedBy; summary: string } {
  if (input.execution.status === 'paused') {
    return { blocked_by: { kind: 'paused' }, summary: 'not started: the execution is paused' };
  }
  const unfinished = step.depends_on.filter((id) => {
    const status = own.get(id)?.status;
    return status === undefined || !isIn(TERMINAL_STEP_STATUSES, status);
  });
  if (unfinished.length > 0) {
    return {
      blocked_by: { kind: 'dependency', dependencies: unfinished },
      summary: `waits for ${unfinished.join(', ')} to end`,
    };
  }
  const max = input.definition.config.max_concurrency;
  const inUse = input.runs.filter((run) => isIn(ACTIVE_STEP_STATUSES, run.status)).length;
  if (max !== undefined && inUse >= max) {
    const waiting = input.runs.filter((run) => run.status === 'pending').length;
    return {
      blocked_by: { kind: 'concurrency', limit: 'max_concurrency', in_use: inUse, max, waiting },
      summary: `ready, but ${inUse} of max_concurrency ${max} steps are in flight`,
    };
  }
  return {
    blocked_by: { kind: 'worker_capacity', since: null },
    summary: 'ready: waits for a worker to decide its condition or for_each and start it',
  };
}

function diagnoseRun(
  input: DiagnosisInput,
  step: StepDefinition,
  run: StepRunRow,
  own: ReadonlyMap<string, StepRunRow>,
): Pick<StepDiagnosis, 'blocked_by' | 'summary'> {
  const items = input.fanOuts.get(run.id);
  if (run.status === 'running' && items) return fanOutReason(step, run, items);
  if (run.status === 'running' && run.wait_kind === 'task') {
    return {
      blocked_by: null,
      summary: `an external task held by worker ${run.worker_id} since ${iso(run.heartbeat_at)}`,
    };
  }
  if (run.status === 'running') {
    return { blocked_by: null, summary: `running since ${iso(run.started_at) ?? 'now'}` };
  }
  if (run.status === 'waiting') return waitReason(input, run);
  const refused = limitWaitOf(run.limit_wait);
  if (run.status === 'queued' && refused?.kind === 'rate' && refused.rate) {
    const error = refused.key_error === undefined ? {} : { key_error: refused.key_error };
    return {
      blocked_by: {
        kind: 'rate_limit',
        name: refused.name,
        key: refused.key,
        ...error,
        limit: refused.rate.limit,
        period_seconds: refused.rate.period_seconds,
        eta: refused.eta ?? iso(run.wake_at) ?? input.now.toISOString(),
      },
      summary: run.wait_reason ?? `waits for a token of limit ${refused.name}`,
    };
  }
  if (run.status === 'queued' && run.wake_at && run.wake_at > input.now) {
    return {
      blocked_by: {
        kind: 'retry_backoff',
        attempt: run.attempt,
        eta: run.wake_at.toISOString(),
        last_error: run.error?.message ?? null,
      },
      summary: `attempt ${run.attempt} starts at ${run.wake_at.toISOString()} (retry backoff)`,
    };
  }
  const ahead = input.aheadByPriority ?? 0;
  if (run.status === 'queued' && ahead > 0) {
    const priority = input.execution.priority;
    return {
      blocked_by: { kind: 'priority_queue', priority, ahead },
      summary: `queued behind ${ahead} steps of executions with a higher priority than its ${priority}`,
    };
  }
  if (run.status === 'queued') {
    return {
      blocked_by: { kind: 'worker_capacity', since: iso(run.queued_at) },
      summary: `queued since ${iso(run.queued_at) ?? 'now'}: every worker slot is busy`,
    };
  }
  return pendingReason(input, step, own);
}

/** A queued execution: what holds it is its key's slots, for it and every one of its steps. */
function queuedReason(input: DiagnosisInput): { blocked_by: BlockedBy; summary: string } {
  const { execution, definition, standing, window } = input;
  if (window) {
    const eta = window.until.toISOString();
    const scope = window.key === '' ? '' : ` of key "${window.key}"`;
    return {
      blocked_by: {
        kind: 'debounce',
        key: window.key,
        eta,
        deadline: window.deadline.toISOString(),
      },
      summary: `debounced: collects starts${scope} until ${eta} (at the latest ${window.deadline.toISOString()})`,
    };
  }
  const config = definition.config.concurrency;
  const key = execution.concurrency_key;
  const max = config?.limit ?? 0;
  const inUse = standing?.in_use ?? 0;
  const position = key === null ? null : (standing?.ahead ?? 0) + 1;
  const keyError = standing?.key_error ?? null;
  const blocked_by: BlockedBy = {
    kind: 'execution_concurrency',
    key,
    key_error: keyError,
    in_use: inUse,
    max,
    position,
    on_limit: config?.on_limit ?? 'queue',
  };
  if (key === null) {
    return { blocked_by, summary: 'queued: a worker has yet to evaluate its concurrency key' };
  }
  const scope = key === '' ? 'its workflow' : `key "${key}"`;
  const failed = keyError === null ? '' : ` (its key expression failed: ${keyError})`;
  return {
    blocked_by,
    summary: `queued: ${inUse} of ${max} executions of ${scope} run${failed}; number ${position} in line`,
  };
}

/** The diagnosis of one execution: its unfinished runs, each with why it is not running. */
export function diagnose(input: DiagnosisInput): Diagnosis {
  const { execution, definition } = input;
  const base = { execution_id: execution.id, status: execution.status };
  if (isIn(FINISHED_EXECUTION_STATUSES, execution.status)) {
    return { ...base, blocked_by: null, summary: `ended: ${execution.status}`, steps: [] };
  }
  if (execution.status === 'queued') {
    const reason = queuedReason(input);
    const steps = input.runs
      .filter((run) => !isIn(TERMINAL_STEP_STATUSES, run.status))
      .map((run) => ({
        step_id: run.step_id,
        iteration: run.iteration,
        status: run.status,
        ...reason,
      }));
    return { ...base, ...reason, steps };
  }
  const own = new Map(input.runs.map((run) => [run.step_id, run]));
  const steps: StepDiagnosis[] = [];
  for (const step of definition.steps) {
    const run = own.get(step.id);
    if (!run || isIn(TERMINAL_STEP_STATUSES, run.status)) continue;
    const reason = diagnoseRun(input, step, run, own);
    steps.push({ step_id: step.id, iteration: run.iteration, status: run.status, ...reason });
  }
  const running = steps.filter((step) => step.blocked_by === null).map((step) => step.step_id);
  const first = steps.find((step) => step.blocked_by !== null);
  const summary =
    execution.status === 'paused'
      ? 'paused: running attempts finish, nothing new starts until POST /executions/{id}/resume'
      : running.length > 0
        ? `running: ${running.join(', ')}`
        : first
          ? `nothing runs now: ${first.step_id} ${first.summary}`
          : 'about to end: every step has ended';
  return {
    ...base,
    blocked_by: execution.status === 'paused' ? { kind: 'paused' } : null,
    summary,
    steps,
  };
}
