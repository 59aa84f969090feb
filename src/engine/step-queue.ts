import { type ConnectionOptions, Queue } from 'bullmq';
import type { StepJob } from '../domain/execution.js';

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
export type StepJobData = Omit<StepJob, 'runAt' | 'wake'>;

/**
 * Deterministic job ids make enqueueing idempotent: the sweep can add a job again whenever
 * Postgres says it is due, and BullMQ ignores the add while the first job still exists.
 * BullMQ job ids may not contain ':'.
 */
export function stepJobId(job: Pick<StepJob, 'runId' | 'attempt' | 'wake'>): string {
  return `${job.wake ? 'w' : 's'}-${job.runId}-${job.attempt}`;
}

/** The producer side of the step queue. */
export class StepQueue {
  readonly queue: Queue<StepJobData>;

  constructor(connection: ConnectionOptions, prefix: string) {
    this.queue = new Queue<StepJobData>(STEP_QUEUE, {
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
    const now = Date.now();
    await this.queue.addBulk(
      jobs.map((job) => ({
        name: job.wake ? 'wake' : 'attempt',
        data: {
          runId: job.runId,
          attempt: job.attempt,
          executionId: job.executionId,
          workflowId: job.workflowId,
          workflowVersion: job.workflowVersion,
          stepId: job.stepId,
        },
        opts: {
          jobId: stepJobId(job),
          ...(job.runAt && job.runAt.getTime() > now ? { delay: job.runAt.getTime() - now } : {}),
        },
      })),
    );
  }

  /** Whether BullMQ still holds a job for this attempt (waiting, delayed or active). */
  async hasJob(job: Pick<StepJob, 'runId' | 'attempt' | 'wake'>): Promise<boolean> {
    return (await this.queue.getJob(stepJobId(job))) !== undefined;
  }

  async close(): Promise<void> {
    await settleConnection(this.queue);
    await this.queue.close();
  }
}
