import { type ConnectionOptions, Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { StepJob } from '../domain/execution.js';
import { fairPriority, takePlaces } from './fair-queue.js';

export const STEP_QUEUE = 'steps';

/** How long close() waits for BullMQ's connection setup to finish or fail. */
const SETUP_SETTLE_MS = 3000;

/**
 * Waits (bounded) until BullMQ's connection setup has settled. BullMQ's close() removes the
 * connection's listeners, and a setup still in flight then re-emits its failure with no
 * listener: an unhandled rejection. A Redis that does not answer fails setup within the
 * connection's own timeouts; the bound only guards against waiting forever.
 */
export async function settleConnection(owner: {
  waitUntilReady(): Promise<unknown>;
}): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    owner.waitUntilReady().catch(() => {}),
    new Promise((resolve) => {
      timer = setTimeout(resolve, SETUP_SETTLE_MS);
    }),
  ]);
  clearTimeout(timer);
}

/** What a step job carries: enough to find the run and fence the attempt. */
export type StepJobData = Omit<StepJob, 'runAt' | 'wake' | 'item' | 'priority'>;

/** The job that takes an execution's first scheduling decisions (conditions, for_each) on a
 * worker, so that a request that starts an execution never evaluates an expression. */
export interface AdvanceJobData {
  executionId: string;
}

/** Every job on the step queue: its name tells which ('attempt', 'wake' or 'advance'). */
export type QueueJobData = StepJobData | AdvanceJobData;

export const ADVANCE_JOB = 'advance';

/**
 * Deterministic job ids make enqueueing idempotent: the sweep can add a job again whenever
 * Postgres says it is due, and BullMQ ignores the add while the first job still exists.
 * BullMQ job ids may not contain ':'.
 */
export function stepJobId(job: Pick<StepJob, 'runId' | 'attempt' | 'wake' | 'turn'>): string {
  const turn = job.turn ? `-t${job.turn}` : '';
  return `${job.wake ? 'w' : 's'}-${job.runId}-${job.attempt}${turn}`;
}

/** One advance job per execution at a time; execution ids are base64url, so no ':'. */
export function advanceJobId(executionId: string): string {
  return `a-${executionId}`;
}

/** The producer side of the step queue. */
export class StepQueue {
  readonly queue: Queue<QueueJobData>;

  constructor(
    connection: ConnectionOptions,
    private readonly prefix: string,
    /** Where the fairness counts are kept (fair-queue.ts). */
    private readonly counts: Redis,
  ) {
    this.queue = new Queue<QueueJobData>(STEP_QUEUE, {
      connection,
      prefix,
      defaultJobOptions: {
        removeOnComplete: true,
        removeOnFail: true,
        // Only infrastructure errors (Postgres down) make a processor throw; step failures
        // are recorded in Postgres and never fail the job.
        attempts: 5,
        backoff: { type: 'exponential', delay: 1000 },
      },
    });
  }

  async enqueue(jobs: readonly StepJob[]): Promise<void> {
    if (jobs.length === 0) return;
    const places = await takePlaces(
      this.counts,
      this.prefix,
      jobs.map((job) => job.group),
    );
    const now = Date.now();
    await this.queue.addBulk(
      jobs.map((job, index) => ({
        name: job.wake ? 'wake' : 'attempt',
        data: {
          runId: job.runId,
          attempt: job.attempt,
          executionId: job.executionId,
          workflowId: job.workflowId,
          workflowVersion: job.workflowVersion,
          stepId: job.stepId,
          group: job.group,
          ...(job.turn ? { turn: job.turn } : {}),
        },
        opts: {
          jobId: stepJobId(job),
          priority: fairPriority(job.priority, job.item === true, places[index] ?? 1),
          ...(job.runAt && job.runAt.getTime() > now ? { delay: job.runAt.getTime() - now } : {}),
        },
      })),
    );
  }

  /**
   * Adds the advance jobs of executions whose start left decisions to a worker, and those due
   * later (a debounce window's end): each due time its own job, so a window pushed back adds
   * the job of its new end beside the old one, which then finds nothing to do.
   */
  async enqueueAdvances(
    executionIds: readonly string[],
    timed: ReadonlyArray<{ executionId: string; runAt: Date }> = [],
  ): Promise<void> {
    if (executionIds.length + timed.length === 0) return;
    const now = Date.now();
    await this.queue.addBulk([
      ...executionIds.map((executionId) => ({
        name: ADVANCE_JOB,
        data: { executionId },
        opts: { jobId: advanceJobId(executionId) },
      })),
      ...timed.map(({ executionId, runAt }) => ({
        name: ADVANCE_JOB,
        data: { executionId },
        opts: {
          jobId: `${advanceJobId(executionId)}-${runAt.getTime()}`,
          delay: Math.max(runAt.getTime() - now, 0),
        },
      })),
    ]);
  }

  /** Whether BullMQ still holds a job for this attempt (waiting, delayed or active). */
  async hasJob(job: Pick<StepJob, 'runId' | 'attempt' | 'wake' | 'turn'>): Promise<boolean> {
    return (await this.queue.getJob(stepJobId(job))) !== undefined;
  }

  async close(): Promise<void> {
    await settleConnection(this.queue);
    await this.queue.close();
  }
}
