import rateLimit from '@fastify/rate-limit';
import type { FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import type { Config } from '../../config.js';
import { RateLimitedError } from '../../errors.js';
import { sharedRedisStore } from '../../security/rate-limit-store.js';

export interface RateLimitSettings {
  callerMax: number;
  ipMax: number;
  windowMs: number;
}

/** Counts requests against named budgets: `caller:<kind>:<id>`, `ip:<address>`, `anon:<address>`. */
export interface RequestRateLimiter {
  /** Counts the request against `key`; throws RateLimitedError (429, Retry-After) when over. */
  consume(request: FastifyRequest, reply: FastifyReply, key: string): Promise<void>;
}

declare module 'fastify' {
  interface FastifyInstance {
    rateLimits: RequestRateLimiter;
  }
}

/** Limits in force; in tests the defaults are high so only tests that set limits meet them. */
export function rateLimitSettings(
  config: Pick<
    Config,
    'NODE_ENV' | 'RATE_LIMIT_MAX' | 'RATE_LIMIT_IP_MAX' | 'RATE_LIMIT_WINDOW_MS'
  >,
): RateLimitSettings {
  const test = config.NODE_ENV === 'test';
  return {
    callerMax: config.RATE_LIMIT_MAX ?? (test ? 1_000_000 : 1000),
    ipMax: config.RATE_LIMIT_IP_MAX ?? (test ? 1_000_000 : 100),
    windowMs: config.RATE_LIMIT_WINDOW_MS,
  };
}

/**
 * Fixed-window budgets in Redis, shared by every process (@fastify/rate-limit with a store on
 * the service's own client, found at request time: this plugin is registered before the
 * infrastructure plugin creates it). Nothing is limited by itself (`global: false`): the
 * authentication plugin decides which budget a request counts against.
 */
export const rateLimitsPlugin = fp<{ config: Config }>(
  async (app, { config }) => {
    const limits = rateLimitSettings(config);
    const keys = new WeakMap<FastifyRequest, string>();
    await app.register(rateLimit, {
      global: false,
      store: sharedRedisStore(() => app.redis, `${config.REDIS_PREFIX}:ratelimit:`),
      timeWindow: limits.windowMs,
      max: (_request, key) => (key.startsWith('ip:') ? limits.ipMax : limits.callerMax),
      keyGenerator: (request) => keys.get(request) ?? `ip:${request.ip}`,
      // Redis away: serve rather than refuse legitimate callers (authentication still holds).
      skipOnError: true,
    });
    const limiter = app.createRateLimit();

    async function consume(request: FastifyRequest, reply: FastifyReply, key: string) {
      keys.set(request, key);
      const state = await limiter(request);
      if (state.isAllowed) return;
      const resetSeconds = Math.max(1, state.ttlInSeconds);
      if (state.isExceeded) {
        reply.header('ratelimit-limit', state.max);
        reply.header('ratelimit-remaining', 0);
        reply.header('ratelimit-reset', resetSeconds);
        reply.header('retry-after', resetSeconds);
        throw new RateLimitedError(String(resetSeconds));
      }
      // ttl 0: Redis did not answer (skipOnError) and nothing was counted; claim no numbers.
      if (state.ttl > 0) {
        reply.header('ratelimit-limit', state.max);
        reply.header('ratelimit-remaining', state.remaining);
        reply.header('ratelimit-reset', resetSeconds);
      }
    }

    app.decorate('rateLimits', { consume });
  },
  { name: 'rate-limits' },
);
