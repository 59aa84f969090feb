import type { RetryBackoff } from '../core/workflow-definition.js';

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
  const cap = Math.max(backoff.max_delay_ms, 0);
  if (backoff.type === 'fixed') {
    const jittered = backoff.delay_ms * (0.8 + 0.4 * random());
    return Math.round(Math.min(jittered, cap || jittered));
  }
  const exponential = Math.min(backoff.delay_ms * 2 ** Math.max(retry - 1, 0), cap);
  // Never retry instantly: at least half the base delay (or the whole cap when it is smaller).
  const floor = Math.min(backoff.delay_ms / 2, exponential);
  return Math.round(floor + (exponential - floor) * random());
}

/** Whether another attempt is allowed: `retry_count` retries follow the first attempt. */
export function canRetry(retryable: boolean, attemptsMade: number, retryCount: number): boolean {
  return retryable && attemptsMade <= retryCount;
}
