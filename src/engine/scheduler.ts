import {
  ACTIVE_STEP_STATUSES,
  isIn,
  type StepStatus,
  TERMINAL_STEP_STATUSES,
} from '../domain/statuses.js';
import type { StepDefinition, WorkflowDefinition } from '../domain/workflow-definition.js';

/**
 * The scheduler: pure functions from an execution's state to decisions. No I/O, no clock, no
 * expressions — the state manager evaluates conditions and applies the decisions in a
 * transaction, then asks again until nothing changes.
 */

/**
 * A step's own run in the current iteration (item_index -1). A for_each step's run counts its
 * items by state instead of listing them (docs/ARCHITECTURE.md, "Fan-outs"): one item's
 * transition costs the same whatever the number of items. Item rows, if given, are ignored.
 */
export interface RunState {
  step_id: string;
  item_index: number;
  status: StepStatus;
  /** Set once a for_each step expanded: how many items it has. */
  item_count?: number | null;
  /** Items queued or running. */
  items_active?: number;
  /** Items waiting (a sleep, an event, a task, a child execution). */
  items_waiting?: number;
  /** Items ended, and of them those failed or cancelled. */
  items_done?: number;
  items_failed?: number;
}

export interface SchedulerInput {
  definition: WorkflowDefinition;
  runs: readonly RunState[];
  paused: boolean;
}

export type SchedulerOutcome =
  /** Work is in flight or about to start. */
  | { kind: 'running' }
  /** Nothing can move until a timer fires or something outside answers. */
  | { kind: 'waiting' }
  /** Every step of the iteration ended well: finish (or start the next loop iteration). */
  | { kind: 'iteration_done' }
  /** A step failed and may not be ignored: the execution fails. */
  | { kind: 'failed'; step_id: string };

export interface SchedulerDecision {
  /** Pending steps whose dependencies are met, in definition order: evaluate condition, start. */
  ready: string[];
  /** Pending steps to skip: every declared dependency was skipped, so their branch is off. */
  skip: string[];
  /** How many more items of each for_each step start now (lowest index first), within its
   * item concurrency. */
  startItems: Array<{ step_id: string; count: number }>;
  /** for_each steps whose items are all finished; `failed` when any item failed. */
  finishForEach: Array<{ step_id: string; failed: boolean }>;
  outcome: SchedulerOutcome;
}

/** A run that ended without success: failed, or cancelled under a still-running execution. */
function isFailure(status: StepStatus | undefined): boolean {
  return status === 'failed' || status === 'cancelled';
}

function isMet(status: StepStatus | undefined, continueOnError: boolean): boolean {
  return status === 'completed' || status === 'skipped' || (isFailure(status) && continueOnError);
}

/** Each step's own run's status (not its for_each items'), by step id. */
function ownStatuses(runs: readonly RunState[]): Map<string, StepStatus> {
  const own = new Map<string, StepStatus>();
  for (const run of runs) if (run.item_index < 0) own.set(run.step_id, run.status);
  return own;
}

/** An expanded for_each step's own run: it works while its items do. */
function isExpanded(run: RunState): boolean {
  return run.item_index < 0 && run.item_count !== null && run.item_count !== undefined;
}

/**
 * Whether a run is at work (queued or running) and keeps its execution running. An expanded
 * for_each step's own run stays `running` while its items work: only its items count.
 */
function atWork(run: RunState): boolean {
  if (run.item_index >= 0) return false;
  if (isExpanded(run)) return run.status === 'running' && (run.items_active ?? 0) > 0;
  return run.status === 'queued' || run.status === 'running';
}

/** Whether a run, or one of a for_each step's items, waits. */
function waits(run: RunState): boolean {
  if (run.item_index >= 0) return false;
  if (isExpanded(run)) return run.status === 'running' && (run.items_waiting ?? 0) > 0;
  return run.status === 'waiting';
}

/**
 * What a running for_each step does next, from its counts: finish once every item has ended,
 * else start the next pending items within its item concurrency, unless paused.
 */
function scheduleForEach(
  step: StepDefinition,
  run: RunState,
  paused: boolean,
): Pick<SchedulerDecision, 'startItems' | 'finishForEach'> {
  const total = run.item_count ?? 0;
  const done = run.items_done ?? 0;
  if (done >= total) {
    return {
      startItems: [],
      finishForEach: [{ step_id: step.id, failed: (run.items_failed ?? 0) > 0 }],
    };
  }
  const inFlight = (run.items_active ?? 0) + (run.items_waiting ?? 0);
  const notStarted = total - done - inFlight;
  const count = Math.min(step.for_each_concurrency - inFlight, notStarted);
  if (paused || count <= 0) return { startItems: [], finishForEach: [] };
  return { startItems: [{ step_id: step.id, count }], finishForEach: [] };
}

/**
 * The iteration's outcome once the step decisions are made: done when nothing changes and every
 * step has ended; waiting when nothing changes, nothing is at work and something waits.
 */
function decideOutcome(
  input: SchedulerInput,
  own: ReadonlyMap<string, StepStatus>,
  decision: SchedulerDecision,
): SchedulerOutcome {
  const { definition, runs } = input;
  if (hasChanges(decision)) return { kind: 'running' };
  const stepStatuses = definition.steps.map((step) => own.get(step.id));
  if (
    stepStatuses.every((status) => status !== undefined && isIn(TERMINAL_STEP_STATUSES, status))
  ) {
    return { kind: 'iteration_done' };
  }
  if (!runs.some(atWork) && runs.some(waits)) {
    return { kind: 'waiting' };
  }
  return { kind: 'running' };
}

/** Decides what happens next in one iteration of an execution. */
export function schedule(input: SchedulerInput): SchedulerDecision {
  const { definition, paused } = input;
  const own = ownStatuses(input.runs);
  const ownRuns = new Map(
    input.runs.filter((run) => run.item_index < 0).map((run) => [run.step_id, run]),
  );
  const continueOnError = new Map(
    definition.steps.map((step) => [step.id, step.continue_on_error]),
  );

  const decision: SchedulerDecision = {
    ready: [],
    skip: [],
    startItems: [],
    finishForEach: [],
    outcome: { kind: 'running' },
  };

  const blockingFailure = definition.steps.find(
    (step) => isFailure(own.get(step.id)) && !step.continue_on_error,
  );
  if (blockingFailure) {
    decision.outcome = { kind: 'failed', step_id: blockingFailure.id };
    return decision;
  }

  const maxConcurrency = definition.config.max_concurrency;
  let active = [...own.values()].filter((status) => isIn(ACTIVE_STEP_STATUSES, status)).length;

  for (const step of definition.steps) {
    const status = own.get(step.id);
    const run = ownRuns.get(step.id);
    if (status === 'running' && step.for_each !== null && run && isExpanded(run)) {
      const next = scheduleForEach(step, run, paused);
      decision.startItems.push(...next.startItems);
      decision.finishForEach.push(...next.finishForEach);
      continue;
    }
    if (status !== 'pending') continue;
    const dependencies = step.depends_on.map((id) => own.get(id));
    const allMet = step.depends_on.every((id, index) =>
      isMet(dependencies[index], continueOnError.get(id) ?? false),
    );
    if (!allMet) continue;
    const branchSkipped =
      !step.implicit_dependencies &&
      dependencies.length > 0 &&
      dependencies.every((dependency) => dependency === 'skipped');
    if (branchSkipped) {
      decision.skip.push(step.id);
    } else if (!paused && (maxConcurrency === undefined || active < maxConcurrency)) {
      decision.ready.push(step.id);
      active += 1;
    }
  }

  decision.outcome = decideOutcome(input, own, decision);
  return decision;
}

/** Whether a decision asks for anything: a step to start, skip or finish. */
export function hasChanges(decision: SchedulerDecision): boolean {
  return (
    decision.ready.length +
      decision.skip.length +
      decision.startItems.length +
      decision.finishForEach.length >
    0
  );
}

/**
 * What the completion of one step's run does, when it is simple enough to apply without
 * reading the iteration again, with the runs that outcome rests on:
 * - `end`: every run has ended, the iteration is over;
 * - `successor`: exactly one step becomes ready and starting it takes no decision (no
 *   condition, no for_each);
 * - `quiet`: nothing becomes ready, and `active` (one of them still queued or running) keeps
 *   the execution running.
 * `blockers` names, for each other step depending on the completed one, one of its
 * dependencies still unfinished: while they all are, no other step becomes ready.
 *
 * The engine predicts from the runs as a worker saw them, maybe a while ago, and checks the
 * witnesses under the execution's lock. That is sound because (1) every committed state of a
 * running execution is a fixpoint of the scheduler (each transaction applies its decisions),
 * so the completion can only make its own dependents ready, and (2) an ended run stays ended
 * while its execution runs, so what the prediction needs ended still is. Not when paused, nor
 * with max_concurrency, where an end frees a slot for any step.
 */
export type CompletionOutcome =
  | { kind: 'end' }
  | { kind: 'successor'; stepId: string; blockers: string[] }
  | { kind: 'quiet'; blockers: string[]; active: string[] };

/** Active witnesses offered at most: the most recently added are the likeliest to still run. */
const MAX_ACTIVE_WITNESSES = 8;

/** `input.runs` hold the completed run (of `stepId`) as completed. */
export function predictCompletion(input: SchedulerInput, stepId: string): CompletionOutcome | null {
  const { definition, runs } = input;
  if (input.paused) return null;
  const decision = schedule(input);
  if (decision.outcome.kind === 'iteration_done') return { kind: 'end' };
  if (definition.config.max_concurrency !== undefined || decision.outcome.kind !== 'running') {
    return null;
  }
  if (decision.skip.length + decision.startItems.length + decision.finishForEach.length > 0) {
    return null;
  }
  const own = ownStatuses(runs);
  const [successor, ...more] = decision.ready;
  if (more.length > 0) return null;
  const blockers = new Set<string>();
  for (const step of definition.steps) {
    if (step.id === successor || !step.depends_on.includes(stepId)) continue;
    if (own.get(step.id) !== 'pending') return null;
    const blocker = [...step.depends_on].reverse().find((id) => {
      const status = own.get(id);
      return id !== stepId && status !== undefined && !isIn(TERMINAL_STEP_STATUSES, status);
    });
    if (blocker === undefined) return null;
    blockers.add(blocker);
  }
  if (successor !== undefined) {
    const step = definition.steps.find((candidate) => candidate.id === successor);
    if (!step || step.condition !== null || step.for_each !== null) return null;
    return { kind: 'successor', stepId: successor, blockers: [...blockers] };
  }
  // Witnesses are named by step: a step's own run, never one of its items.
  const active = runs
    .filter((run) => atWork(run) && !isExpanded(run))
    .map((run) => run.step_id)
    .slice(-MAX_ACTIVE_WITNESSES);
  if (active.length === 0) return null;
  return { kind: 'quiet', blockers: [...blockers], active };
}

/** Steps no other step depends on: their outputs are the execution's default output. */
export function sinkSteps(definition: WorkflowDefinition): string[] {
  const dependedOn = new Set(definition.steps.flatMap((step) => step.depends_on));
  return definition.steps.filter((step) => !dependedOn.has(step.id)).map((step) => step.id);
}
