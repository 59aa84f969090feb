import type { Redis } from 'ioredis';

/**
 * A @fastify/rate-limit store on the service's shared Redis client: fixed windows, one counter
 * per key under `<REDIS_PREFIX>:ratelimit:`, so every process counts against the same budget.
 * The plugin's own Redis store needs its client at registration time, but the rate-limits
 * plugin is registered before the infrastructure plugin creates the client; this one finds it
 * lazily.
 */

const INCREMENT = `
local current = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if current == 1 or ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {current, ttl}
`;

const READ = `
local current = redis.call('GET', KEYS[1])
if not current then return {0, 0} end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then ttl = 0 end
return {tonumber(current), ttl}
`;

interface RateLimitCommands {
  wfRateLimitIncr(key: string, windowMs: number): Promise<[number, number]>;
  wfRateLimitRead(key: string): Promise<[number, number]>;
}

type Callback = (error: Error | null, result?: { current: number; ttl: number }) => void;

function commandsOf(redis: Redis): RateLimitCommands {
  const commands = redis as unknown as Partial<RateLimitCommands>;
  if (commands.wfRateLimitIncr === undefined) {
    redis.defineCommand('wfRateLimitIncr', { numberOfKeys: 1, lua: INCREMENT });
    redis.defineCommand('wfRateLimitRead', { numberOfKeys: 1, lua: READ });
  }
  return redis as unknown as RateLimitCommands;
}

function settle(promise: Promise<[number, number]>, callback: Callback): void {
  void promise.then(
    ([current, ttl]) => callback(null, { current, ttl }),
    (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
  );
}

/** The store class for @fastify/rate-limit's `store` option. */
export function sharedRedisStore(redis: () => Redis, prefix: string) {
  return class SharedRedisStore {
    incr(key: string, callback: Callback, timeWindow: number): void {
      settle(commandsOf(redis()).wfRateLimitIncr(`${prefix}${key}`, timeWindow), callback);
    }

    read(key: string, callback: Callback): void {
      settle(commandsOf(redis()).wfRateLimitRead(`${prefix}${key}`), callback);
    }

    /** Route-specific limits are not used: one budget per caller across all routes. */
    child(): SharedRedisStore {
      return this;
    }
  };
}
