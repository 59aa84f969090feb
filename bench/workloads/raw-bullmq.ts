import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { waitUntil } from '../lib/util.js';

export interface RawBullmqResult {
  jobsPerSecond: number;
  jobs: number;
  seconds: number;
}

/**
 * Noop jobs through BullMQ alone: the jobs are bulk-added first, then one worker with the
 * engine's concurrency and job options drains them; timed from the worker's start to the
 * last completion. A warm-up round runs first (JIT, Lua scripts loaded into Redis).
 */
export async function rawBullmq(
  redisUrl: string,
  prefix: string,
  options: { jobs: number; warmupJobs: number; concurrency: number },
): Promise<RawBullmqResult> {
  const queueConnection = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  const queue = new Queue('noop', {
    connection: queueConnection,
    prefix,
    defaultJobOptions: { removeOnComplete: true, removeOnFail: true },
  });
  const round = async (count: number): Promise<RawBullmqResult> => {
    for (let offset = 0; offset < count; offset += 1000) {
      const size = Math.min(1000, count - offset);
      await queue.addBulk(
        Array.from({ length: size }, (_, i) => ({ name: 'noop', data: { n: offset + i } })),
      );
    }
    const workerConnection = new Redis(redisUrl, { maxRetriesPerRequest: null });
    let completed = 0;
    const worker = new Worker('noop', async () => 'ok', {
      connection: workerConnection,
      prefix,
      concurrency: options.concurrency,
      autorun: false,
    });
    worker.on('completed', () => {
      completed += 1;
    });
    const started = performance.now();
    void worker.run();
    await waitUntil('raw BullMQ jobs', async () => completed >= count, 120_000, 5);
    const seconds = (performance.now() - started) / 1000;
    await worker.close();
    workerConnection.disconnect();
    return { jobsPerSecond: count / seconds, jobs: count, seconds };
  };
  try {
    await round(options.warmupJobs);
    return await round(options.jobs);
  } finally {
    await queue.obliterate({ force: true }).catch(() => {});
    await queue.close();
    queueConnection.disconnect();
  }
}
