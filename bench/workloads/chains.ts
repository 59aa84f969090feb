import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { percentile, runAtRate, runPool, waitUntil } from '../lib/util.js';
import {
  chainLatenciesMs,
  chainSpanSeconds,
  countCompletedChains,
  type ReferenceEngine,
} from './reference.js';

/**
 * One way of running "an execution of a chain of steps": the engine or the reference.
 * The same measurements (throughput, idle and loaded scheduling latency) run on both, and
 * every timing is read from the database's own timestamps.
 */
export interface ChainDriver<Id> {
  start(): Promise<Id>;
  countCompleted(ids: readonly Id[]): Promise<number>;
  /** First creation to last completion, in seconds. */
  spanSeconds(ids: readonly Id[]): Promise<number>;
  /** For every step but the first: its start minus its predecessor's completion, in ms. */
  latenciesMs(ids: readonly Id[]): Promise<number[]>;
}

export function referenceDriver(
  engine: ReferenceEngine,
  pool: pg.Pool,
  length: number,
): ChainDriver<number> {
  return {
    start: () => engine.startChain(length),
    countCompleted: (ids) => countCompletedChains(pool, ids),
    spanSeconds: (ids) => chainSpanSeconds(pool, ids),
    latenciesMs: (ids) => chainLatenciesMs(pool, ids),
  };
}

/** Executions of one workflow, started in-process through the execution manager. */
export function engineDriver(
  app: FastifyInstance,
  workflowId: string,
  input: Record<string, unknown> = {},
): ChainDriver<string> {
  return executionsDriver(app.pg, async () => {
    const { execution } = await app.executions.execute(workflowId, input);
    return execution.id;
  });
}

/** Executions started by `start` (in process or over HTTP), read from the service's database. */
export function executionsDriver(pool: pg.Pool, start: () => Promise<string>): ChainDriver<string> {
  return {
    start,
    async countCompleted(ids) {
      const { rows } = await pool.query<{ done: number; bad: number }>(
        `SELECT count(*) FILTER (WHERE status = 'completed')::int AS done,
                count(*) FILTER (WHERE status IN ('failed', 'cancelled', 'timed_out'))::int AS bad
           FROM workflow_executions WHERE id = ANY($1::text[])`,
        [ids],
      );
      const row = rows[0];
      if (row && row.bad > 0) throw new Error(`${row.bad} benchmark executions did not complete`);
      return row?.done ?? 0;
    },
    spanSeconds: (ids) => executionSpanSeconds(pool, ids),
    async latenciesMs(ids) {
      const { rows } = await pool.query<{ latency: number }>(
        `SELECT latency FROM (
           SELECT extract(epoch FROM started_at - lag(completed_at) OVER w)::float8 * 1000 AS latency
             FROM step_executions WHERE execution_id = ANY($1::text[])
           WINDOW w AS (PARTITION BY execution_id, iteration ORDER BY id)) AS l
          WHERE latency IS NOT NULL`,
        [ids],
      );
      return rows.map((row) => row.latency);
    },
  };
}

export async function executionSpanSeconds(pool: pg.Pool, ids: readonly string[]): Promise<number> {
  const { rows } = await pool.query<{ span: number }>(
    `SELECT extract(epoch FROM max(completed_at) - min(created_at))::float8 AS span
       FROM workflow_executions WHERE id = ANY($1::text[])`,
    [ids],
  );
  return rows[0]?.span ?? Number.NaN;
}

export interface ThroughputResult {
  executions: number;
  steps: number;
  seconds: number;
  executionsPerSecond: number;
  stepsPerSecond: number;
  /** CPU per step in this process (where the engine or the reference runs) and in the Postgres
   * backends of its database: far less sensitive to the machine's load than steps per second. */
  cpuMsPerStep?: { node: number; postgres: number };
}

/** Starts `count` executions (`startConcurrency` starts in flight) and waits for all. */
export async function measureThroughput<Id>(
  driver: ChainDriver<Id>,
  options: {
    count: number;
    stepsPerExecution: number;
    startConcurrency: number;
    timeoutMs: number;
  },
): Promise<ThroughputResult> {
  const ids: Id[] = [];
  await runPool(options.count, options.startConcurrency, async () => {
    ids.push(await driver.start());
  });
  await waitUntil(
    `${options.count} executions`,
    async () => (await driver.countCompleted(ids)) >= ids.length,
    options.timeoutMs,
    100,
  );
  const seconds = await driver.spanSeconds(ids);
  return {
    executions: ids.length,
    steps: ids.length * options.stepsPerExecution,
    seconds,
    executionsPerSecond: ids.length / seconds,
    stepsPerSecond: (ids.length * options.stepsPerExecution) / seconds,
  };
}

export interface LatencyResult {
  samples: number;
  p50: number;
  p99: number;
  max: number;
  /** Load phases only: executions started per second, and how many. */
  offeredPerSecond?: number;
  executions?: number;
}

function summarise(samples: readonly number[]): LatencyResult {
  return {
    samples: samples.length,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    max: Math.max(...samples),
  };
}

/** One execution at a time, each waited for: nothing else competes for the engine. */
export async function measureIdleLatency<Id>(
  driver: ChainDriver<Id>,
  options: { count: number; timeoutMs: number },
): Promise<LatencyResult> {
  const ids: Id[] = [];
  for (let i = 0; i < options.count; i += 1) {
    const id = await driver.start();
    ids.push(id);
    await waitUntil(
      'an execution',
      async () => (await driver.countCompleted([id])) === 1,
      options.timeoutMs,
      5,
    );
  }
  return summarise(await driver.latenciesMs(ids));
}

/** Executions started at a fixed rate (open loop) for `durationMs`, then waited for. */
export async function measureLoadedLatency<Id>(
  driver: ChainDriver<Id>,
  options: { ratePerSecond: number; durationMs: number; timeoutMs: number },
): Promise<LatencyResult> {
  const ids: Id[] = [];
  await runAtRate(options.ratePerSecond, options.durationMs, async () => {
    ids.push(await driver.start());
  });
  await waitUntil(
    'loaded executions',
    async () => (await driver.countCompleted(ids)) >= ids.length,
    options.timeoutMs,
    100,
  );
  return {
    ...summarise(await driver.latenciesMs(ids)),
    offeredPerSecond: options.ratePerSecond,
    executions: ids.length,
  };
}
