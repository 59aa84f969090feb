import type { ClaimedRun, ExecutionRow, RunSnapshot, StepRunRow } from '../../domain/execution.js';
import { ADVANCING_EXECUTION_STATUSES } from '../../domain/statuses.js';
import type { WorkflowDefinition } from '../../domain/workflow-definition.js';
import type { Queryable } from '../../store/db.js';
import * as completions from '../../store/run-completions.js';
import * as stepRuns from '../../store/step-runs.js';
import { type CompletionOutcome, predictCompletion } from '../scheduler.js';
import { advance } from './advance.js';
import { type Effects, executionOfRun, jobFor, noEffects } from './effects.js';
import { ended, executionOutput } from './finish.js';
import { claimedExecution, claimedRun, expressionContext, withChanges } from './iteration-runs.js';
import { releaseLimitKeys } from './limit-release.js';
import { lockExecutionIn } from './lock.js';
import type { AttemptFence, AttemptReport, AttemptResult, InlineSlot, Machine } from './machine.js';
import { applyOutcome } from './outcome.js';
import { park } from './waits.js';

/**
 * How a worker claims an attempt, and the one way to record an attempt's result, for the
 * worker, the tasks API and the sweep:
 * fenced by its lease (or attempt), so a stale holder (timed out, cancelled, superseded by a
 * redelivered job) changes nothing and gets null back.
 */

/**
 * Claims an attempt for a worker under a new lease (one statement, no transaction): null
 * when the attempt is no longer current. The lease fences the attempt's record.
 */
export function claimAttempt(
  m: Machine,
  runId: number,
  attempt: number,
  leaseId: string,
  timeoutSeconds: number,
): Promise<ClaimedRun | null> {
  return stepRuns.claimRun(m.options.pool, runId, attempt, leaseId, timeoutSeconds);
}

/** Claims in a row that find an attempt abandoned, when MAX_CRASHED_CLAIMS is not given. */
export const DEFAULT_MAX_CRASHED_CLAIMS = 3;

/**
 * The result of a claim that must not run its handler: the attempt's process died more than
 * MAX_CRASHED_CLAIMS times in a row while running it (a poison pill: OOM, a fatal V8 error, a
 * kill it provokes), so running it again would only take down one more worker. Not retryable:
 * the run fails, and the execution fails or continues per `continue_on_error`. Null for every
 * other claim. Decided from the claim's own row: no statement of its own.
 */
export function crashedAttempt(
  m: Machine,
  claim: ClaimedRun,
): Extract<AttemptResult, { kind: 'failed' }> | null {
  const limit = m.options.maxCrashedClaims ?? DEFAULT_MAX_CRASHED_CLAIMS;
  const crashes = claim.crashed_claims ?? 0;
  if (crashes <= limit) return null;
  return {
    kind: 'failed',
    error: {
      message: `step ${claim.step_id} was not run again: its process died ${crashes} times while running attempt ${claim.attempt} (MAX_CRASHED_CLAIMS=${limit})`,
      type: 'crashed',
      retryable: false,
      attempt: claim.attempt,
      details: { crashed_claims: crashes, max_crashed_claims: limit },
    },
  };
}

/** A completed attempt as its worker reports it: what both completion paths work from. */
interface WorkerCompletion {
  runId: number;
  executionId: string;
  leaseId: string;
  output: unknown;
  report: AttemptReport;
}

/**
 * Records the result of one attempt. `report` comes from the worker that ran the attempt
 * (absent for the sweep and the tasks API): it lets a completion take the one-statement
 * path, and may offer an inline slot.
 */
export async function recordAttempt(
  m: Machine,
  runId: number,
  executionId: string,
  fence: AttemptFence,
  result: AttemptResult,
  report?: AttemptReport,
): Promise<Effects | null> {
  // A worker's completion, when it reported its claim: the paths that know the run's place.
  const completion: WorkerCompletion | null =
    result.kind === 'completed' && 'leaseId' in fence && report
      ? { runId, executionId, leaseId: fence.leaseId, output: result.output, report }
      : null;
  // A run holding slots of named limits takes the general path, which hands them on.
  if (completion && completion.report.claim.limit_keys === null) {
    const effects =
      completion.report.claim.item_index >= 0
        ? await completeItemAlone(m, completion)
        : await completeOnPrediction(m, completion);
    if (effects) return effects;
  }
  const client = await m.options.pool.connect();
  try {
    await client.query('BEGIN');
    const effects = completion
      ? await recordCompletion(m, client, completion)
      : await recordFenced(m, client, runId, executionId, fence, result, report);
    await client.query(effects ? 'COMMIT' : 'ROLLBACK');
    return effects;
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

/**
 * The one-statement path of a for_each item (wf_complete_item): its completion hands its slot
 * to the next pending item of its step, claimed for this worker when it runs that step
 * inline, else queued. Null when the general path must decide (no item left to start, a
 * paused or ended execution, a lost lease): nothing changed. Nothing here reads the step's
 * other items or writes a row other items' completions write.
 */
async function completeItemAlone(
  m: Machine,
  completion: WorkerCompletion,
): Promise<Effects | null> {
  const { claim, inline, startedAt } = completion.report;
  const parent = claim.iteration_runs.find(
    (run) => run.step_id === claim.step_id && run.item_index < 0,
  );
  const definition = await m.definition(m.options.pool, claim.workflow_id, claim.workflow_version);
  const step = definition.steps.find((candidate) => candidate.id === claim.step_id);
  if (!parent || !step) return null;
  const next = inline?.accepts(step)
    ? { leaseId: inline.leaseId, timeoutSeconds: step.timeout_seconds }
    : null;
  const rows = await completions.completeItem(m.options.pool, {
    execution: { id: claim.execution_id, current_iteration: claim.iteration },
    run: { id: claim.id, leaseId: completion.leaseId, output: completion.output, startedAt },
    parentId: parent.id,
    itemIndex: claim.item_index,
    next,
    batch: stepRuns.ITEM_BATCH,
  });
  if (!rows.some((row) => row.id === claim.id)) return null;
  const effects = noEffects();
  const started = rows.find((row) => row.id !== claim.id);
  if (started && inline && next) inline.claimed = claimedRun(claim, started, claim.iteration_runs);
  else if (started) {
    const job = jobFor(executionOfRun(claim), started.id, started.step_id, started.attempt);
    effects.jobs.push({ ...job, item: true });
  }
  return effects;
}

/** The claim's iteration with the completed run in it, and what its completion does. */
interface Prediction {
  definition: WorkflowDefinition;
  completed: RunSnapshot[];
  outcome: CompletionOutcome;
  runOf(stepId: string): RunSnapshot;
  /** The execution and run as the one-statement store paths take them. */
  predicted: {
    execution: { id: string; current_iteration: number };
    run: { id: number; leaseId: string; output: unknown; startedAt: Date };
  };
}

/**
 * The one-statement paths. From the runs the worker last saw, predict what its completion
 * does (predictCompletion); when that is all of it, one statement applies it after
 * checking, under the execution's lock, that what the prediction rests on still holds:
 * - the last step ends the execution (no loop to decide, no output expression: the output
 *   is the sink steps' outputs);
 * - nothing follows yet, others still run;
 * - exactly one quick step becomes ready: it is claimed for the worker.
 * Null when no prediction applies or it no longer holds: nothing changed, and the general
 * path reads and decides.
 */
async function completeOnPrediction(
  m: Machine,
  completion: WorkerCompletion,
): Promise<Effects | null> {
  const prediction = await predict(m, completion);
  if (!prediction) return null;
  const { outcome, runOf, predicted } = prediction;
  const { pool } = m.options;
  switch (outcome.kind) {
    case 'end':
      return endOnPrediction(m, completion, prediction);
    case 'quiet': {
      const done = await completions.completeQuietly(pool, {
        ...predicted,
        blockers: outcome.blockers.map((id) => runOf(id).id),
        active: outcome.active.map((id) => runOf(id).id),
      });
      return done ? noEffects() : null;
    }
    case 'successor':
      return claimOnPrediction(m, completion, prediction, outcome);
  }
}

async function predict(m: Machine, completion: WorkerCompletion): Promise<Prediction | null> {
  const { claim, startedAt } = completion.report;
  if (claim.item_index >= 0) return null;
  const definition = await m.definition(m.options.pool, claim.workflow_id, claim.workflow_version);
  const completed = claim.iteration_runs.map((run) =>
    run.id === claim.id ? { ...run, status: 'completed' as const, output: completion.output } : run,
  );
  const outcome = predictCompletion({ definition, runs: completed, paused: false }, claim.step_id);
  if (!outcome) return null;
  return {
    definition,
    completed,
    outcome,
    runOf: (stepId) =>
      completed.find((run) => run.step_id === stepId && run.item_index < 0) as RunSnapshot,
    predicted: {
      execution: { id: claim.execution_id, current_iteration: claim.iteration },
      run: { id: claim.id, leaseId: completion.leaseId, output: completion.output, startedAt },
    },
  };
}

/** The last step ends the execution, with its sink steps' outputs. */
async function endOnPrediction(
  m: Machine,
  completion: WorkerCompletion,
  { definition, completed, predicted }: Prediction,
): Promise<Effects | null> {
  const { claim } = completion.report;
  const last = definition.workflow_type !== 'loop' || definition.config.loop === undefined;
  if (!last || typeof definition.config.output === 'string') return null;
  // Its end frees a concurrency slot: the general path hands it on under the key's lock.
  if (definition.config.concurrency !== undefined) return null;
  const output = await executionOutput(
    m,
    definition,
    expressionContext(claimedExecution(claim), claim.iteration, completed),
  );
  const finished = await completions.completeAndFinish(m.options.pool, { ...predicted, output });
  if (!finished) return null;
  const effects = noEffects();
  ended(m, finished, effects);
  return effects;
}

/** Exactly one quick step becomes ready: it is claimed for the worker's inline slot. */
async function claimOnPrediction(
  m: Machine,
  completion: WorkerCompletion,
  { definition, runOf, predicted }: Prediction,
  outcome: Extract<CompletionOutcome, { kind: 'successor' }>,
): Promise<Effects | null> {
  const { claim, inline } = completion.report;
  const step = definition.steps.find((candidate) => candidate.id === outcome.stepId);
  if (!inline || !step || !inline.accepts(step)) return null;
  const rows = await completions.completeAndClaim(m.options.pool, {
    ...predicted,
    blockers: outcome.blockers.map((id) => runOf(id).id),
    next: {
      id: runOf(outcome.stepId).id,
      leaseId: inline.leaseId,
      timeoutSeconds: step.timeout_seconds,
    },
  });
  if (!rows) return null;
  inline.claimed = claimedRun(
    claim,
    rows.claimed,
    withChanges<RunSnapshot>(claim.iteration_runs, [rows.completed]),
  );
  return noEffects();
}

/**
 * The general path of a worker's completion, in the caller's transaction: lock the
 * execution, complete the run while reading the iteration (the transaction's only read of
 * runs), then apply what the scheduler decides.
 */
async function recordCompletion(
  m: Machine,
  tx: Queryable,
  completion: WorkerCompletion,
): Promise<Effects | null> {
  const { executionId, output, report } = completion;
  const execution = await lockExecutionIn(tx, executionId, ADVANCING_EXECUTION_STATUSES);
  if (!execution) return null;
  const runs = await completions.completeLeasedRunReadingIteration(
    tx,
    execution,
    completion.runId,
    completion.leaseId,
    output,
    report.startedAt,
  );
  if (!runs) return null;
  const effects = await advance(m, tx, execution, noEffects(), { runs, inline: report.inline });
  await releaseLimitKeys(tx, report.claim.limit_keys, effects);
  return effects;
}

/** Any other result, or a completion without a report: lock, check the fence, apply. */
async function recordFenced(
  m: Machine,
  tx: Queryable,
  runId: number,
  executionId: string,
  fence: AttemptFence,
  result: AttemptResult,
  report: AttemptReport | undefined,
): Promise<Effects | null> {
  const execution = await lockExecutionIn(tx, executionId, ADVANCING_EXECUTION_STATUSES);
  if (!execution) return null;
  const claimedInline = report !== undefined && report.claim.started_at === null;
  const run =
    'leaseId' in fence
      ? await stepRuns.lockLeasedRun(
          tx,
          runId,
          fence.leaseId,
          claimedInline ? report.startedAt : undefined,
        )
      : await stepRuns.lockRunAttempt(tx, runId, fence.attempt);
  if (!run) return null;
  const effects = await applyAttempt(m, tx, execution, run, result, report?.inline);
  // The run left `running`: the slots it held go to the runs waiting for them.
  await releaseLimitKeys(tx, run.limit_keys, effects);
  return effects;
}

/** Applies a result to its run (locked with its execution by the caller), then advances. */
export async function applyAttempt(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
  run: StepRunRow,
  result: AttemptResult,
  inline?: InlineSlot,
): Promise<Effects> {
  const effects = noEffects();
  switch (result.kind) {
    case 'completed':
    case 'failed':
      return applyOutcome(m, tx, execution, run, result, inline);
    case 'sleep':
      await stepRuns.parkRun(tx, run.id, {
        reason: `sleeping until ${result.until.toISOString()}`,
        wakeAt: result.until,
        output: result.output,
      });
      effects.jobs.push({
        ...jobFor(execution, run.id, run.step_id, run.attempt),
        runAt: result.until,
        wake: true,
      });
      return advance(m, tx, execution, effects);
    case 'wait':
      return park(m, tx, execution, run, result, effects);
  }
}
