import { randomUUID } from 'node:crypto';
import { type ConnectionOptions, type Job, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import type { ClaimedRun } from '../domain/execution.js';
import { ADVANCING_EXECUTION_STATUSES, type ExecutionStatus } from '../domain/statuses.js';
import type { StepDefinition } from '../domain/workflow-definition.js';
import type { Log } from '../logger.js';
import { jobLogContext } from '../monitoring/log-context.js';
import type { Pool } from '../store/db.js';
import { traceAttempt } from './attempt-tracing.js';
import type { CancellationBus } from './cancellation-bus.js';
import { leavePlace } from './fair-queue.js';
import { type LimitGateOptions, passLimitGate } from './limit-gate.js';
import type { EffectSink } from './state/effects.js';
import { withLockedExecution } from './state/lock.js';
import { crashedAttempt } from './state/record-attempt.js';
import type { InlineSlot, StateManager } from './state/state-manager.js';
import {
  ADVANCE_JOB,
  type AdvanceJobData,
  type QueueJobData,
  STEP_QUEUE,
  type StepJobData,
} from './step-queue.js';
import { runAttempt } from './step-runner.js';
import { stepHandlerFor } from './steps/registry.js';
import type { StepEnvironment } from './steps/types.js';

export interface StepWorkerOptions {
  connection: ConnectionOptions;
  prefix: string;
  concurrency: number;
  lockDurationMs: number;
  pool: Pool;
  state: StateManager;
  effects: EffectSink;
  bus: CancellationBus;
  env: StepEnvironment;
  /** The gate of named limits: where their rate tokens are kept. */
  limits: LimitGateOptions;
  /** Where the fairness counts are kept (fair-queue.ts): a job taken leaves its line. */
  counts: Redis;
  logger: Log;
}

/** What one job needs beyond the options: whether its worker is shutting down, when it then
 * takes no further step inline. */
type JobContext = StepWorkerOptions & { isClosing(): boolean };

/**
 * Bounds on the steps one job runs inline after its own (a chain of quick steps): past them
 * the next step goes through the queue, so a long loop neither holds a worker slot for long
 * nor starves other executions' jobs.
 */
const MAX_INLINE_STEPS = 100;
const MAX_INLINE_MS = 1000;
/**
 * for_each items one job runs inline. A fan-out keeps for_each_concurrency items in flight,
 * most of them as queued jobs: were each to hold its slot for 100 items, every other
 * execution's job would wait behind the whole fan-out (measured: 5 s instead of 12 ms).
 */
const MAX_INLINE_ITEMS = 10;

/**
 * Processes one step job: claim the attempt in Postgres (new lease), run it, record the
 * result fenced by that lease, then apply the effects (next jobs) after commit. When the
 * record made a quick step ready and claimed it for this worker (an inline slot), that step
 * runs next in the same job, and so on down a chain of quick steps.
 * A job whose attempt is no longer current is dropped: Postgres decides, not the queue.
 */
export async function processStepJob(options: JobContext, job: Job<StepJobData>): Promise<string> {
  const { state, pool, logger } = options;
  const data = job.data;
  const log = logger.child({ executionId: data.executionId });
  // A hint only (fair-queue.ts): the job is not held up for it, and a failure is harmless.
  if (data.group) void leavePlace(options.counts, options.prefix, data.group).catch(() => {});
  const definition = await state.definition(pool, data.workflowId, data.workflowVersion);
  const stepOf = (stepId: string) => {
    const step = definition.steps.find((candidate) => candidate.id === stepId);
    if (!step)
      throw new Error(`step ${stepId} is not in ${data.workflowId}@${data.workflowVersion}`);
    return step;
  };
  let step = stepOf(data.stepId);

  // Listen for aborts before claiming: a cancel that commits right after the claim must still
  // reach this attempt, and its broadcast may arrive before the claim returns.
  const stop = options.bus.track(data.executionId);
  try {
    const first = await state.claimAttempt(
      data.runId,
      data.attempt,
      randomUUID(),
      step.timeout_seconds,
    );
    if (!first) {
      log.debug(
        { runId: data.runId, attempt: data.attempt },
        'attempt is no longer current; job dropped',
      );
      return 'stale';
    }
    if (await failedAsCrashed(options, first, log)) return 'crashed';
    let claim: ClaimedRun = first;
    if (step.limits.length > 0) {
      const gate = await passLimitGate(options.limits, first, step);
      if (gate.kind === 'stale') return 'stale';
      if (gate.kind === 'turned_away') {
        await options.effects.apply(gate.effects);
        return 'limited';
      }
      claim = { ...first, limit_keys: gate.keys };
    }
    const began = Date.now();
    let wokenFromSleep = job.name === 'wake' && claim.wake_at ? claim.wake_at : undefined;
    for (let inlineSteps = 0; ; inlineSteps += 1) {
      const attempt = { stepId: step.id, runId: claim.id, attempt: claim.attempt };
      log.debug({ ...attempt, stepType: step.step_type }, 'attempt started');
      const startedAt = new Date();
      // Undefined, with no I/O, while tracing is off (README "Tracing").
      const traced = await traceAttempt(pool, claim, step);
      const running = () => runAttempt(step, claim, options.env, stop.signal, wokenFromSleep);
      const result = await (traced ? traced.run(running) : running());
      wokenFromSleep = undefined;
      if (!result) {
        traced?.end('aborted');
        log.info(attempt, 'attempt aborted: execution stopped');
        return 'aborted';
      }
      const inline = inlineSlot(options, claim, inlineSteps, began);
      const effects = await state.recordAttempt(
        claim.id,
        claim.execution_id,
        { leaseId: claim.lease_id as string },
        result,
        { claim, startedAt, inline },
      );
      traced?.end(result, effects);
      if (!effects) {
        log.info(
          { ...attempt, result: result.kind },
          'late result ignored: the attempt was fenced off',
        );
        return 'fenced';
      }
      if (result.kind === 'failed') log.warn({ ...attempt, error: result.error }, 'attempt failed');
      await options.effects.apply(effects);
      if (!inline?.claimed) return result.kind;
      claim = inline.claimed;
      step = stepOf(claim.step_id);
    }
  } finally {
    stop.release();
  }
}

/** An offer to run the next quick step in this job, while its bounds allow (MAX_INLINE_*). */
function inlineSlot(
  options: JobContext,
  claim: ClaimedRun,
  inlineSteps: number,
  began: number,
): InlineSlot | undefined {
  const inlineBudget = claim.item_index >= 0 ? MAX_INLINE_ITEMS : MAX_INLINE_STEPS;
  return inlineSteps < inlineBudget && Date.now() - began < MAX_INLINE_MS && !options.isClosing()
    ? { leaseId: randomUUID(), accepts: runsInline }
    : undefined;
}

/**
 * A poison pill: the claimed attempt's process died too many times in a row while running it
 * (crashedAttempt). It is failed through the normal record path instead of run once more.
 */
async function failedAsCrashed(options: JobContext, claim: ClaimedRun, log: Log): Promise<boolean> {
  const { state } = options;
  const result = crashedAttempt(state, claim);
  if (!result) return false;
  log.error(
    { runId: claim.id, stepId: claim.step_id, attempt: claim.attempt, error: result.error },
    'attempt failed as crashed: its process died too often while running it',
  );
  const fence = { leaseId: claim.lease_id as string };
  const effects = await state.recordAttempt(claim.id, claim.execution_id, fence, result);
  if (effects) await options.effects.apply(effects);
  return true;
}

/**
 * Processes an advance job: the scheduling decisions a start left to a worker (a first
 * step's condition or for_each), taken under the execution's lock like any other change.
 * An execution that has moved on or ended meanwhile is advanced harmlessly or not at all.
 */
export async function processAdvanceJob(
  options: StepWorkerOptions,
  job: Job<AdvanceJobData>,
): Promise<string> {
  const { state, pool } = options;
  const effects = await withLockedExecution(
    pool,
    job.data.executionId,
    ADVANCED_BY_JOB,
    (tx, execution) => state.advance(tx, execution),
  );
  if (!effects) return 'gone';
  await options.effects.apply(effects);
  return 'advanced';
}

/** An advance job admits a queued execution, and advances one that runs. */
const ADVANCED_BY_JOB: readonly ExecutionStatus[] = ['queued', ...ADVANCING_EXECUTION_STATUSES];

const isAdvanceJob = (job: Job<QueueJobData>): boolean => job.name === ADVANCE_JOB;

/** A step with limits never runs inline: its claim must pass their gate (limit-gate.ts). */
function runsInline(step: StepDefinition): boolean {
  return stepHandlerFor(step.step_type).runsInline && step.limits.length === 0;
}

export function createStepWorker(options: StepWorkerOptions): Worker<QueueJobData> {
  const context: JobContext = { ...options, isClosing: () => worker.closing !== undefined };
  const worker: Worker<QueueJobData> = new Worker<QueueJobData>(
    STEP_QUEUE,
    (job) =>
      isAdvanceJob(job)
        ? processAdvanceJob(context, job as Job<AdvanceJobData>)
        : processStepJob(context, job as Job<StepJobData>),
    {
      connection: options.connection,
      prefix: options.prefix,
      concurrency: options.concurrency,
      lockDuration: options.lockDurationMs,
      stalledInterval: options.lockDurationMs,
      maxStalledCount: 1000,
      autorun: false,
    },
  );
  worker.on('error', (error) => options.logger.error({ err: error }, 'step worker error'));
  worker.on('failed', (job, error) =>
    options.logger.error(
      {
        err: error,
        jobId: job?.id,
        ...(job && isAdvanceJob(job)
          ? { executionId: job.data.executionId }
          : jobLogContext(job?.data as StepJobData | undefined)),
      },
      'step job failed (infrastructure); will be retried',
    ),
  );
  return worker;
}
