import type { BulkAction, ItemOutcome } from '../../domain/bulk-actions.js';
import type { ClaimedRun, ExecutionRow, StepRunRow } from '../../domain/execution.js';
import type { Queryable } from '../../store/db.js';
import type { EventRow } from '../../store/event-store.js';
import { admit } from './admission.js';
import { advance } from './advance.js';
import { type RetryEdits, type RetryPlan, retryWithEdits } from './edit-retry.js';
import { type Effects, noEffects } from './effects.js';
import { type ExecutionOutcome, finish } from './finish.js';
import { type AttemptFence, type AttemptReport, type AttemptResult, Machine } from './machine.js';
import { type ActionRequest, act, actOnItems } from './operator-actions.js';
import { claimAttempt, recordAttempt } from './record-attempt.js';
import { type Started, type StartRequest, start, startAndAnswer } from './start.js';
import { type UpgradeRequest, upgrade } from './upgrade.js';
import { childEnded, deliverEvent, retakeBufferedEvent } from './waits.js';

export type {
  AttemptFence,
  AttemptReport,
  AttemptResult,
  InlineSlot,
  StateManagerOptions,
} from './machine.js';
export { eventOutput } from './waits.js';

type RunRef = Pick<StepRunRow, 'id' | 'attempt' | 'execution_id'>;

/**
 * The execution state machine: applies scheduler decisions and attempt results to Postgres,
 * one transaction per change, with the execution row locked so parallel completions of the
 * same execution never race. Every change returns the effects to apply after commit.
 *
 * This class is its one entry point; the work is done by start.ts, advance.ts,
 * record-attempt.ts, waits.ts, operator-actions.ts and finish.ts (see docs/ARCHITECTURE.md,
 * "The state machine"). It holds the options and caches they share (Machine).
 */
export class StateManager extends Machine {
  /** Starts an execution in the caller's transaction: API, events, schedules, sub-workflows. */
  start(tx: Queryable, request: StartRequest, effects: Effects = noEffects()): Promise<Started> {
    return start(this, tx, request, effects);
  }

  /** The API's start, in a transaction of its own; `answer` reads the response. */
  startAndAnswer<R>(
    request: StartRequest,
    answer: (db: Queryable, started: Started) => Promise<R>,
  ): Promise<{ started: Started; answer: R }> {
    return startAndAnswer(this, request, answer);
  }

  /** Runs the scheduler to a fixpoint on a locked execution (an advance job, the sweep's
   * nudge); a queued one is first admitted, if its concurrency key has a free slot. */
  advance(
    tx: Queryable,
    execution: ExecutionRow,
    effects: Effects = noEffects(),
  ): Promise<Effects> {
    return execution.status === 'queued'
      ? admit(this, tx, execution, effects)
      : advance(this, tx, execution, effects);
  }

  /** Ends a locked execution: stops what still runs. */
  finish(
    tx: Queryable,
    execution: ExecutionRow,
    outcome: ExecutionOutcome,
    effects: Effects,
  ): Promise<ExecutionRow> {
    return finish(this, tx, execution, outcome, effects);
  }

  /** Claims an attempt for a worker under a new lease; null when it is no longer current. */
  claimAttempt(
    runId: number,
    attempt: number,
    leaseId: string,
    timeoutSeconds: number,
  ): Promise<ClaimedRun | null> {
    return claimAttempt(this, runId, attempt, leaseId, timeoutSeconds);
  }

  /** Records an attempt's result, fenced; null when the fence no longer holds. */
  recordAttempt(
    runId: number,
    executionId: string,
    fence: AttemptFence,
    result: AttemptResult,
    report?: AttemptReport,
  ): Promise<Effects | null> {
    return recordAttempt(this, runId, executionId, fence, result, report);
  }

  /** Delivers a stored event to a run that waited for it. */
  deliverEvent(event: EventRow, candidate: RunRef): Promise<Effects> {
    return deliverEvent(this, event, candidate);
  }

  /** Looks again for a buffered event for a run long waiting; true when it resumed. */
  retakeBufferedEvent(idle: RunRef, effects: Effects): Promise<boolean> {
    return retakeBufferedEvent(this, idle, effects);
  }

  /** Resumes the run that waits for this ended sub-workflow execution. */
  childEnded(childExecutionId: string): Promise<Effects> {
    return childEnded(this, childExecutionId);
  }

  cancel(id: string, request: ActionRequest): Promise<Effects> {
    return act(this, 'cancel', id, request);
  }

  retry(id: string, request: ActionRequest): Promise<Effects> {
    return act(this, 'retry', id, request);
  }

  /** A retry with edits, or its dry run (edit-retry.ts). */
  retryWithEdits(
    id: string,
    edits: RetryEdits,
    request: ActionRequest,
  ): Promise<{ plan: RetryPlan; effects: Effects }> {
    return retryWithEdits(this, id, edits, request);
  }

  pause(id: string, request: ActionRequest): Promise<Effects> {
    return act(this, 'pause', id, request);
  }

  resume(id: string, request: ActionRequest): Promise<Effects> {
    return act(this, 'resume', id, request);
  }

  /** Moves an execution to another version of its workflow, or only plans it (dry run). */
  upgrade(id: string, request: UpgradeRequest, asked: ActionRequest): ReturnType<typeof upgrade> {
    return upgrade(this, id, request, asked);
  }

  /** Executions of a bulk operation: each acted on or skipped, its outcome recorded with it. */
  actOnItems(
    action: BulkAction,
    ids: readonly string[],
    request: ActionRequest,
    record: (tx: Queryable, id: string, outcome: ItemOutcome) => Promise<boolean>,
  ): ReturnType<typeof actOnItems> {
    return actOnItems(this, action, ids, request, record);
  }
}
