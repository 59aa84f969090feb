import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { projectRoot } from '../src/project.js';
import { BenchContext } from './lib/context.js';
import {
  formatTable,
  machineInfo,
  roundAll,
  type Workload,
  workload,
  writeResults,
} from './lib/report.js';
import { round } from './lib/util.js';
import { type ApiFigures, measureApi } from './workloads/api.js';
import { type BulkFigures, measureBulk } from './workloads/bulk.js';
import { type ChainFigures, type ChainPlan, measureEngine } from './workloads/engine.js';
import {
  type ExpressionIsolationFigures,
  measureExpressionIsolation,
} from './workloads/expressions.js';
import { type FlowFigures, measureFlowControl } from './workloads/flow-control.js';
import { measureForeach } from './workloads/foreach.js';
import { foreachSection, foreachWorkloads } from './workloads/foreach-report.js';
import { type HistoryFigures, measureHistory } from './workloads/history.js';
import { type MemoryFigures, measureMemory } from './workloads/memory.js';
import { measurePurge, purgeWorkloads } from './workloads/purge.js';
import { type RawBullmqResult, rawBullmq } from './workloads/raw-bullmq.js';
import { measureReference } from './workloads/reference-phase.js';
import { measureRelease, type ReleaseFigures } from './workloads/release.js';

/**
 * `npm run bench`: every workload against the local Postgres and Redis, each on a database and
 * a Redis prefix of its own (dropped and deleted at the end), every figure next to a baseline
 * measured in the same run. Options:
 *   --only raw,reference,engine,expressions,api,history,flow,purge,foreach,memory
 *                        a subset (a figure whose baseline phase did not run shows NaN)
 *   PHASE ...            the same as --only PHASE,... (`npm run bench -- purge`)
 *   --out FILE           where the JSON goes
 * Environment: BENCH_DATABASE_URL (an admin connection, default postgres@127.0.0.1:5432),
 * BENCH_REDIS_URL (default redis://127.0.0.1:6379/0), BENCH_BUDGET_SECONDS (default 540; 0: none),
 * FOREACH_ITEMS (items of the for_each fan-out, default 100000).
 */

const PHASES = [
  'raw',
  'reference',
  'engine',
  'expressions',
  'api',
  'history',
  'flow',
  'bulk',
  'release',
  'purge',
  'foreach',
  'memory',
] as const;
type Phase = (typeof PHASES)[number];

/** The engine's default WORKER_CONCURRENCY: raw BullMQ and the reference use the same. */
const WORKER_CONCURRENCY = 20;
const CHAIN_PLAN: ChainPlan = {
  warmupExecutions: 50,
  executions: 500,
  fanoutRuns: 3,
  idleExecutions: 40,
  loadSeconds: 10,
};
const MEMORY_EXECUTIONS = 20_000;
/** The whole run stays under 10 minutes: the memory workload, last, stops at a checkpoint
 * once this is spent (on a contended machine it may then reach fewer than 20,000).
 * BENCH_BUDGET_SECONDS=0: no budget, the memory workload always runs to 20,000. */
const BUDGET_SECONDS = Number(process.env.BENCH_BUDGET_SECONDS ?? 540);
/** The for_each fan-out (the issue's 100,000 items; fewer to try it on an engine that is slow
 * with large fan-outs). It runs before memory and leaves it MEMORY_RESERVE_MS of the budget;
 * items that would not fit the budget at the target rate are cut, and the phase says so. */
const FOREACH_ITEMS = Number(process.env.FOREACH_ITEMS ?? 100_000);
const MEMORY_RESERVE_MS = 60_000;

const { values, positionals } = parseArgs({
  options: {
    only: { type: 'string' },
    out: { type: 'string', default: path.join(projectRoot, 'bench/results/latest.json') },
  },
  allowPositionals: true,
});
// `npm run bench -- purge` means `--only purge`.
const named = [...(values.only?.split(',') ?? []), ...positionals];
const selected = new Set<Phase>(
  named.length === 0
    ? PHASES
    : named.map((name) => {
        if (!(PHASES as readonly string[]).includes(name)) throw new Error(`unknown phase ${name}`);
        return name as Phase;
      }),
);
const outFile = values.out as string;
const log = (message: string) => console.log(message);
const nan = Number.NaN;

function cpuText(cpu: { node: number; postgres: number } | undefined): string {
  return cpu ? `${cpu.node.toFixed(2)} ms Node + ${cpu.postgres.toFixed(2)} ms PG` : '-';
}

function rawWorkloads(raw: RawBullmqResult): Workload[] {
  return [
    workload(
      'raw_bullmq',
      raw.jobsPerSecond,
      'jobs/s',
      'itself (queue ceiling)',
      raw.jobsPerSecond,
      null,
      {
        note: `${raw.jobs} noop jobs, concurrency ${WORKER_CONCURRENCY}`,
        ...roundAll(raw),
      },
    ),
  ];
}

function chainWorkloads(
  engine: ChainFigures | undefined,
  reference: ChainFigures | undefined,
  raw: RawBullmqResult | undefined,
): Workload[] {
  const out: Workload[] = [];
  if (reference) {
    out.push(
      workload(
        'reference_chain',
        reference.throughput.stepsPerSecond,
        'steps/s',
        'raw_bullmq',
        raw?.jobsPerSecond ?? nan,
        null,
        {
          note: `${reference.throughput.executionsPerSecond.toFixed(1)} chains/s of 10 steps`,
          ...roundAll(reference.throughput),
        },
      ),
    );
  }
  if (!engine) return out;
  const ref = reference;
  out.push(
    workload(
      'engine_sequential',
      engine.throughput.stepsPerSecond,
      'steps/s',
      'reference_chain',
      ref?.throughput.stepsPerSecond ?? nan,
      '>= 0.8',
      {
        note: `${engine.throughput.executionsPerSecond.toFixed(1)} executions/s (reference ${ref?.throughput.executionsPerSecond.toFixed(1) ?? '-'}); CPU/step ${cpuText(engine.throughput.cpuMsPerStep)} (reference ${cpuText(ref?.throughput.cpuMsPerStep)})`,
        ...roundAll(engine.throughput),
        reference_executions_per_second: round(ref?.throughput.executionsPerSecond ?? nan),
      },
    ),
    workload(
      'engine_fanout',
      engine.fanout.msPerStep,
      'ms/step',
      'reference_fanout',
      ref?.fanout.msPerStep ?? nan,
      null,
      {
        note: `${engine.fanout.seconds.toFixed(2)} s for ${engine.fanout.steps} steps (reference ${ref?.fanout.seconds.toFixed(2) ?? '-'} s for ${ref?.fanout.steps ?? '-'})`,
        shape: '1 -> 200 -> 1, parallel with dependencies (join via 2 partial joins of 100)',
        steps: engine.fanout.steps,
        seconds_median: round(engine.fanout.seconds, 3),
        runs_seconds: engine.fanout.runs.map((s) => round(s, 3)),
        reference_steps: ref?.fanout.steps,
        reference_runs_seconds: ref?.fanout.runs.map((s) => round(s, 3)),
      },
    ),
    workload(
      'scheduling_latency_idle_p50',
      engine.idle.p50,
      'ms',
      'reference_chain idle p50',
      ref?.idle.p50 ?? nan,
      null,
      {
        note: `${engine.idle.samples} dependency -> start gaps, one execution at a time`,
        samples: engine.idle.samples,
        max_ms: round(engine.idle.max),
      },
    ),
    workload(
      'scheduling_latency_idle_p99',
      engine.idle.p99,
      'ms',
      'reference_chain idle p99',
      ref?.idle.p99 ?? nan,
      null,
      {
        samples: engine.idle.samples,
        reference_samples: ref?.idle.samples,
      },
    ),
    workload(
      'scheduling_latency_load_p99',
      engine.loaded.p99,
      'ms',
      'reference_chain p99 at half its peak',
      ref?.loaded.p99 ?? nan,
      null,
      {
        note: `at ${engine.loaded.offeredPerSecond?.toFixed(1)} executions/s (reference at ${ref?.loaded.offeredPerSecond?.toFixed(1) ?? '-'}); p50 ${engine.loaded.p50.toFixed(1)} ms (reference ${ref?.loaded.p50.toFixed(1) ?? '-'})`,
        offered_executions_per_second: round(engine.loaded.offeredPerSecond ?? nan),
        executions: engine.loaded.executions,
        samples: engine.loaded.samples,
        p50_ms: round(engine.loaded.p50),
        idle_p99_ms: round(engine.idle.p99),
        reference_offered_executions_per_second: round(ref?.loaded.offeredPerSecond ?? nan),
        reference_p50_ms: round(ref?.loaded.p50 ?? nan),
      },
    ),
  );
  return out;
}

function apiWorkloads(api: ApiFigures): Workload[] {
  const describe = (result: ApiFigures['getCached']) => ({
    requests_per_second: round(result.requestsPerSecond),
    p50_ms: result.latencyP50Ms,
    p99_ms: result.latencyP99Ms,
    cpu_ms_per_request: round(result.cpuMsPerRequest, 3),
    errors: result.errors + result.timeouts + result.non2xx,
  });
  const errors = (result: ApiFigures['getCached']) =>
    result.errors + result.timeouts + result.non2xx;
  const load = { connections: api.connections, seconds: api.seconds };
  return [
    workload(
      'api_get_cached',
      api.getCached.requestsPerSecond,
      'req/s',
      'bare route, same JSON, same server',
      api.getBare.requestsPerSecond,
      '>= 0.6',
      {
        note: `p99 ${api.getCached.latencyP99Ms} ms (bare ${api.getBare.latencyP99Ms} ms); CPU ${api.getCached.cpuMsPerRequest.toFixed(2)} ms/req (bare ${api.getBare.cpuMsPerRequest.toFixed(2)}); ${errors(api.getCached)} errors`,
        ...describe(api.getCached),
        baseline: describe(api.getBare),
        ...load,
      },
    ),
    workload(
      'api_execute',
      api.execute.requestsPerSecond,
      'req/s',
      'reference start route (1 tx + 1 job)',
      api.executeReference.requestsPerSecond,
      null,
      {
        note: `p99 ${api.execute.latencyP99Ms} ms (reference ${api.executeReference.latencyP99Ms} ms); CPU ${api.execute.cpuMsPerRequest.toFixed(2)} ms/req (reference ${api.executeReference.cpuMsPerRequest.toFixed(2)}); ${errors(api.execute)} errors`,
        ...describe(api.execute),
        baseline: describe(api.executeReference),
        ...load,
      },
    ),
  ];
}

function flowWorkloads(flow: FlowFigures): Workload[] {
  return [
    workload(
      'flow_limited_throughput',
      flow.limitedPerSecond,
      'executions/s',
      'the same workload without a limit',
      flow.unlimitedPerSecond,
      '>= 0.8',
      {
        note: '1,000 executions of 2 http steps (10 ms peer), config.concurrency limit 2 over 10 keys',
      },
    ),
    workload(
      'flow_fairness_start_latency',
      flow.lateLoadedMedianMs,
      'ms',
      "the late key's start latency alone",
      flow.lateIdleMedianMs,
      '<= 3',
      { note: 'median created -> first step of 20 executions of key B, behind 5,000 of key A' },
    ),
    workload('flow_fairness_jain', flow.jain, 'index', 'perfect fairness', 1, '>= 0.9', {
      note: `completions while both keys had work: a ${flow.bothCompletions.a}, b ${flow.bothCompletions.b}`,
    }),
    workload(
      'flow_diagnosis_p99',
      flow.diagnosisP99Ms,
      'ms',
      'GET /executions/{id} p99, same executions',
      flow.viewP99Ms,
      null,
      {
        note: `10,000 executions queued for one slot; p50 ${flow.diagnosisP50Ms.toFixed(1)} ms (view ${flow.viewP50Ms.toFixed(1)} ms)`,
      },
    ),
  ];
}

/** The last release that landed (CI passed) before the history of issue 16; BENCH_RELEASE_REF
 * names another commit or tag. */
const PREVIOUS_RELEASE = '6ad38d5';

function releaseWorkload(release: ReleaseFigures): Workload {
  return workload(
    'release_hot_path',
    release.currentStepsPerSecond,
    'steps/s',
    `the previous release (${release.ref}), same batches`,
    release.releaseStepsPerSecond,
    '>= 0.95',
    {
      note: `300 executions of a 10-step noop chain over HTTP per round, each tree its own service process, alternately; ${release.rounds.length} rounds`,
      rounds: release.rounds.map((entry) => ({
        current: round(entry.current, 1),
        release: round(entry.release, 1),
      })),
    },
  );
}

function bulkWorkloads(bulk: BulkFigures): Workload[] {
  return [
    workload(
      'bulk_retry_other_work',
      bulk.probePerSecondDuring,
      'executions/s',
      'the same executions without a bulk operation',
      bulk.probePerSecondAlone,
      null,
      {
        note: `1,000 executions of 3 noop steps while one POST /executions/bulk retries 10,000 failed executions: acted on all in ${bulk.actSeconds.toFixed(1)} s, all ended again in ${bulk.settleSeconds.toFixed(1)} s`,
        act_seconds: round(bulk.actSeconds, 1),
        settle_seconds: round(bulk.settleSeconds, 1),
        engine_step_runs_per_second: round(bulk.stepsPerSecondDuring, 1),
        engine_step_runs_per_second_alone: round(bulk.stepsPerSecondAlone, 1),
      },
    ),
  ];
}

function historyWorkloads(history: HistoryFigures): Workload[] {
  const describe = (result: HistoryFigures['listFull']) => ({
    mean_ms: round(result.latencyMeanMs),
    p99_ms: result.latencyP99Ms,
    cpu_ms_per_request: round(result.cpuMsPerRequest, 3),
    requests: result.requests,
    errors: result.errors + result.timeouts + result.non2xx,
  });
  const scale = {
    executions: history.executions,
    step_runs: history.stepRuns,
    insert_seconds: round(history.insertSeconds, 1),
  };
  const note = `mean of one client, ${history.executions} executions / ${history.stepRuns} step runs`;
  return [
    workload(
      'history_list',
      history.listFull.latencyMeanMs,
      'ms',
      'GET /executions, 100 executions',
      history.listEmpty.latencyMeanMs,
      '<= 2',
      {
        note,
        ...describe(history.listFull),
        baseline: describe(history.listEmpty),
        ...scale,
      },
    ),
    workload(
      'history_label_search',
      history.labelFull.latencyMeanMs,
      'ms',
      'GET /executions?label.customer=c42, 100 executions',
      history.labelEmpty.latencyMeanMs,
      '<= 2',
      {
        note: `${note}; 200 of them carry the label (1 of the 100)`,
        ...describe(history.labelFull),
        baseline: describe(history.labelEmpty),
        ...scale,
      },
    ),
    workload(
      'history_stats',
      history.statsFull.latencyMeanMs,
      'ms',
      'GET /workflows/{id}/stats, 100 executions',
      history.statsEmpty.latencyMeanMs,
      '<= 2',
      {
        note: `${note}; window figures cached up to 5 s, uncached window query ${history.windowQueryMs.full.toFixed(1)} ms (${history.windowQueryMs.nearEmpty.toFixed(1)} ms with 100)`,
        ...describe(history.statsFull),
        baseline: describe(history.statsEmpty),
        window_query_ms: {
          full: round(history.windowQueryMs.full),
          near_empty: round(history.windowQueryMs.nearEmpty),
        },
        ...scale,
      },
    ),
  ];
}

function memoryWorkloads(memory: MemoryFigures): Workload[] {
  const first = memory.samples[0];
  const last = memory.samples[memory.samples.length - 1];
  if (!first || !last) return [];
  return [
    workload(
      'memory_growth',
      last.rssMiB,
      'MiB RSS',
      `RSS after ${first.executions} executions`,
      first.rssMiB,
      '<= 1.2',
      {
        note: `after ${last.executions} executions${memory.stoppedEarly ? ` (time budget: stopped before ${memory.target})` : ''}; heap ${first.heapUsedMiB.toFixed(1)} -> ${last.heapUsedMiB.toFixed(1)} MiB`,
        executions: last.executions,
        target_executions: memory.target,
        stopped_early_by_time_budget: memory.stoppedEarly,
        executions_per_second: round(memory.executionsPerSecond),
        samples: memory.samples.map((sample) => ({
          executions: sample.executions,
          rss_mib: round(sample.rssMiB, 1),
          heap_used_mib: round(sample.heapUsedMiB, 1),
          seconds: round(sample.seconds, 1),
        })),
      },
    ),
  ];
}

function expressionWorkloads(figures: ExpressionIsolationFigures): Workload[] {
  return [
    workload(
      'expression_isolation',
      figures.sandboxed.stepsPerSecond,
      'steps/s',
      'chain with in-process conditions',
      figures.inProcess.stepsPerSecond,
      null,
      {
        note: `10-step chain, a condition on every step: $boolean(input.go) in the sandbox vs input.go = true in process (${figures.sandboxEvaluations} sandboxed evaluations)`,
        in_process: roundAll(figures.inProcess),
        sandboxed: roundAll(figures.sandboxed),
      },
    ),
  ];
}

async function main(): Promise<number> {
  const started = performance.now();
  const context = BenchContext.fromEnv();
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await context.cleanup();
  };
  const onSignal = () => {
    log('interrupted: cleaning up');
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const budgetEnd = BUDGET_SECONDS > 0 ? started + BUDGET_SECONDS * 1000 : Number.POSITIVE_INFINITY;
  const machine = machineInfo(await context.serverVersions());
  log(
    `machine: ${machine.cpu_model}, ${machine.cores} cores, ${machine.memory_gib} GiB, node ${machine.node}, postgres ${machine.postgres}, redis ${machine.redis}; load average ${machine.load_average_start.join(' ')}`,
  );
  const results: Workload[] = [];
  const sections: Record<string, unknown> = {};
  const failed: string[] = [];
  /** Runs one phase; a failure is reported and the other phases still run. */
  const phase = async <T>(
    name: Phase,
    title: string,
    run: () => Promise<T>,
  ): Promise<T | undefined> => {
    if (!selected.has(name)) return undefined;
    log(`${title}...`);
    const phaseStarted = performance.now();
    try {
      const result = await run();
      log(`  (${((performance.now() - phaseStarted) / 1000).toFixed(0)} s)`);
      return result;
    } catch (error) {
      failed.push(name);
      console.error(`${name} failed:`, error);
      return undefined;
    }
  };
  try {
    await context.prepareTemplate();
    const raw = await phase('raw', 'raw BullMQ', async () => {
      const result = await rawBullmq(context.redisUrl, context.prefix('raw'), {
        jobs: 10_000,
        warmupJobs: 2_000,
        concurrency: WORKER_CONCURRENCY,
      });
      log(`  ${result.jobsPerSecond.toFixed(0)} jobs/s`);
      return result;
    });
    if (raw) results.push(...rawWorkloads(raw));
    const reference = await phase('reference', 'reference durable chain', () =>
      measureReference(context, CHAIN_PLAN, WORKER_CONCURRENCY, log),
    );
    const engine = await phase('engine', 'engine (in this process, SERVICE_ROLE=all)', () =>
      measureEngine(context, CHAIN_PLAN, log),
    );
    results.push(...chainWorkloads(engine, reference, raw));
    const expressions = await phase('expressions', 'expression isolation cost', () =>
      measureExpressionIsolation(
        context,
        { warmupExecutions: 30, executions: 200, rounds: 2 },
        log,
      ),
    );
    if (expressions) results.push(...expressionWorkloads(expressions));
    const api = await phase('api', 'API (listening on 127.0.0.1, SERVICE_ROLE=api)', () =>
      measureApi(context, { connections: 10, seconds: 8, rounds: 2, warmupSeconds: 2 }, log),
    );
    if (api) results.push(...apiWorkloads(api));
    const history = await phase('history', 'history (200,000 executions)', () =>
      measureHistory(
        context,
        { executions: 200_000, seconds: 6, rounds: 3, warmupSeconds: 1 },
        log,
      ),
    );
    if (history) results.push(...historyWorkloads(history));
    const flow = await phase('flow', 'flow control (separate service process)', () =>
      measureFlowControl(
        context,
        {
          executions: 1000,
          flood: 5000,
          late: 20,
          both: 1500,
          waiting: 10_000,
          diagnosisCalls: 200,
        },
        log,
      ),
    );
    if (flow) results.push(...flowWorkloads(flow));
    const bulk = await phase('bulk', 'bulk retry (separate service process)', () =>
      measureBulk(context, { retried: 10_000, probe: 1000 }, log),
    );
    if (bulk) results.push(...bulkWorkloads(bulk));
    const release = await phase('release', 'the hot path against the previous release', () =>
      measureRelease(
        context,
        { ref: process.env.BENCH_RELEASE_REF ?? PREVIOUS_RELEASE, executions: 300, rounds: 4 },
        log,
      ),
    );
    if (release) results.push(releaseWorkload(release));
    const purge = await phase(
      'purge',
      'retention purge of 1,000,000 step runs (engine running)',
      () =>
        measurePurge(
          context,
          { stepRuns: 1_000_000, warmupExecutions: 50, roundExecutions: 100, baselineRounds: 5 },
          log,
        ),
    );
    if (purge) results.push(...purgeWorkloads(purge));
    const foreach = await phase('foreach', 'for_each fan-out (separate service process)', () =>
      measureForeach(
        context,
        {
          items: FOREACH_ITEMS,
          concurrency: 100,
          chainWarmupExecutions: 30,
          chainExecutions: 200,
          baselineProbes: 5,
          probeIntervalMs: 2_000,
          timeoutMs: 15 * 60_000,
          deadline: budgetEnd - (selected.has('memory') ? MEMORY_RESERVE_MS : 0),
        },
        log,
      ),
    );
    if (foreach) {
      results.push(...foreachWorkloads(foreach));
      sections.foreach = foreachSection(foreach);
    }
    const memory = await phase('memory', 'memory (separate service process)', () =>
      measureMemory(
        context,
        {
          executions: MEMORY_EXECUTIONS,
          every: 1_000,
          concurrency: 8,
          deadline: budgetEnd,
        },
        log,
      ),
    );
    if (memory) results.push(...memoryWorkloads(memory));
  } finally {
    await cleanup();
  }
  machine.load_average_end = os.loadavg().map((value) => round(value, 2));
  machine.duration_seconds = round((performance.now() - started) / 1000, 1);
  log('');
  log(formatTable(results));
  log('');
  log(
    `load average at start ${machine.load_average_start.join(' ')}, at end ${machine.load_average_end.join(' ')} (${machine.cores} cores); ${machine.duration_seconds} s`,
  );
  if (failed.length > 0) log(`FAILED phases: ${failed.join(', ')}`);
  await writeResults(outFile, machine, results, failed, sections);
  log(`written: ${path.relative(process.cwd(), outFile)}`);
  return failed.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
