import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, inject } from 'vitest';
import { buildApp } from '../../src/app.js';
import { type Config, loadConfig } from '../../src/config.js';
import { startRuntime } from '../../src/runtime.js';

/** A database cloned from the migrated template, private to one test file. */
export interface TestDatabase {
  url: string;
  name: string;
  drop(): Promise<void>;
}

function adminClient(): pg.Client {
  return new pg.Client({ connectionString: inject('databaseUrl') });
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const name = `wf_test_${randomBytes(6).toString('hex')}`;
  const admin = adminClient();
  await admin.connect();
  try {
    await admin.query(
      `CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE ${pg.escapeIdentifier(inject('templateDatabase'))}`,
    );
  } finally {
    await admin.end();
  }
  const url = new URL(inject('databaseUrl'));
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    async drop() {
      const client = adminClient();
      await client.connect();
      try {
        await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

/** Removes every Redis key under a prefix (queues, cache) so test files leave nothing behind. */
export async function deleteRedisPrefix(prefix: string): Promise<void> {
  const redis = new Redis(inject('redisUrl'));
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500);
      cursor = next;
      if (keys.length > 0) await redis.del(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** The environment a service under test runs with: its own database and Redis prefix. */
export function testEnvironment(
  database: TestDatabase,
  prefix: string,
  overrides: Record<string, string> = {},
) {
  return {
    NODE_ENV: 'test',
    DATABASE_URL: database.url,
    REDIS_URL: inject('redisUrl'),
    REDIS_PREFIX: prefix,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    SWEEP_INTERVAL_MS: '500',
    ...overrides,
  };
}

export interface TestApp {
  app: FastifyInstance;
  config: Config;
  database: TestDatabase;
  prefix: string;
}

/**
 * Builds the service for the current test file (its own database and Redis prefix), starts
 * its runtime (migrations, workers) before the tests and closes everything after them.
 * Read `.app` inside tests or hooks, not at module level.
 */
export function useTestApp(overrides: Record<string, string> = {}): TestApp {
  const context = {} as TestApp;
  beforeAll(async () => {
    context.database = await createTestDatabase();
    context.prefix = `t${randomBytes(5).toString('hex')}`;
    context.config = loadConfig(testEnvironment(context.database, context.prefix, overrides));
    context.app = await buildApp(context.config);
    await context.app.ready();
    await startRuntime(context.app);
  });
  afterAll(async () => {
    if (context.app) {
      context.app.lifecycle.shuttingDown = true;
      await context.app.close();
    }
    if (context.prefix) await deleteRedisPrefix(context.prefix);
    if (context.database) await context.database.drop();
  });
  return context;
}

/**
 * A Postgres client on the test file's database, for tests that check what the engine wrote.
 * Call after useTestApp; read `.db` inside tests.
 */
export function useDatabaseClient(context: TestApp): { db: pg.Client } {
  const holder = {} as { db: pg.Client };
  beforeAll(async () => {
    holder.db = new pg.Client({ connectionString: context.database.url });
    await holder.db.connect();
  });
  afterAll(async () => {
    await holder.db?.end();
  });
  return holder;
}
