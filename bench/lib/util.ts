/** Small helpers shared by the workloads: waiting, percentiles, formatting. */

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls `check` every `intervalMs` until it returns true; throws after `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  intervalMs = 50,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Nearest-rank percentile of an unsorted sample (p in 0..100). */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(Math.max(rank - 1, 0), sorted.length - 1)] as number;
}

export function round(value: number, digits = 2): number {
  if (!Number.isFinite(value)) return value;
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}

/** Runs `task(i)` for i in [0, count) with at most `concurrency` in flight. */
export async function runPool(
  count: number,
  concurrency: number,
  task: (index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(concurrency, count) }, async () => {
    while (next < count) {
      const index = next;
      next += 1;
      await task(index);
    }
  });
  await Promise.all(lanes);
}

/**
 * Calls `task(i)` at a fixed rate (open loop: a slow task does not delay the next start) for
 * `durationMs`; returns how many were started once all of them have finished.
 */
export async function runAtRate(
  ratePerSecond: number,
  durationMs: number,
  task: (index: number) => Promise<void>,
): Promise<number> {
  const interval = 1000 / ratePerSecond;
  const started = performance.now();
  const running: Array<Promise<void>> = [];
  let index = 0;
  while (performance.now() - started < durationMs) {
    const due = started + index * interval;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    running.push(task(index));
    index += 1;
  }
  await Promise.all(running);
  return index;
}

/** Runs `task(i)` every `intervalMs` (a slow task delays the next) until `stop()` or `limit`. */
export async function every(
  intervalMs: number,
  limit: number,
  stop: () => boolean,
  task: (index: number) => Promise<void>,
): Promise<void> {
  for (let index = 0; index < limit && !stop(); index += 1) {
    const started = performance.now();
    await task(index);
    const wait = intervalMs - (performance.now() - started);
    if (wait > 0 && index + 1 < limit && !stop()) await sleep(wait);
  }
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1', '[::1]']);

/** The benchmark only ever talks to this machine: refuses any other host. */
export function assertLoopback(url: string, variable: string): void {
  const host = new URL(url).hostname;
  if (!LOOPBACK_NAMES.has(host) && !/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)) {
    throw new Error(`${variable} must point at this machine (loopback), not ${host}`);
  }
}
