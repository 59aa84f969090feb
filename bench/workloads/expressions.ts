import { closeExpressionSandbox, sandboxStats } from '../../src/engine/expression-sandbox/index.js';
import type { BenchContext } from '../lib/context.js';
import { serviceEnvironment, startInProcessService } from '../lib/service.js';
import { engineDriver, measureThroughput, type ThroughputResult } from './chains.js';
import { CHAIN_LENGTH, createWorkflow, sequentialWorkflow } from './engine.js';

/**
 * Expression isolation cost: the sequential chain with a condition on every step, evaluated
 * in process (`input.go = true`, a plain comparison) and in the sandbox's child processes
 * (`$boolean(input.go)`, a function call), measured alternately in one service.
 */
export interface ExpressionIsolationFigures {
  inProcess: ThroughputResult;
  sandboxed: ThroughputResult;
  /** Evaluations the sandboxed chains sent to the pool (one per step, as a check). */
  sandboxEvaluations: number;
}

export interface ExpressionIsolationPlan {
  warmupExecutions: number;
  executions: number;
  rounds: number;
}

function conditionedChain(name: string, condition: string): Record<string, unknown> {
  const chain = sequentialWorkflow(name, CHAIN_LENGTH) as { steps: Record<string, unknown>[] };
  return { ...chain, steps: chain.steps.map((step) => ({ ...step, condition })) };
}

function best(results: readonly ThroughputResult[]): ThroughputResult {
  return results.reduce((a, b) => (b.stepsPerSecond > a.stepsPerSecond ? b : a));
}

export async function measureExpressionIsolation(
  context: BenchContext,
  plan: ExpressionIsolationPlan,
  log: (message: string) => void,
): Promise<ExpressionIsolationFigures> {
  const database = await context.database('expressions');
  const service = await startInProcessService(
    serviceEnvironment(database, context.redisUrl, context.prefix('expressions')),
  );
  try {
    const { app } = service;
    const plain = engineDriver(
      app,
      await createWorkflow(app, conditionedChain('bench plain conditions', 'input.go = true')),
      { go: true },
    );
    const sandboxed = engineDriver(
      app,
      await createWorkflow(
        app,
        conditionedChain('bench sandboxed conditions', '$boolean(input.go)'),
      ),
      { go: true },
    );
    // Fewer starts in flight than the engine phase: a condition is evaluated while its step
    // holds a Postgres connection, so a slow sandbox round trip can starve the pool.
    const common = { stepsPerExecution: CHAIN_LENGTH, startConcurrency: 8, timeoutMs: 240_000 };
    await measureThroughput(plain, { ...common, count: plan.warmupExecutions });
    await measureThroughput(sandboxed, { ...common, count: plan.warmupExecutions });
    const inProcessRuns: ThroughputResult[] = [];
    const sandboxedRuns: ThroughputResult[] = [];
    const before = sandboxStats().evaluations;
    // Alternated rounds, best of each: the machine's load drifts during a run.
    for (let round = 0; round < plan.rounds; round += 1) {
      inProcessRuns.push(await measureThroughput(plain, { ...common, count: plan.executions }));
      sandboxedRuns.push(await measureThroughput(sandboxed, { ...common, count: plan.executions }));
    }
    const figures = {
      inProcess: best(inProcessRuns),
      sandboxed: best(sandboxedRuns),
      sandboxEvaluations: sandboxStats().evaluations - before,
    };
    log(
      `  in process ${figures.inProcess.stepsPerSecond.toFixed(0)} steps/s, sandboxed ${figures.sandboxed.stepsPerSecond.toFixed(0)} steps/s (${figures.sandboxEvaluations} sandboxed evaluations)`,
    );
    return figures;
  } finally {
    await service.close();
    await closeExpressionSandbox();
  }
}
