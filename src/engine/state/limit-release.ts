import type { Queryable } from '../../store/db.js';
import * as limitSlots from '../../store/limit-slots.js';
import { type Effects, executionOfRun, jobOfRun } from './effects.js';

/**
 * What frees a slot of a named limit (docs/ARCHITECTURE.md, "Flow control"): a run that held
 * `keys` left `running` in the caller's transaction (its result was recorded, or its
 * execution ended). Under each key's lock, as many runs as the limit now has room for are
 * queued again, each with its job; a key whose limit has no `max_concurrent` (or is gone)
 * lets every waiter go. The runs let go are admitted by their own claim, which counts again.
 */
export async function releaseLimitKeys(
  tx: Queryable,
  keys: readonly string[] | null,
  effects: Effects,
): Promise<void> {
  if (!keys || keys.length === 0) return;
  const names = [...new Set(keys.map((key) => key.slice(0, key.indexOf(':'))))];
  const limits = new Map((await limitSlots.limitsNamed(tx, names)).map((row) => [row.name, row]));
  for (const key of [...new Set(keys)].sort()) {
    await limitSlots.lockLimitKeys(tx, [key]);
    const max = limits.get(key.slice(0, key.indexOf(':')))?.max_concurrent ?? null;
    const room =
      max === null ? Number.MAX_SAFE_INTEGER : max - (await limitSlots.countHolders(tx, key, 0));
    for (const run of await limitSlots.releaseWaiters(tx, key, Math.min(room, 1000))) {
      effects.jobs.push(jobOfRun(executionOfRun(run), run));
    }
  }
}
