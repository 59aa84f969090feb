import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { migrate } from '../../src/store/migrate.js';
import { assertLoopback, sleep } from './util.js';

/** SQLSTATE of CREATE DATABASE ... TEMPLATE while the template has other connections. */
const OBJECT_IN_USE = '55006';

/** Tables of the hand-written reference engine (bench/workloads/reference.ts). */
const REFERENCE_SCHEMA = `
CREATE TABLE bench_ref_chains (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    length INTEGER NOT NULL,
    remaining INTEGER NOT NULL DEFAULT 0,
    status VARCHAR(20) NOT NULL DEFAULT 'running',
    input JSONB NOT NULL DEFAULT '{}',
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    completed_at TIMESTAMP WITH TIME ZONE
);
CREATE TABLE bench_ref_steps (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain_id BIGINT NOT NULL REFERENCES bench_ref_chains(id),
    position INTEGER NOT NULL,
    status VARCHAR(20) NOT NULL DEFAULT 'queued',
    output JSONB,
    queued_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE,
    UNIQUE (chain_id, position)
);`;

export interface BenchDatabase {
  name: string;
  url: string;
}

/**
 * What the benchmark owns on the local servers: one migrated template database, one database
 * per workload cloned from it, and Redis keys under one random prefix. `cleanup()` removes all
 * of it (also after a failure or Ctrl-C).
 */
export class BenchContext {
  readonly id = randomBytes(4).toString('hex');
  readonly templateName = `wf_bench_${this.id}`;
  /** Every Redis key of the run starts with this (each workload adds its own suffix). */
  readonly redisPrefix = `wfbench${this.id}`;
  private readonly databases: string[] = [];
  private readonly children = new Set<ChildProcess>();
  private templateReady = false;

  constructor(
    readonly adminUrl: string,
    readonly redisUrl: string,
  ) {
    assertLoopback(adminUrl, 'BENCH_DATABASE_URL');
    assertLoopback(redisUrl, 'BENCH_REDIS_URL');
  }

  static fromEnv(): BenchContext {
    return new BenchContext(
      process.env.BENCH_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres',
      process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0',
    );
  }

  urlOf(name: string): string {
    const url = new URL(this.adminUrl);
    url.pathname = `/${name}`;
    return url.toString();
  }

  prefix(workload: string): string {
    return `${this.redisPrefix}-${workload}`;
  }

  private async admin<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
    const client = new pg.Client({ connectionString: this.adminUrl });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  }

  /** Creates and migrates the template (service schema plus the reference tables). */
  async prepareTemplate(): Promise<void> {
    await this.admin((client) =>
      client.query(`CREATE DATABASE ${pg.escapeIdentifier(this.templateName)}`),
    );
    this.databases.push(this.templateName);
    const url = this.urlOf(this.templateName);
    await migrate(url, { debug: () => {} });
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(REFERENCE_SCHEMA);
    } finally {
      await client.end();
    }
    this.templateReady = true;
  }

  /** A fresh, migrated database for one workload. */
  async database(workload: string): Promise<BenchDatabase> {
    if (!this.templateReady) throw new Error('prepareTemplate() first');
    const name = `${this.templateName}_${workload}`;
    // Cloning fails while anything is connected to the template (an autovacuum worker may be,
    // briefly, right after the migrations): try again for a few seconds.
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.admin((client) =>
          client.query(
            `CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE ${pg.escapeIdentifier(this.templateName)}`,
          ),
        );
        break;
      } catch (error) {
        const inUse = (error as { code?: string }).code === OBJECT_IN_USE;
        if (!inUse || attempt >= 20) throw error;
        await sleep(500);
      }
    }
    this.databases.push(name);
    return { name, url: this.urlOf(name) };
  }

  /** An empty database (no migrations): for a service of another release that migrates its own. */
  async emptyDatabase(workload: string): Promise<BenchDatabase> {
    const name = `${this.templateName}_${workload}`;
    await this.admin((client) => client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`));
    this.databases.push(name);
    return { name, url: this.urlOf(name) };
  }

  async serverVersions(): Promise<{ postgres: string; redis: string }> {
    const postgres = await this.admin(async (client) => {
      const { rows } = await client.query<{ server_version: string }>('SHOW server_version');
      return rows[0]?.server_version ?? 'unknown';
    });
    const redis = new Redis(this.redisUrl, { lazyConnect: true });
    try {
      await redis.connect();
      const info = await redis.info('server');
      return { postgres, redis: /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown' };
    } finally {
      redis.disconnect();
    }
  }

  /** A process the benchmark started: killed by cleanup() if it is still running. */
  track(child: ChildProcess): void {
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
  }

  /** Stops what the run started, drops its databases and deletes its Redis keys. */
  async cleanup(): Promise<void> {
    const problems: string[] = [];
    for (const child of this.children) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    try {
      await this.admin(async (client) => {
        for (const name of this.databases.reverse()) {
          await client
            .query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`)
            .catch((error: unknown) => problems.push(`drop ${name}: ${String(error)}`));
        }
      });
    } catch (error) {
      problems.push(`databases: ${String(error)}`);
    }
    this.databases.length = 0;
    const redis = new Redis(this.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(
          cursor,
          'MATCH',
          `${this.redisPrefix}*`,
          'COUNT',
          1000,
        );
        cursor = next;
        if (keys.length > 0) await redis.unlink(...keys);
      } while (cursor !== '0');
    } catch (error) {
      problems.push(`redis keys: ${String(error)}`);
    } finally {
      redis.disconnect();
    }
    if (problems.length > 0) console.error(`cleanup incomplete:\n  ${problems.join('\n  ')}`);
  }
}
