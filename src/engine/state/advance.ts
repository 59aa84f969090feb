import type { ExecutionRow, StepRunRow } from '../../domain/execution.js';
import { ADVANCING_EXECUTION_STATUSES } from '../../domain/statuses.js';
import type { StepDefinition, WorkflowDefinition } from '../../domain/workflow-definition.js';
import type { Queryable } from '../../store/db.js';
import * as executions from '../../store/executions.js';
import * as stepRuns from '../../store/step-runs.js';
import { evaluateCondition, evaluateExpression, expressionFailureType } from '../expressions.js';
import { type SchedulerDecision, schedule } from '../scheduler.js';
import type { ExpressionContext } from '../steps/types.js';
import { type Effects, jobFor, noEffects, queueJobs } from './effects.js';
import { executionOutput, finish } from './finish.js';
import { claimedRun, expressionContext, firstIteration, withChanges } from './iteration-runs.js';
import type { InlineSlot, Machine } from './machine.js';

/** Bound on scheduler passes per transaction: every pass changes at least one run, so this
 * only trips on a bug, and then fails loudly instead of spinning. */
const MAX_PASSES = 10_000;

/** MAX_FOR_EACH_ITEMS when the machine's options do not say. */
const DEFAULT_MAX_FOR_EACH_ITEMS = 100_000;

/** What a caller of advance knows, offers, and learns. */
export interface AdvanceOptions {
  /** The current iteration's runs, when the caller has just read them. */
  runs?: StepRunRow[];
  inline?: InlineSlot | undefined;
  /** Set when the scheduler settled without ending the execution: the execution and its
   * current iteration's runs as the transaction leaves them. */
  settled?: { execution: ExecutionRow; runs: StepRunRow[] };
}

/** One advance in progress: the execution and its iteration's runs as the transaction has
 * left them so far. Every change returns its rows, so the runs are never read again. */
interface Pass {
  m: Machine;
  tx: Queryable;
  definition: WorkflowDefinition;
  byId: Map<string, StepDefinition>;
  effects: Effects;
  inline: InlineSlot | undefined;
  current: ExecutionRow;
  runs: StepRunRow[];
  claimedInline: StepRunRow | null;
}

const present = (row: StepRunRow | null): StepRunRow[] => (row ? [row] : []);

const ownRun = (p: Pass, stepId: string): StepRunRow =>
  p.runs.find((run) => run.step_id === stepId && run.item_index < 0) as StepRunRow;

const contextOf = (p: Pass): ExpressionContext =>
  expressionContext(p.current, p.current.current_iteration, p.runs);

const errorMessage = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);

/**
 * Runs the scheduler to a fixpoint inside the caller's transaction (execution row locked):
 * skips, starts, for_each expansion, loop iterations, and the execution's end. `known.runs`
 * are the current iteration's runs when the caller has just read them. With an inline slot,
 * one run that becomes ready is claimed for the caller instead of queued.
 */
export async function advance(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
  effects: Effects = noEffects(),
  known: AdvanceOptions = {},
): Promise<Effects> {
  if (!ADVANCING_EXECUTION_STATUSES.includes(execution.status)) return effects;
  const definition = await m.definition(tx, execution.workflow_id, execution.workflow_version);
  let runs = await withFreshCounts(
    tx,
    known.runs ?? (await stepRuns.loadIterationRuns(tx, execution.id, execution.current_iteration)),
  );
  if (runs.length === 0 && definition.steps.length > 0) {
    runs = await insertIteration(tx, execution, definition, effects);
  }
  const byId = new Map(definition.steps.map((step) => [step.id, step]));
  const p: Pass = {
    m,
    tx,
    definition,
    byId,
    effects,
    inline: known.inline,
    current: execution,
    runs,
    claimedInline: null,
  };
  for (let pass = 0; pass < MAX_PASSES; pass += 1) {
    const decision = schedule({ definition, runs: p.runs, paused: p.current.status === 'paused' });
    if (decision.outcome.kind === 'failed') {
      await failOnStep(p, decision.outcome.step_id);
      return effects;
    }
    const changed = [
      ...(await applySkips(p, decision.skip)),
      ...(await startReady(p, decision)),
      ...(await finishForEach(p, decision.finishForEach)),
    ];
    if (changed.length > 0) {
      p.runs = withChanges(p.runs, changed);
    } else if (decision.outcome.kind === 'iteration_done') {
      if (!(await endIteration(p))) return effects;
    } else {
      await settle(p, decision.outcome.kind, known);
      return effects;
    }
  }
  throw new Error(`scheduler did not settle for execution ${execution.id}`);
}

/**
 * The steps' own runs of `runs`, each running for_each step's run with its item counts folded
 * in and read again (docs/ARCHITECTURE.md, "Fan-outs").
 */
async function withFreshCounts(tx: Queryable, runs: readonly StepRunRow[]): Promise<StepRunRow[]> {
  const own = runs.filter((run) => run.item_index < 0);
  const expanded = own.filter((run) => run.status === 'running' && run.item_count !== null);
  if (expanded.length === 0) return own;
  return withChanges(
    own,
    await stepRuns.foldItemCounts(
      tx,
      expanded.map((run) => run.id),
    ),
  );
}

/** Inserts the runs of the execution's current iteration, as firstIteration plans them. */
async function insertIteration(
  tx: Queryable,
  execution: ExecutionRow,
  definition: WorkflowDefinition,
  effects: Effects,
): Promise<StepRunRow[]> {
  const first = firstIteration(definition, execution.status === 'paused');
  const runs = await stepRuns.insertIterationRuns(
    tx,
    execution.id,
    execution.current_iteration,
    first.stepIds,
    first.queued,
  );
  queueJobs(execution, runs, effects);
  return runs;
}

/** A step failed and may not be ignored: the execution fails with its error. */
async function failOnStep(p: Pass, stepId: string): Promise<void> {
  const failedRun = ownRun(p, stepId);
  const message = failedRun.error?.message ?? 'failed';
  await finish(
    p.m,
    p.tx,
    p.current,
    {
      status: 'failed',
      error: `Step "${failedRun.step_id}" failed: ${message}`,
      errorDetails: { step_id: failedRun.step_id, ...failedRun.error },
    },
    p.effects,
    p.runs,
  );
}

async function applySkips(p: Pass, skip: readonly string[]): Promise<StepRunRow[]> {
  if (skip.length === 0) return [];
  return stepRuns.skipRuns(
    p.tx,
    skip.map((id) => ownRun(p, id).id),
    'every dependency was skipped',
  );
}

/** Decides the ready steps (condition, for_each), then queues what starts, or claims one
 * run of it inline. */
async function startReady(p: Pass, decision: SchedulerDecision): Promise<StepRunRow[]> {
  const changed: StepRunRow[] = [];
  const toQueue: StepRunRow[] = [];
  for (const stepId of decision.ready) {
    const run = ownRun(p, stepId);
    const decided = await decideStart(p, p.byId.get(stepId) as StepDefinition, run);
    if (decided) changed.push(...decided);
    else toQueue.push(run);
  }
  if (toQueue.length > 0) changed.push(...(await queueOrClaim(p, toQueue)));
  changed.push(...(await startItems(p, decision.startItems)));
  return changed;
}

/**
 * Queues the next items of for_each steps (inserting a batch of item runs when too few
 * exist); returns each step's own run as its counts now stand. Items never enter `p.runs`.
 */
async function startItems(p: Pass, starts: SchedulerDecision['startItems']): Promise<StepRunRow[]> {
  if (starts.length === 0) return [];
  const parents: number[] = [];
  for (const { step_id, count } of starts) {
    const parent = ownRun(p, step_id);
    parents.push(parent.id);
    for (const row of await stepRuns.startItems(p.tx, parent.id, count)) {
      p.effects.jobs.push({ ...jobFor(p.current, row.id, row.step_id, row.attempt), item: true });
    }
  }
  return stepRuns.foldItemCounts(p.tx, parents);
}

/**
 * A ready step's condition and for_each: the runs they change (skipped, expanded, finished,
 * or failed on an expression error), or null when the run simply starts.
 */
async function decideStart(
  p: Pass,
  step: StepDefinition,
  run: StepRunRow,
): Promise<StepRunRow[] | null> {
  const context = contextOf(p);
  const timeout = { timeoutMs: p.m.options.expressionTimeoutMs };
  try {
    if (step.condition !== null && !(await evaluateCondition(step.condition, context, timeout))) {
      const reason = `condition is false: ${step.condition}`.slice(0, 500);
      return await stepRuns.skipRuns(p.tx, [run.id], reason);
    }
    if (step.for_each === null) return null;
    const items = await evaluateExpression(step.for_each, context, timeout);
    const list = items === undefined ? [] : Array.isArray(items) ? items : [items];
    const limit = p.m.options.maxForEachItems ?? DEFAULT_MAX_FOR_EACH_ITEMS;
    if (list.length > limit) return present(await failForEachLimit(p, run, list.length, limit));
    if (list.length > 0) return await stepRuns.expandForEach(p.tx, run, list);
    return present(await stepRuns.finishRun(p.tx, run.id, { status: 'completed', output: [] }));
  } catch (error) {
    const failed = await stepRuns.finishRun(p.tx, run.id, {
      status: 'failed',
      error: {
        message: errorMessage(error),
        type: expressionFailureType(error),
        retryable: false,
        attempt: run.attempt,
      },
    });
    return present(failed);
  }
}

/** A for_each over more items than the limit fails its step before any item run exists:
 * a fan-out that size would flood the table and the queue. */
function failForEachLimit(
  p: Pass,
  run: StepRunRow,
  count: number,
  limit: number,
): Promise<StepRunRow | null> {
  return stepRuns.finishRun(p.tx, run.id, {
    status: 'failed',
    error: {
      message: `for_each evaluated to ${count} items, more than the limit of ${limit} (MAX_FOR_EACH_ITEMS)`,
      type: 'for_each_limit',
      retryable: false,
      attempt: run.attempt,
      details: { count, limit },
    },
  });
}

/** Queues the runs that start; with an inline slot still free, claims one it accepts. */
async function queueOrClaim(p: Pass, toQueue: readonly StepRunRow[]): Promise<StepRunRow[]> {
  const { inline, byId, tx } = p;
  const changed: StepRunRow[] = [];
  const taken =
    inline && p.claimedInline === null
      ? toQueue.find((run) => inline.accepts(byId.get(run.step_id) as StepDefinition))
      : undefined;
  if (inline && taken) {
    const step = byId.get(taken.step_id) as StepDefinition;
    p.claimedInline = await stepRuns.claimRunInline(
      tx,
      taken.id,
      inline.leaseId,
      step.timeout_seconds,
    );
    changed.push(...present(p.claimedInline));
  }
  const queued = await stepRuns.queueRuns(
    tx,
    toQueue.filter((run) => run !== taken).map((run) => run.id),
  );
  for (const row of queued) {
    p.effects.jobs.push(jobFor(p.current, row.id, row.step_id, row.attempt));
  }
  changed.push(...queued);
  return changed;
}

/** Ends the for_each steps whose items all finished: their outputs, or the first failure. */
async function finishForEach(
  p: Pass,
  done: SchedulerDecision['finishForEach'],
): Promise<StepRunRow[]> {
  const changed: StepRunRow[] = [];
  for (const { step_id, failed } of done) {
    const parent = ownRun(p, step_id);
    if (!failed) {
      changed.push(...present(await stepRuns.completeForEach(p.tx, parent.id)));
      continue;
    }
    const failedItem = await stepRuns.firstFailedItem(p.tx, parent);
    const row = await stepRuns.finishRun(p.tx, parent.id, {
      status: 'failed',
      error: {
        message: `item ${failedItem?.item_index} failed: ${failedItem?.error?.message ?? failedItem?.status}`,
        type: 'for_each_item_failed',
        retryable: false,
        attempt: parent.attempt,
        details: { item_index: failedItem?.item_index, error: failedItem?.error },
      },
    });
    changed.push(...present(row));
  }
  return changed;
}

/**
 * Every step of the iteration ended well: a loop whose condition still holds starts its next
 * iteration (true: the scheduler goes on); otherwise the execution ends with its output.
 */
async function endIteration(p: Pass): Promise<boolean> {
  const { m, tx, definition } = p;
  const context = contextOf(p);
  const loop = definition.config.loop;
  const fail = async (error: string) => {
    await finish(m, tx, p.current, { status: 'failed', error }, p.effects, p.runs);
    return false;
  };
  if (definition.workflow_type === 'loop' && loop) {
    const done = p.current.current_iteration + 1;
    let again = false;
    try {
      again =
        done < loop.max_iterations &&
        (loop.condition === undefined ||
          (await evaluateCondition(
            loop.condition,
            { ...context, iteration: done },
            { timeoutMs: m.options.expressionTimeoutMs },
          )));
    } catch (error) {
      return fail(`Loop condition failed: ${errorMessage(error)}`);
    }
    if (again) {
      await executions.startIteration(tx, p.current.id, done);
      p.current = { ...p.current, current_iteration: done };
      p.runs = await insertIteration(tx, p.current, definition, p.effects);
      return true;
    }
  }
  let output: unknown;
  try {
    output = await executionOutput(m, definition, context);
  } catch (error) {
    return fail(`Output expression failed: ${errorMessage(error)}`);
  }
  await finish(m, tx, p.current, { status: 'completed', output }, p.effects, p.runs);
  return false;
}

/** Nothing more to do now: the execution's status says why, and an inline claim is handed
 * to the caller with the runs as they stand. */
async function settle(
  p: Pass,
  outcome: 'running' | 'waiting',
  known: AdvanceOptions,
): Promise<void> {
  const { current, runs, inline, claimedInline } = p;
  const status =
    current.status === 'paused' ? 'paused' : outcome === 'waiting' ? 'waiting' : 'running';
  if (status !== current.status) await executions.setExecutionStatus(p.tx, current.id, status);
  if (inline && claimedInline) inline.claimed = claimedRun(current, claimedInline, runs);
  known.settled = { execution: { ...current, status }, runs };
}
