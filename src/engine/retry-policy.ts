import type { RetryBackoff } from '../domain/workflow-definition.js';

/**
 * How long to wait before attempt number `retry` (1 = first retry). Exponential backoff uses
 * "full jitter" (AWS architecture blog): a uniform delay up to the capped exponential, which
 * spreads retries of many failing steps instead of synchronising them. Fixed backoff jitters
 * by ±20%. `random` is injectable so the policy stays a pure, testable function.
 */
export function retryDelayMs(
  backoff: RetryBackoff,
  retry: number,
  random: () => number = Math.random,
): number {
  const base = Math.max(backoff.delay_ms, 0);
  // max_delay_ms caps both kinds alike (0 means retry at once).
  const cap = Math.max(backoff.max_delay_ms, 0);
  const unit = Math.min(Math.max(random(), 0), 1);
  if (backoff.type === 'fixed') {
    return Math.round(Math.min(base * (0.8 + 0.4 * unit), cap));
  }
  // 0 * 2 ** 1100 would be NaN: a zero base stays zero however many retries.
  const exponential = base === 0 ? 0 : Math.min(base * 2 ** Math.max(retry - 1, 0), cap);
  // Never retry instantly: at least half the base delay (or the whole cap when it is smaller).
  const floor = Math.min(base / 2, exponential);
  return Math.round(floor + (exponential - floor) * unit);
}

/** Whether another attempt is allowed: `retry_count` retries follow the first attempt. */
export function canRetry(retryable: boolean, attemptsMade: number, retryCount: number): boolean {
  return retryable && attemptsMade <= retryCount;
}
