import { execSync } from 'node:child_process';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import type { TestProject } from 'vitest/node';
import { migrate } from '../../src/store/migrate.js';
import { postgresAnswers } from './private-servers.js';

/**
 * Finds Postgres and Redis for the suite: TEST_DATABASE_URL / TEST_REDIS_URL or the local
 * servers; where none answers and a Docker engine runs, starts them with testcontainers.
 * Then migrates one template database that every test file clones (fast, isolated).
 */

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    redisUrl: string;
    templateDatabase: string;
  }
}

async function redisAnswers(url: string): Promise<boolean> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 2000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

function dockerRuns(): boolean {
  try {
    execSync('docker info', { stdio: 'ignore', timeout: 5000 });
    return true;
  } catch {
    return false;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  let databaseUrl = process.env.TEST_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/test';
  let redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
  const stops: Array<() => Promise<unknown>> = [];

  if (!(await postgresAnswers(databaseUrl))) {
    if (!dockerRuns()) {
      throw new Error(
        `No Postgres answers at ${databaseUrl} and no Docker engine runs to start one. Start Postgres or set TEST_DATABASE_URL.`,
      );
    }
    const { PostgreSqlContainer } = await import('@testcontainers/postgresql');
    const container = await new PostgreSqlContainer('postgres:16-alpine').start();
    databaseUrl = container.getConnectionUri();
    stops.push(() => container.stop());
  }
  if (!(await redisAnswers(redisUrl))) {
    if (!dockerRuns()) {
      throw new Error(
        `No Redis answers at ${redisUrl} and no Docker engine runs to start one. Start Redis or set TEST_REDIS_URL.`,
      );
    }
    const { RedisContainer } = await import('@testcontainers/redis');
    const container = await new RedisContainer('redis:7-alpine').start();
    redisUrl = container.getConnectionUrl();
    stops.push(() => container.stop());
  }

  const templateDatabase = `wf_template_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ connectionString: databaseUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(templateDatabase)}`);
  const templateUrl = new URL(databaseUrl);
  templateUrl.pathname = `/${templateDatabase}`;
  await migrate(templateUrl.toString(), pino({ level: 'silent' }));

  project.provide('databaseUrl', databaseUrl);
  project.provide('redisUrl', redisUrl);
  project.provide('templateDatabase', templateDatabase);

  return async () => {
    await admin.query(
      `DROP DATABASE IF EXISTS ${pg.escapeIdentifier(templateDatabase)} WITH (FORCE)`,
    );
    await admin.end();
    for (const stop of stops) await stop();
  };
}
