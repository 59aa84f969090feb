import { describe, expect, it } from 'vitest';
import type { RetryBackoff } from '../../src/domain/workflow-definition.js';
import { canRetry, retryDelayMs } from '../../src/engine/retry-policy.js';
import { prng } from '../helpers/random.js';

const exponential = (delay_ms: number, max_delay_ms: number): RetryBackoff => ({
  type: 'exponential',
  delay_ms,
  max_delay_ms,
});
const fixed = (delay_ms: number, max_delay_ms = 86_400_000): RetryBackoff => ({
  type: 'fixed',
  delay_ms,
  max_delay_ms,
});
const always = (value: number) => () => value;

describe('retryDelayMs: exponential', () => {
  const backoff = exponential(1000, 60_000);

  it('doubles the upper bound with every retry', () => {
    expect([1, 2, 3, 4, 5].map((retry) => retryDelayMs(backoff, retry, always(1)))).toEqual([
      1000, 2000, 4000, 8000, 16_000,
    ]);
  });

  it('is capped by max_delay_ms', () => {
    expect(retryDelayMs(backoff, 7, always(1))).toBe(60_000);
    expect(retryDelayMs(backoff, 30, always(1))).toBe(60_000);
    expect(retryDelayMs(backoff, 101, always(1))).toBe(60_000);
    expect(retryDelayMs(backoff, 5000, always(1))).toBe(60_000);
  });

  it('jitters down to half the base delay, never to zero', () => {
    expect(retryDelayMs(backoff, 1, always(0))).toBe(500);
    expect(retryDelayMs(backoff, 6, always(0))).toBe(500);
  });

  it('takes the middle of its range for random 0.5', () => {
    expect(retryDelayMs(backoff, 1, always(0.5))).toBe(750);
    expect(retryDelayMs(backoff, 3, always(0.5))).toBe(2250);
    expect(retryDelayMs(backoff, 20, always(0.5))).toBe(30_250);
  });

  it('stays within [min(base / 2, bound), bound] for any random value', () => {
    const random = prng(42);
    for (let n = 0; n < 2000; n += 1) {
      const base = Math.floor(random() * 10_000);
      const cap = Math.floor(random() * 100_000);
      const retry = 1 + Math.floor(random() * 40);
      const delay = retryDelayMs(exponential(base, cap), retry, random);
      const bound = Math.min(base * 2 ** (retry - 1), cap);
      expect(Number.isInteger(delay)).toBe(true);
      expect(delay).toBeGreaterThanOrEqual(Math.floor(Math.min(base / 2, bound)));
      expect(delay).toBeLessThanOrEqual(bound);
    }
  });

  it('never exceeds a cap smaller than the base delay', () => {
    const small = exponential(5000, 1000);
    expect(retryDelayMs(small, 1, always(0))).toBe(1000);
    expect(retryDelayMs(small, 1, always(1))).toBe(1000);
  });

  it('treats retry 0 (or less) like the first retry', () => {
    expect(retryDelayMs(backoff, 0, always(1))).toBe(1000);
    expect(retryDelayMs(backoff, -3, always(1))).toBe(1000);
  });

  it('is zero, not NaN, for a zero base delay however many retries', () => {
    expect(retryDelayMs(exponential(0, 60_000), 1, always(1))).toBe(0);
    expect(retryDelayMs(exponential(0, 60_000), 2000, always(1))).toBe(0);
  });

  it('retries at once with a zero cap', () => {
    expect(retryDelayMs(exponential(1000, 0), 3, always(1))).toBe(0);
  });

  it('uses Math.random when no source is given', () => {
    for (let n = 0; n < 100; n += 1) {
      const delay = retryDelayMs(backoff, 3);
      expect(delay).toBeGreaterThanOrEqual(500);
      expect(delay).toBeLessThanOrEqual(4000);
    }
  });
});

describe('retryDelayMs: fixed', () => {
  it('jitters by ±20% around the delay', () => {
    expect(retryDelayMs(fixed(1000), 1, always(0))).toBe(800);
    expect(retryDelayMs(fixed(1000), 1, always(0.5))).toBe(1000);
    expect(retryDelayMs(fixed(1000), 1, always(1))).toBe(1200);
  });

  it('does not grow with retries', () => {
    expect(retryDelayMs(fixed(1000), 1, always(1))).toBe(retryDelayMs(fixed(1000), 50, always(1)));
  });

  it('stays within ±20% for any random value', () => {
    const random = prng(7);
    for (let n = 0; n < 2000; n += 1) {
      const base = Math.floor(random() * 100_000);
      const delay = retryDelayMs(fixed(base), 1 + Math.floor(random() * 10), random);
      expect(delay).toBeGreaterThanOrEqual(Math.floor(base * 0.8));
      expect(delay).toBeLessThanOrEqual(Math.ceil(base * 1.2));
    }
  });

  it('is capped by max_delay_ms like exponential backoff', () => {
    expect(retryDelayMs(fixed(60_000, 60_000), 1, always(1))).toBe(60_000);
    expect(retryDelayMs(fixed(60_000, 60_000), 1, always(0))).toBe(48_000);
    expect(retryDelayMs(fixed(1000, 0), 1, always(1))).toBe(0);
  });
});

describe('retryDelayMs: never negative', () => {
  it.each<RetryBackoff>([
    exponential(0, 0),
    exponential(-100, 1000),
    exponential(1000, -5),
    fixed(0),
    fixed(-100),
    fixed(1000, -5),
  ])('%o', (backoff) => {
    for (const value of [0, 0.5, 1]) {
      for (const retry of [0, 1, 5]) {
        expect(retryDelayMs(backoff, retry, always(value))).toBeGreaterThanOrEqual(0);
      }
    }
  });

  it('clamps a random source outside [0, 1]', () => {
    expect(retryDelayMs(exponential(1000, 60_000), 1, always(-1))).toBe(500);
    expect(retryDelayMs(exponential(1000, 60_000), 1, always(2))).toBe(1000);
    expect(retryDelayMs(fixed(1000), 1, always(-1))).toBe(800);
    expect(retryDelayMs(fixed(1000), 1, always(2))).toBe(1200);
  });
});

describe('canRetry', () => {
  it('never retries with retry_count 0', () => {
    expect(canRetry(true, 1, 0)).toBe(false);
  });

  it('allows retry_count retries after the first attempt', () => {
    expect(canRetry(true, 1, 3)).toBe(true);
    expect(canRetry(true, 2, 3)).toBe(true);
    expect(canRetry(true, 3, 3)).toBe(true);
    expect(canRetry(true, 4, 3)).toBe(false);
    expect(canRetry(true, 10, 3)).toBe(false);
  });

  it('never retries a non-retryable error', () => {
    expect(canRetry(false, 1, 3)).toBe(false);
    expect(canRetry(false, 1, 100)).toBe(false);
  });

  it('makes exactly retry_count + 1 attempts in all', () => {
    for (const retryCount of [0, 1, 3, 100]) {
      let attempts = 1;
      while (canRetry(true, attempts, retryCount)) attempts += 1;
      expect(attempts).toBe(retryCount + 1);
    }
  });
});
