import type { Queue } from 'bullmq';
import type { QueueDepth } from '../core/stats-manager.js';

const STATES = ['waiting', 'active', 'delayed', 'failed', 'prioritized', 'paused'] as const;

/** Job counts of a BullMQ queue by state, and the workers connected to it (any process). */
export async function readQueueDepth(queue: Queue): Promise<QueueDepth> {
  const [counts, workers] = await Promise.all([
    queue.getJobCounts(...STATES),
    // CLIENT LIST, which BullMQ uses to find workers, is refused by some managed Redis.
    queue.getWorkersCount().catch(() => null),
  ]);
  return { name: queue.name, counts, workers };
}
