import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { BenchContext } from './lib/context.js';
import { CpuMeter } from './lib/cpu.js';
import { serviceEnvironment, startInProcessService } from './lib/service.js';
import { round } from './lib/util.js';
import { engineDriver, measureThroughput, referenceDriver } from './workloads/chains.js';
import { CHAIN_LENGTH, createWorkflow, sequentialWorkflow } from './workloads/engine.js';
import { ReferenceEngine } from './workloads/reference.js';

/**
 * `npx tsx bench/profile.ts [--executions 200] [--target engine|reference|both]`: what one
 * durable step costs, counted rather than timed. Runs the sequential workload (CHAIN_LENGTH
 * noop steps per execution) on the engine and on the reference chain, each after a warm-up,
 * and prints every SQL statement and Redis command issued per step, with the time spent
 * waiting for each, and the CPU time spent per step in this process and in the Postgres
 * backends of its database (CPU time depends far less than wall time on what else the machine
 * runs). Combine with `node --cpu-prof --import tsx bench/profile.ts` for a CPU
 * profile of the same run. Not part of `npm run bench`.
 */

interface Tally {
  count: number;
  ms: number;
}

const sqlTally = new Map<string, Tally>();
const redisTally = new Map<string, Tally>();
let counting = false;

function add(map: Map<string, Tally>, key: string, ms: number): void {
  const entry = map.get(key) ?? { count: 0, ms: 0 };
  entry.count += 1;
  entry.ms += ms;
  map.set(key, entry);
}

/** A statement's identity: its first meaningful words, whitespace collapsed. */
function sqlKey(text: string): string {
  return text.replace(/\s+/g, ' ').trim().slice(0, 90);
}

type QueryFn = (...args: unknown[]) => unknown;
const clientPrototype = pg.Client.prototype as unknown as { query: QueryFn };
const originalQuery = clientPrototype.query;
clientPrototype.query = function (this: unknown, ...args: unknown[]) {
  const first = args[0];
  const text = typeof first === 'string' ? first : (first as { text?: string } | null)?.text;
  if (!counting || typeof text !== 'string') return originalQuery.apply(this, args);
  const started = performance.now();
  const done = () => add(sqlTally, sqlKey(text), performance.now() - started);
  // pg.Pool#query passes a callback; clients inside transactions use the promise form.
  const last = args[args.length - 1];
  if (typeof last === 'function') {
    args[args.length - 1] = (...results: unknown[]) => {
      done();
      return (last as QueryFn)(...results);
    };
    return originalQuery.apply(this, args);
  }
  const result = originalQuery.apply(this, args);
  return result instanceof Promise ? result.finally(done) : result;
};

type SendCommand = (command: {
  name: string;
  args?: unknown[];
  promise: Promise<unknown>;
}) => unknown;
const redisPrototype = Redis.prototype as unknown as { sendCommand: SendCommand };
const originalSend = redisPrototype.sendCommand;
redisPrototype.sendCommand = function (this: unknown, command) {
  const result = originalSend.call(this, command);
  if (counting && command?.name) {
    const started = performance.now();
    // BullMQ's Lua scripts run as EVALSHA; name them by their key count and first key's suffix.
    let name = command.name.toUpperCase();
    if ((name === 'EVALSHA' || name === 'EVAL') && Array.isArray(command.args)) {
      const key = String(command.args[2] ?? '');
      name = `${name} ${key.split(':').slice(-1)[0] ?? ''}`;
    }
    command.promise.then(
      () => add(redisTally, name, performance.now() - started),
      () => add(redisTally, name, performance.now() - started),
    );
  }
  return result;
};

function report(
  title: string,
  steps: number,
  seconds: number,
  cpu: { nodeMs: number; postgresMs: number },
): void {
  console.log(
    `\n${title}: ${steps} steps in ${seconds.toFixed(2)} s (${(steps / seconds).toFixed(0)} steps/s)`,
  );
  console.log(
    `  CPU per step: ${(cpu.nodeMs / steps).toFixed(2)} ms in Node (this process), ${(cpu.postgresMs / steps).toFixed(2)} ms in Postgres backends`,
  );
  for (const [label, map] of [
    ['SQL', sqlTally],
    ['Redis', redisTally],
  ] as const) {
    const rows = [...map.entries()].sort((a, b) => b[1].count - a[1].count);
    const total = rows.reduce((sum, [, t]) => sum + t.count, 0);
    console.log(`  ${label}: ${round(total / steps, 2)} per step`);
    for (const [key, tally] of rows) {
      console.log(
        `    ${String(round(tally.count / steps, 2)).padStart(6)} /step  ${String(round(tally.ms / tally.count, 2)).padStart(7)} ms  ${key}`,
      );
    }
  }
  sqlTally.clear();
  redisTally.clear();
}

const { values } = parseArgs({
  options: {
    executions: { type: 'string', default: '200' },
    target: { type: 'string', default: 'both' },
  },
});
const executions = Number(values.executions);

async function main(): Promise<void> {
  const context = BenchContext.fromEnv();
  try {
    await context.prepareTemplate();
    const plan = { stepsPerExecution: CHAIN_LENGTH, startConcurrency: 20, timeoutMs: 300_000 };
    /** A warm-up, then `executions` chains with statements and CPU counted. */
    const measureCounted = async (
      name: string,
      driver: Parameters<typeof measureThroughput>[0],
      databaseName: string,
    ): Promise<void> => {
      await measureThroughput(driver, { ...plan, count: 50 });
      const meter = new CpuMeter(admin, databaseName);
      await meter.start();
      counting = true;
      const result = await measureThroughput(driver, { ...plan, count: executions });
      counting = false;
      report(name, result.steps, result.seconds, await meter.stop());
    };
    const admin = new pg.Pool({ connectionString: context.adminUrl, max: 1 });
    if (values.target !== 'engine') {
      const database = await context.database('reference');
      const pool = new pg.Pool({ connectionString: database.url, max: 20 });
      const engine = new ReferenceEngine(pool, context.redisUrl, context.prefix('reference'), 20);
      engine.start();
      await measureCounted(
        'reference chain',
        referenceDriver(engine, pool, CHAIN_LENGTH),
        database.name,
      );
      await engine.close();
      await pool.end();
    }
    if (values.target !== 'reference') {
      const database = await context.database('engine');
      const service = await startInProcessService(
        serviceEnvironment(database, context.redisUrl, context.prefix('engine')),
      );
      try {
        const workflowId = await createWorkflow(
          service.app,
          sequentialWorkflow('profile', CHAIN_LENGTH),
        );
        await measureCounted('engine', engineDriver(service.app, workflowId), database.name);
      } finally {
        await service.close();
      }
    }
    await admin.end();
  } finally {
    await context.cleanup();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
