import { randomUUID } from 'node:crypto';
import { type ConnectionOptions, type Job, Worker } from 'bullmq';
import type { EffectSink } from '../core/effects.js';
import type { StateManager } from '../core/state-manager.js';
import type { Log } from '../logger.js';
import { jobLogContext } from '../monitoring/log-context.js';
import type { Pool } from '../store/db.js';
import { claimRun } from '../store/execution-store.js';
import type { CancellationBus } from './cancellation-bus.js';
import { STEP_QUEUE, type StepJobData } from './step-queue.js';
import { runAttempt } from './step-runner.js';
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
  logger: Log;
}

/**
 * Processes one step job: claim the attempt in Postgres (new lease), run it, record the
 * result fenced by that lease, then apply the effects (next jobs) after commit.
 * A job whose attempt is no longer current is dropped: Postgres decides, not the queue.
 */
export async function processStepJob(
  options: StepWorkerOptions,
  job: Job<StepJobData>,
): Promise<string> {
  const { state, pool, logger } = options;
  const data = job.data;
  const log = logger.child({
    executionId: data.executionId,
    stepId: data.stepId,
    runId: data.runId,
    attempt: data.attempt,
  });
  const definition = await state.definition(pool, data.workflowId, data.workflowVersion);
  const step = definition.steps.find((candidate) => candidate.id === data.stepId);
  if (!step)
    throw new Error(`step ${data.stepId} is not in ${data.workflowId}@${data.workflowVersion}`);

  const leaseId = randomUUID();
  // Listen for aborts before claiming: a cancel that commits right after the claim must still
  // reach this attempt, and its broadcast may arrive before the claim returns.
  const stop = options.bus.track(data.executionId);
  try {
    const claim = await claimRun(pool, data.runId, data.attempt, leaseId, step.timeout_seconds);
    if (!claim) {
      log.debug('attempt is no longer current; job dropped');
      return 'stale';
    }
    log.debug({ stepType: step.step_type }, 'attempt started');
    const wokenFromSleep = job.name === 'wake' && claim.wake_at ? claim.wake_at : undefined;
    const result = await runAttempt(step, claim, options.env, stop.signal, wokenFromSleep);
    if (!result) {
      log.info('attempt aborted: execution stopped');
      return 'aborted';
    }
    const effects = await state.recordAttempt(data.runId, data.executionId, { leaseId }, result);
    if (!effects) {
      log.info({ result: result.kind }, 'late result ignored: the attempt was fenced off');
      return 'fenced';
    }
    if (result.kind === 'failed') log.warn({ error: result.error }, 'attempt failed');
    await options.effects.apply(effects);
    return result.kind;
  } finally {
    stop.release();
  }
}

export function createStepWorker(options: StepWorkerOptions): Worker<StepJobData> {
  const worker = new Worker<StepJobData>(STEP_QUEUE, (job) => processStepJob(options, job), {
    connection: options.connection,
    prefix: options.prefix,
    concurrency: options.concurrency,
    lockDuration: options.lockDurationMs,
    stalledInterval: options.lockDurationMs,
    maxStalledCount: 1000,
    autorun: false,
  });
  worker.on('error', (error) => options.logger.error({ err: error }, 'step worker error'));
  worker.on('failed', (job, error) =>
    options.logger.error(
      { err: error, jobId: job?.id, ...jobLogContext(job?.data) },
      'step job failed (infrastructure); will be retried',
    ),
  );
  return worker;
}
