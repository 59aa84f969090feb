import pg from 'pg';
import { FINISHED_EXECUTION_STATUSES, isIn } from '../../src/domain/statuses.js';
import type { BenchContext } from '../lib/context.js';
import {
  createWorkflowOver,
  executeOver,
  MIB,
  type ServiceProcess,
  startServiceProcess,
  vmRssBytes,
} from '../lib/service-process.js';
import { every, sleep } from '../lib/util.js';
import {
  executionSpanSeconds,
  executionsDriver,
  measureThroughput,
  type ThroughputResult,
} from './chains.js';
import { CHAIN_LENGTH, median, sequentialWorkflow } from './engine.js';
import {
  type CallFigures,
  itemsCompleted,
  measureViews,
  type PolledView,
  type ProbeLatencies,
  probeLatencies,
  timedGet,
  type ViewFigures,
} from './foreach-observe.js';

/**
 * A `for_each` fan-out against the sequential chain, in one service process of its own
 * (bench/lib/service-process.ts, SERVICE_ROLE=all, defaults but MAX_FOR_EACH_ITEMS), over HTTP:
 *
 * 1. the chain's steps/s: executions of a 10-step noop chain, 20 starts in flight (as the
 *    engine phase), timed by the database;
 * 2. probes before: a 3-step noop chain started every `probeIntervalMs`, each one's
 *    created -> completed time;
 * 3. full-GC'd RSS, then one execution of a single noop step with `for_each: '[0..N-1]'`
 *    (a JSONata range: evaluated in process, so no sandbox output limit applies) and
 *    `for_each_concurrency`, polled with GET /executions/{id} every second until it completes
 *    (deadline: `timeoutMs`, or the run's budget if sooner). Meanwhile VmRSS every second (no
 *    GC), a probe every `probeIntervalMs`, and once (when half the items are done) the
 *    execution view and a page of 100 step runs, each alternated with the same call on a
 *    3-step execution;
 * 4. the probes started during the fan-out are waited for (at most PROBE_SETTLE_MS), then RSS
 *    again after a full GC.
 *
 * Before the fan-out, the items are sized to the budget: when N items at the target rate (0.8x
 * the chain's steps/s) would not end by `deadline`, N shrinks to what fits, or the fan-out is
 * skipped below MIN_ITEMS; both are said in the log and the figures.
 */
export interface ForeachPlan {
  items: number;
  concurrency: number;
  chainWarmupExecutions: number;
  chainExecutions: number;
  baselineProbes: number;
  probeIntervalMs: number;
  timeoutMs: number;
  /** performance.now() ms by which the phase must be over (+Infinity: no budget). */
  deadline: number;
}

export interface ForeachFigures {
  requestedItems: number;
  items: number;
  /** Why fewer items than requested (the time budget), or null. */
  reduced: string | null;
  concurrency: number;
  probeIntervalMs: number;
  chain: ThroughputResult;
  fanoutSeconds: number;
  fanoutStepsPerSecond: number;
  rss: {
    beforeMiB: number;
    peakMiB: number;
    afterMiB: number;
    heapBeforeMiB: number;
    heapAfterMiB: number;
    samples: number;
  };
  probesBefore: ProbeLatencies;
  probesDuring: ProbeLatencies;
  view: ViewFigures;
  polls: { count: number; medianMs: number; maxMs: number; maxBytes: number };
}

export type ForeachResult = ForeachFigures | { skipped: string; chain?: ThroughputResult };

/** The target: the fan-out at >= 0.8x the chain's steps/s. */
export const FOREACH_TARGET_RATIO = 0.8;
/** Fewer items than this say nothing about how a fan-out scales: skip instead. */
const MIN_ITEMS = 1_000;
/** Service start, chain baseline, probes before and GCs: what the phase costs besides the
 * fan-out, at the least, on a loaded machine. */
const FIXED_MS = 45_000;
/** After the fan-out: probes still running, the last GC. */
const PROBE_SETTLE_MS = 60_000;
const AFTER_FANOUT_MS = 15_000;
const POLL_MS = 1_000;
/** jsonata's cap on a range `[a..b]`. */
const MAX_RANGE = 10_000_000;

/** What the fan-out needs to run: its workflow, the service, a completed small execution. */
interface FanoutSetup {
  service: ServiceProcess;
  workflowId: string;
  probeWorkflowId: string;
  smallExecutionId: string;
  items: number;
  deadline: number;
  chainStepsPerSecond: number;
  probeIntervalMs: number;
}

interface FanoutRun {
  executionId: string;
  rssSamples: number[];
  probeIds: string[];
  view: ViewFigures;
  polls: CallFigures[];
}

/** Polls the fan-out until it completes; measures the views once half its items are done. */
async function pollFanout(
  setup: FanoutSetup,
  executionId: string,
  aborted: () => unknown,
): Promise<{ view: ViewFigures; polls: CallFigures[] }> {
  const { base } = setup.service;
  const polls: CallFigures[] = [];
  const started = performance.now();
  let view: ViewFigures | undefined;
  const limit = Math.ceil((setup.deadline - started) / POLL_MS) + 1;
  for (let poll = 0; poll < limit; poll += 1) {
    const failure = aborted();
    if (failure) throw failure;
    const pollStarted = performance.now();
    const answer = await timedGet(base, `/executions/${executionId}`);
    polls.push({ ms: answer.ms, bytes: answer.bytes });
    const polled = JSON.parse(answer.text) as PolledView;
    const done = itemsCompleted(polled);
    if (polled.status === 'completed') {
      view ??= await measureViews(base, executionId, setup.smallExecutionId, done, false);
      return { view, polls };
    }
    if (isIn(FINISHED_EXECUTION_STATUSES, polled.status)) {
      throw new Error(`the fan-out execution ended ${polled.status}: ${polled.error ?? ''}`);
    }
    if (view === undefined && done * 2 >= setup.items) {
      view = await measureViews(base, executionId, setup.smallExecutionId, done, true);
    }
    if (performance.now() > setup.deadline) {
      const seconds = (performance.now() - started) / 1000;
      throw new Error(
        `the fan-out of ${setup.items} items did not complete within ${seconds.toFixed(0)} s (the deadline: 15 min or the run's budget): ${done} items completed, ${(done / seconds).toFixed(1)} items/s against the chain's ${setup.chainStepsPerSecond.toFixed(0)} steps/s. A smaller FOREACH_ITEMS, or BENCH_BUDGET_SECONDS=0, gives it more time`,
      );
    }
    await sleep(Math.max(0, POLL_MS - (performance.now() - pollStarted)));
  }
  throw new Error(`the fan-out was still running after ${limit} polls`);
}

/** The fan-out, with RSS sampled and probes started alongside until it completes. */
async function runFanout(setup: FanoutSetup): Promise<FanoutRun> {
  const { service } = setup;
  const executionId = await executeOver(service.base, setup.workflowId);
  const ticks = Math.ceil((setup.deadline - performance.now()) / 1000) + 1;
  let finished = false;
  let failure: unknown;
  const stop = () => finished || failure !== undefined;
  const noteFailure = (error: unknown) => {
    failure ??= error;
    throw error;
  };
  const rssSamples: number[] = [];
  const probeIds: string[] = [];
  const sampler = every(1000, ticks, stop, async () => {
    rssSamples.push(await vmRssBytes(service.pid));
  }).catch(noteFailure);
  const probes = Math.ceil((ticks * 1000) / setup.probeIntervalMs);
  const prober = every(setup.probeIntervalMs, probes, stop, async () => {
    probeIds.push(await executeOver(service.base, setup.probeWorkflowId));
  }).catch(noteFailure);
  const poller = pollFanout(setup, executionId, () => failure).finally(() => {
    finished = true;
  });
  const [{ view, polls }] = await Promise.all([poller, sampler, prober]);
  return { executionId, rssSamples, probeIds, view, polls };
}

/** How many items fit the budget at the target rate (null: none worth running), and why. */
function sizeFanout(
  plan: ForeachPlan,
  chainStepsPerSecond: number,
): { items: number | null; reduced: string | null; deadline: number } {
  const now = performance.now();
  const deadline = Math.min(now + plan.timeoutMs, plan.deadline - AFTER_FANOUT_MS);
  const fitRate = FOREACH_TARGET_RATIO * chainStepsPerSecond;
  const neededMs = (plan.items / fitRate) * 1000;
  if (now + neededMs <= deadline) return { items: plan.items, reduced: null, deadline };
  // 10% margin: the rate is a target, not a promise.
  const fits = Math.floor((((deadline - now) / 1000) * fitRate * 0.9) / 100) * 100;
  const why = `the time left (${((deadline - now) / 1000).toFixed(0)} s) fits ${Math.max(fits, 0)} items at ${FOREACH_TARGET_RATIO}x the chain's ${chainStepsPerSecond.toFixed(0)} steps/s`;
  if (fits < MIN_ITEMS) return { items: null, reduced: why, deadline };
  return { items: Math.min(fits, plan.items), reduced: why, deadline };
}

async function measureChain(
  service: ServiceProcess,
  pool: pg.Pool,
  plan: ForeachPlan,
): Promise<ThroughputResult> {
  const chainId = await createWorkflowOver(
    service.base,
    sequentialWorkflow('bench foreach chain', CHAIN_LENGTH),
  );
  const driver = executionsDriver(pool, () => executeOver(service.base, chainId));
  const common = { stepsPerExecution: CHAIN_LENGTH, startConcurrency: 20, timeoutMs: 240_000 };
  await measureThroughput(driver, { ...common, count: plan.chainWarmupExecutions });
  return measureThroughput(driver, { ...common, count: plan.chainExecutions });
}

/** Probes one at a time, `probeIntervalMs` apart, before the fan-out. */
async function probesBefore(
  service: ServiceProcess,
  pool: pg.Pool,
  probeWorkflowId: string,
  plan: ForeachPlan,
): Promise<{ ids: string[]; latencies: ProbeLatencies }> {
  const ids: string[] = [];
  await every(
    plan.probeIntervalMs,
    plan.baselineProbes,
    () => false,
    async () => {
      ids.push(await executeOver(service.base, probeWorkflowId));
    },
  );
  return { ids, latencies: await probeLatencies(pool, ids, PROBE_SETTLE_MS) };
}

function summariseFigures(
  plan: ForeachPlan,
  setup: FanoutSetup,
  chain: ThroughputResult,
  reduced: string | null,
  measured: {
    run: FanoutRun;
    seconds: number;
    before: { rss: number; heapUsed: number };
    after: { rss: number; heapUsed: number };
    probesBefore: ProbeLatencies;
    probesDuring: ProbeLatencies;
  },
): ForeachFigures {
  const { run, before, after } = measured;
  const pollMs = run.polls.map((poll) => poll.ms);
  return {
    requestedItems: plan.items,
    items: setup.items,
    reduced,
    concurrency: plan.concurrency,
    probeIntervalMs: plan.probeIntervalMs,
    chain,
    fanoutSeconds: measured.seconds,
    fanoutStepsPerSecond: setup.items / measured.seconds,
    rss: {
      beforeMiB: before.rss / MIB,
      peakMiB: Math.max(before.rss, ...run.rssSamples) / MIB,
      afterMiB: after.rss / MIB,
      heapBeforeMiB: before.heapUsed / MIB,
      heapAfterMiB: after.heapUsed / MIB,
      samples: run.rssSamples.length,
    },
    probesBefore: measured.probesBefore,
    probesDuring: measured.probesDuring,
    view: run.view,
    polls: {
      count: run.polls.length,
      medianMs: median(pollMs),
      maxMs: Math.max(...pollMs),
      maxBytes: Math.max(...run.polls.map((poll) => poll.bytes)),
    },
  };
}

export async function measureForeach(
  context: BenchContext,
  plan: ForeachPlan,
  log: (message: string) => void,
): Promise<ForeachResult> {
  if (!Number.isInteger(plan.items) || plan.items < 1 || plan.items > MAX_RANGE) {
    throw new Error(
      `FOREACH_ITEMS must be a whole number from 1 to ${MAX_RANGE} (a JSONata range)`,
    );
  }
  const left = plan.deadline - performance.now();
  if (left < FIXED_MS + AFTER_FANOUT_MS) {
    const skipped = `skipped: ${Math.max(0, left / 1000).toFixed(0)} s of the time budget left for this phase, it needs more than ${(FIXED_MS + AFTER_FANOUT_MS) / 1000} s besides the fan-out`;
    log(`  ${skipped}`);
    return { skipped };
  }
  const service = await startServiceProcess(context, 'foreach', {
    MAX_FOR_EACH_ITEMS: String(Math.max(plan.items, 100_000)),
  });
  const pool = new pg.Pool({ connectionString: service.databaseUrl, max: 2 });
  try {
    const chain = await measureChain(service, pool, plan);
    log(
      `  chain: ${chain.stepsPerSecond.toFixed(0)} steps/s (${chain.executions} executions of ${CHAIN_LENGTH})`,
    );
    const probeWorkflowId = await createWorkflowOver(
      service.base,
      sequentialWorkflow('bench foreach probe', 3),
    );
    const before = await probesBefore(service, pool, probeWorkflowId, plan);
    const sized = sizeFanout(plan, chain.stepsPerSecond);
    if (sized.items === null) {
      const skipped = `fan-out skipped: ${sized.reduced}, fewer than ${MIN_ITEMS}`;
      log(`  ${skipped}`);
      return { skipped, chain };
    }
    if (sized.reduced) log(`  fan-out reduced to ${sized.items} items: ${sized.reduced}`);
    const setup: FanoutSetup = {
      service,
      workflowId: await createWorkflowOver(service.base, fanoutWorkflow(sized.items, plan)),
      probeWorkflowId,
      smallExecutionId: before.ids[0] as string,
      items: sized.items,
      deadline: sized.deadline,
      chainStepsPerSecond: chain.stepsPerSecond,
      probeIntervalMs: plan.probeIntervalMs,
    };
    const rssBefore = await service.measure();
    const run = await runFanout(setup);
    const seconds = await executionSpanSeconds(pool, [run.executionId]);
    // Probes the fan-out held up may still run: wait for them, within what the budget leaves.
    const settleMs = Math.min(
      PROBE_SETTLE_MS,
      Math.max(5_000, plan.deadline - performance.now() - 5_000),
    );
    const during = await probeLatencies(pool, run.probeIds, settleMs);
    const rssAfter = await service.measure();
    const figures = summariseFigures(plan, setup, chain, sized.reduced, {
      run,
      seconds,
      before: rssBefore,
      after: rssAfter,
      probesBefore: before.latencies,
      probesDuring: during,
    });
    log(
      `  fan-out: ${figures.items} items in ${seconds.toFixed(1)} s, ${figures.fanoutStepsPerSecond.toFixed(0)} steps/s (${(figures.fanoutStepsPerSecond / chain.stepsPerSecond).toFixed(2)}x the chain); RSS ${figures.rss.beforeMiB.toFixed(0)} -> peak ${figures.rss.peakMiB.toFixed(0)} -> ${figures.rss.afterMiB.toFixed(0)} MiB; probe median ${during.medianMs.toFixed(0)} ms (before ${before.latencies.medianMs.toFixed(0)} ms), max ${during.maxMs.toFixed(0)} ms`,
    );
    return figures;
  } finally {
    await pool.end();
    await service.stop();
  }
}

/** One noop step over `[0..items-1]`, `plan.concurrency` items in flight. */
function fanoutWorkflow(items: number, plan: ForeachPlan): Record<string, unknown> {
  return {
    name: `bench for_each ${items}`,
    workflow_type: 'sequential',
    steps: [
      {
        id: 'each',
        name: 'Each',
        step_type: 'noop',
        for_each: `[0..${items - 1}]`,
        for_each_concurrency: plan.concurrency,
      },
    ],
  };
}
