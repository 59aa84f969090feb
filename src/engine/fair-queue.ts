import type { Redis } from 'ioredis';

/**
 * Fair dispatch across keys (docs/ARCHITECTURE.md, "Flow control"). BullMQ serves a queue in
 * priority order, first in first out within a priority; it has no groups. So each step job's
 * priority says, besides its execution's priority, its place in its own group's line: the
 * count of that group's jobs still waiting when it was added. A group with a backlog of
 * thousands has jobs at places 1..N; a new group's job comes in at place 1, so under
 * contention the groups take turns, one job each, instead of the newcomer waiting for the
 * whole backlog.
 *
 * The counts live in Redis beside the queue: a worker counts a job out when it takes it. They
 * are a scheduling hint, not state: each expires a minute after its group's last job was
 * added, so a count left wrong by a crash (or lost with Redis) heals by itself, and a wrong
 * count only reorders jobs, never loses one.
 */

/** Places per priority band: 20 bands (10 priorities, steps before items) fit BullMQ's 2^21. */
const PLACES = 100_000;
const COUNT_TTL_MS = 60_000;

const countKey = (prefix: string, group: string) => `${prefix}:fair:${group}`;

/** The places in line of jobs of `groups` (in order), counting each in. */
export async function takePlaces(
  client: Redis,
  prefix: string,
  groups: readonly string[],
): Promise<number[]> {
  if (groups.length === 0) return [];
  const pipeline = client.pipeline();
  for (const group of groups) {
    pipeline.incr(countKey(prefix, group));
    pipeline.pexpire(countKey(prefix, group), COUNT_TTL_MS);
  }
  const answers = (await pipeline.exec()) ?? [];
  return groups.map((_, index) => {
    const value = answers[index * 2]?.[1];
    return typeof value === 'number' ? value : 1;
  });
}

/** Counts a job of `group` out of its line, as its worker takes it; never below zero. */
export async function leavePlace(client: Redis, prefix: string, group: string): Promise<void> {
  await client.eval(
    "if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end return 1",
    1,
    countKey(prefix, group),
  );
}

/**
 * A step job's BullMQ priority (1 runs first): its band (its execution's priority 1..10, and
 * within one priority a fan-out's item jobs after other steps: items are already limited by
 * for_each_concurrency), then its place in its group's line.
 */
export function fairPriority(priority: number, item: boolean, place: number): number {
  const band = 2 * priority - (item ? 0 : 1);
  return (band - 1) * PLACES + Math.min(Math.max(place, 1), PLACES);
}
