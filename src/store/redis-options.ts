import type { RedisOptions } from 'ioredis';

/**
 * ioredis options from a redis:// or rediss:// URL. BullMQ is given options rather than a
 * client so that it owns its connections: only then does its close() disconnect a connection
 * still being set up and absorb that setup's failure (with a shared client the failure
 * surfaces as an unhandled rejection, or close() waits on an unreachable Redis).
 */
export function redisOptionsFromUrl(value: string): RedisOptions {
  const url = new URL(value);
  const db = Number.parseInt(url.pathname.replace(/^\//, '') || '0', 10);
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port ? Number.parseInt(url.port, 10) : 6379,
    db: Number.isNaN(db) ? 0 : db,
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
  };
}
