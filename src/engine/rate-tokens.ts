import type { Redis } from 'ioredis';
import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';

/**
 * Tokens of the `rate` of named limits (docs/ARCHITECTURE.md, "Flow control"), kept in Redis
 * by rate-limiter-flexible: `limit` starts per `period_seconds` window and key, shared by
 * every worker. Redis is not the source of truth here, and need not be: after a Redis loss
 * the windows start afresh, which lets at most one extra period's worth through.
 */

export interface Rate {
  limit: number;
  period_seconds: number;
}

/** A token taken, or when the next one is due. */
export type TokenAnswer = { taken: true } | { taken: false; retryAfterMs: number };

/** Bound on the limiters kept: one per limit name and setting. */
const MAX_LIMITERS = 1000;

export class RateTokens {
  private readonly limiters = new Map<string, RateLimiterRedis>();

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  private limiter(name: string, rate: Rate): RateLimiterRedis {
    const id = `${name}/${rate.limit}/${rate.period_seconds}`;
    let limiter = this.limiters.get(id);
    if (!limiter) {
      if (this.limiters.size >= MAX_LIMITERS) this.limiters.clear();
      limiter = new RateLimiterRedis({
        storeClient: this.redis,
        keyPrefix: `${this.prefix}:rate:${name}`,
        points: rate.limit,
        duration: rate.period_seconds,
      });
      this.limiters.set(id, limiter);
    }
    return limiter;
  }

  /** Takes one token of `key` under the limit `name`. A Redis failure rejects. */
  async take(name: string, key: string, rate: Rate): Promise<TokenAnswer> {
    try {
      await this.limiter(name, rate).consume(key, 1);
      return { taken: true };
    } catch (error) {
      if (error instanceof RateLimiterRes) {
        return { taken: false, retryAfterMs: Math.max(error.msBeforeNext, 1) };
      }
      throw error;
    }
  }

  /** Gives back a token taken for a run that another limit then turned away. */
  async giveBack(name: string, key: string, rate: Rate): Promise<void> {
    await this.limiter(name, rate).reward(key, 1);
  }
}
