import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import type { BenchContext } from '../lib/context.js';
import { CpuMeter } from '../lib/cpu.js';
import { serviceEnvironment, startInProcessService } from '../lib/service.js';
import { waitUntil } from '../lib/util.js';
import {
  type ChainDriver,
  engineDriver,
  executionSpanSeconds,
  type LatencyResult,
  measureIdleLatency,
  measureLoadedLatency,
  measureThroughput,
  type ThroughputResult,
} from './chains.js';

export const CHAIN_LENGTH = 10;
export const FANOUT_WIDTH = 200;

/** A sequential workflow of `length` noop steps. */
export function sequentialWorkflow(name: string, length: number): Record<string, unknown> {
  return {
    name,
    workflow_type: 'sequential',
    steps: Array.from({ length }, (_, i) => ({
      id: `s${i + 1}`,
      name: `Step ${i + 1}`,
      step_type: 'noop',
    })),
  };
}

/** Most dependencies one step may declare (src/core/workflow-definition.ts). */
const MAX_DEPENDENCIES = 100;

/**
 * 1 -> width parallel -> 1 join, as a parallel workflow with dependencies. A step declares at
 * most 100 dependencies, so a join of more branches gathers them through one partial join
 * per 100 branches first (200 branches: 1 -> 200 -> 2 -> 1, 204 steps).
 */
export function fanoutWorkflow(width: number): Record<string, unknown> {
  const branches = Array.from({ length: width }, (_, i) => `b${i + 1}`);
  const groups: string[][] = [];
  for (let i = 0; i < branches.length; i += MAX_DEPENDENCIES) {
    groups.push(branches.slice(i, i + MAX_DEPENDENCIES));
  }
  const partials =
    groups.length === 1
      ? []
      : groups.map((group, i) => ({
          id: `join${i + 1}`,
          name: `Join ${i + 1}`,
          step_type: 'noop',
          dependencies: group,
        }));
  return {
    name: `bench fan-out ${width}`,
    workflow_type: 'parallel',
    steps: [
      { id: 'root', name: 'Root', step_type: 'noop' },
      ...branches.map((id) => ({ id, name: id, step_type: 'noop', dependencies: ['root'] })),
      ...partials,
      {
        id: 'join',
        name: 'Join',
        step_type: 'noop',
        dependencies: partials.length > 0 ? partials.map((step) => step.id) : branches,
      },
    ],
  };
}

/** Steps of fanoutWorkflow(width). */
export function fanoutSteps(width: number): number {
  const groups = Math.ceil(width / MAX_DEPENDENCIES);
  return width + 2 + (groups > 1 ? groups : 0);
}

export async function createWorkflow(
  app: FastifyInstance,
  body: Record<string, unknown>,
): Promise<string> {
  const response = await app.inject({ method: 'POST', url: '/workflows', payload: body });
  if (response.statusCode !== 201) {
    throw new Error(`creating a workflow failed: ${response.statusCode} ${response.body}`);
  }
  return (response.json() as { id: string }).id;
}

export interface FanoutResult {
  steps: number;
  /** Median over the measured runs. */
  seconds: number;
  msPerStep: number;
  runs: number[];
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] as number)
    : ((sorted[middle - 1] as number) + (sorted[middle] as number)) / 2;
}

/** Runs `runs` fan-outs one after another (after one warm-up) and keeps the median span. */
export async function measureFanout(
  runOnce: () => Promise<number>,
  runs: number,
  steps: number,
): Promise<FanoutResult> {
  await runOnce();
  const spans: number[] = [];
  for (let i = 0; i < runs; i += 1) spans.push(await runOnce());
  const seconds = median(spans);
  return { steps, seconds, msPerStep: (seconds * 1000) / steps, runs: spans };
}

export interface ChainFigures {
  throughput: ThroughputResult;
  fanout: FanoutResult;
  idle: LatencyResult;
  loaded: LatencyResult;
}

export interface ChainPlan {
  warmupExecutions: number;
  executions: number;
  fanoutRuns: number;
  idleExecutions: number;
  loadSeconds: number;
}

/** Throughput, then fan-out, then latency idle and at half the measured peak. */
export async function measureChains<Id>(
  driver: ChainDriver<Id>,
  fanout: { run: () => Promise<number>; steps: number },
  plan: ChainPlan,
  meter: CpuMeter,
  log: (message: string) => void,
): Promise<ChainFigures> {
  const common = { stepsPerExecution: CHAIN_LENGTH, startConcurrency: 20, timeoutMs: 240_000 };
  await measureThroughput(driver, { ...common, count: plan.warmupExecutions });
  await meter.start();
  const throughput = await measureThroughput(driver, { ...common, count: plan.executions });
  const cpu = await meter.stop();
  throughput.cpuMsPerStep = {
    node: cpu.nodeMs / throughput.steps,
    postgres: cpu.postgresMs / throughput.steps,
  };
  log(
    `  throughput: ${throughput.stepsPerSecond.toFixed(0)} steps/s, ${throughput.executionsPerSecond.toFixed(1)} executions/s; CPU per step ${throughput.cpuMsPerStep.node.toFixed(2)} ms Node + ${throughput.cpuMsPerStep.postgres.toFixed(2)} ms Postgres`,
  );
  const fanoutResult = await measureFanout(fanout.run, plan.fanoutRuns, fanout.steps);
  log(`  fan-out: ${fanoutResult.seconds.toFixed(2)} s for ${fanoutResult.steps} steps`);
  const idle = await measureIdleLatency(driver, { count: plan.idleExecutions, timeoutMs: 30_000 });
  log(`  idle latency: p50 ${idle.p50.toFixed(2)} ms, p99 ${idle.p99.toFixed(2)} ms`);
  const loaded = await measureLoadedLatency(driver, {
    ratePerSecond: throughput.executionsPerSecond / 2,
    durationMs: plan.loadSeconds * 1000,
    timeoutMs: 240_000,
  });
  log(
    `  latency at ${loaded.offeredPerSecond?.toFixed(1)} executions/s: p50 ${loaded.p50.toFixed(2)} ms, p99 ${loaded.p99.toFixed(2)} ms`,
  );
  return { throughput, fanout: fanoutResult, idle, loaded };
}

/** The engine in this process (role all, the service's defaults), on its own database. */
export async function measureEngine(
  context: BenchContext,
  plan: ChainPlan,
  log: (message: string) => void,
): Promise<ChainFigures> {
  const database = await context.database('engine');
  const service = await startInProcessService(
    serviceEnvironment(database, context.redisUrl, context.prefix('engine')),
  );
  const admin = new pg.Pool({ connectionString: context.adminUrl, max: 1 });
  try {
    const { app } = service;
    const chainId = await createWorkflow(app, sequentialWorkflow('bench chain', CHAIN_LENGTH));
    const fanoutId = await createWorkflow(app, fanoutWorkflow(FANOUT_WIDTH));
    const driver = engineDriver(app, chainId);
    const runFanout = async () => {
      const { execution } = await app.executions.execute(fanoutId, {});
      await waitUntil(
        'the fan-out execution',
        async () => (await engineDriver(app, fanoutId).countCompleted([execution.id])) === 1,
        120_000,
        20,
      );
      return executionSpanSeconds(app.pg, [execution.id]);
    };
    return await measureChains(
      driver,
      { run: runFanout, steps: fanoutSteps(FANOUT_WIDTH) },
      plan,
      new CpuMeter(admin, database.name),
      log,
    );
  } finally {
    await admin.end();
    await service.close();
  }
}
