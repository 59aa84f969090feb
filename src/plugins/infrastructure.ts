import fp from 'fastify-plugin';
import { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { createPool, type Pool } from '../store/db.js';

/** What the process knows about its own state; readiness reads it. */
export interface Lifecycle {
  /** Migrations have been applied by this process: the database is usable. */
  databaseReady: boolean;
  shuttingDown: boolean;
  startedAt: Date;
}

declare module 'fastify' {
  interface FastifyInstance {
    config: Config;
    pg: Pool;
    redis: Redis;
    lifecycle: Lifecycle;
  }
}

/**
 * A Redis client for request paths (cache, health, pub/sub publishing). It fails fast while
 * Redis is away instead of queueing commands, so a read falls back to Postgres at once.
 */
export function createFastFailRedis(url: string): Redis {
  return new Redis(url, {
    enableOfflineQueue: false,
    // The ready check's INFO is rejected unhandled inside ioredis when the connection drops
    // during it with the offline queue off; a fast-failing client gains nothing from it.
    enableReadyCheck: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 2000,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(times * 200, 2000),
    // No enableAutoPipelining: with the offline queue off, an auto-pipelined custom command
    // (the rate limiter's) may never settle while Redis is away (ioredis #1511), and one stuck
    // pipeline holds back every later command. WorkflowCache batches its own reads instead.
  });
}

/** Postgres pool and Redis client, shared by everything in the process and closed with it. */
export const infrastructurePlugin = fp<{ config: Config }>(
  async (app, { config }) => {
    const pool = createPool(config.DATABASE_URL);
    const redis = createFastFailRedis(config.REDIS_URL);
    let redisDown = false;
    redis.on('error', (error) => {
      if (!redisDown) {
        redisDown = true;
        app.log.error(
          { err: error, redisUrl: redactUrl(config.REDIS_URL) },
          'Redis is unreachable; retrying. Locally: redis-server --daemonize yes --port 6379',
        );
      }
    });
    redis.on('ready', () => {
      if (redisDown) app.log.info('Redis is reachable again');
      redisDown = false;
    });

    app.decorate('config', config);
    app.decorate('pg', pool);
    app.decorate('redis', redis);
    app.decorate('lifecycle', { databaseReady: false, shuttingDown: false, startedAt: new Date() });

    app.addHook('onClose', async () => {
      redis.disconnect();
      await pool.end();
    });
  },
  { name: 'infrastructure' },
);

/** Hides the password of a connection URL for logs. */
export function redactUrl(value: string): string {
  try {
    const url = new URL(value);
    if (url.password) url.password = '***';
    return url.toString();
  } catch {
    return '[unparsable url]';
  }
}
