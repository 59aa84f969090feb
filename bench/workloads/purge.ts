import pg from 'pg';
import type { RetentionReport } from '../../src/engine/retention-sweep.js';
import { bulkLoad, countersFromRows } from '../lib/bulk-load.js';
import type { BenchContext } from '../lib/context.js';
import { roundAll, type Workload, workload } from '../lib/report.js';
import { serviceEnvironment, startInProcessService } from '../lib/service.js';
import { engineDriver, measureThroughput, type ThroughputResult } from './chains.js';
import { CHAIN_LENGTH, createWorkflow, sequentialWorkflow } from './engine.js';
import { measurePartitioning, type PartitionFigures } from './purge-partitions.js';

/**
 * Retention (README "Operations", "Retention") while the engine runs, the service in this
 * process (SERVICE_ROLE=all, default settings):
 *
 * 1. `stepRuns` step runs of old finished executions (10 per execution, ended 40 days ago,
 *    with their workflow's counters as the engine leaves them) inserted by SQL
 *    (generate_series), vacuumed and analysed;
 * 2. the engine's steps/s on executions of a 10-step noop chain (20 starts in flight, timed by
 *    the database), in rounds of `roundExecutions`: `baselineRounds` before the purge, rounds
 *    for as long as one retention pass (`app.engine.retention.runOnce()`, its own defaults)
 *    purges them, and `baselineRounds` after it. A round that ends after the purge counts
 *    for neither side. Ratio: steps/s during the purge over steps/s without it (before and
 *    after, pooled), target >= 0.8;
 * 3. how long the pass took and its rate (step runs/s), and that it kept the workflow's
 *    counters;
 * 4. the alternative, briefly (bench/workloads/purge-partitions.ts): a partition dropped
 *    instead, and what the partition key costs a lookup by id.
 */

export interface PurgePlan {
  stepRuns: number;
  warmupExecutions: number;
  roundExecutions: number;
  baselineRounds: number;
}

export interface PurgeFigures {
  stepRuns: number;
  insertSeconds: number;
  report: RetentionReport;
  baseline: ThroughputResult[];
  during: ThroughputResult[];
  countersKept: boolean;
  partitions: PartitionFigures;
}

const RUNS_PER_EXECUTION = 10;
const OLD_WORKFLOW = 'wf_bench_purge_old';

/** The old workflow, its executions and runs, and its counters as the engine leaves them. */
async function seedOldExecutions(db: pg.Client, executions: number): Promise<void> {
  await db.query(
    `INSERT INTO workflows (id, name, workflow_type, status, version)
     VALUES ($1, 'bench purge (old)', 'sequential', 'active', 1)`,
    [OLD_WORKFLOW],
  );
  await db.query(
    `INSERT INTO workflow_versions (workflow_id, version, definition)
     VALUES ($1, 1, '{"workflow_type": "sequential", "config": {}, "steps": []}')`,
    [OLD_WORKFLOW],
  );
  await bulkLoad(db, async () => {
    await db.query(
      `INSERT INTO workflow_executions
       (id, workflow_id, workflow_version, status, input_data, output_data, step_results,
        started_at, completed_at, duration_seconds, created_at, updated_at, trigger)
     SELECT 'ex_old' || lpad(g::text, 9, '0'), $1, 1,
            CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'completed' END,
            jsonb_build_object('n', g), '{"ok": true}', '{}', t, t + interval '1 second', 1,
            t, t + interval '1 second', '{"type": "api"}'
       FROM generate_series(1, $2::int) AS g,
            LATERAL (SELECT now() - interval '40 days' + g * interval '1 second' AS t) AS e`,
      [OLD_WORKFLOW, executions],
    );
    await db.query(
      `INSERT INTO step_executions
       (execution_id, step_id, iteration, item_index, status, attempt, output, queued_at,
        started_at, completed_at, created_at, updated_at)
     SELECT e.id, 's' || k, 0, -1, 'completed', 1, '{"ok": true}', e.started_at, e.started_at,
            e.completed_at, e.created_at, e.completed_at
       FROM workflow_executions e, generate_series(1, $2::int) AS k
      WHERE e.workflow_id = $1`,
      [OLD_WORKFLOW, RUNS_PER_EXECUTION],
    );
    await countersFromRows(db, OLD_WORKFLOW);
  });
}

async function counters(db: pg.Client): Promise<string> {
  const { rows } = await db.query(
    'SELECT execution_count, success_count, failure_count FROM workflows WHERE id = $1',
    [OLD_WORKFLOW],
  );
  return JSON.stringify(rows[0]);
}

/** Steps per second over several rounds: all their steps over all their seconds. */
export function pooledStepsPerSecond(rounds: readonly ThroughputResult[]): number {
  const steps = rounds.reduce((sum, round) => sum + round.steps, 0);
  const seconds = rounds.reduce((sum, round) => sum + round.seconds, 0);
  return steps / seconds;
}

export async function measurePurge(
  context: BenchContext,
  plan: PurgePlan,
  log: (message: string) => void,
): Promise<PurgeFigures> {
  const database = await context.database('purge');
  const service = await startInProcessService(
    serviceEnvironment(database, context.redisUrl, context.prefix('purge')),
  );
  const db = new pg.Client({ connectionString: database.url });
  await db.connect();
  try {
    const { app } = service;
    const retention = app.engine?.retention;
    if (!retention) throw new Error('the service runs no engine');
    // Only the pass this workload runs: none on the service's own schedule.
    await retention.stop();
    const executions = Math.ceil(plan.stepRuns / RUNS_PER_EXECUTION);
    const insertStarted = performance.now();
    await seedOldExecutions(db, executions);
    const insertSeconds = (performance.now() - insertStarted) / 1000;
    log(
      `  ${executions * RUNS_PER_EXECUTION} old step runs inserted in ${insertSeconds.toFixed(1)} s`,
    );
    const countersBefore = await counters(db);

    const chainId = await createWorkflow(app, sequentialWorkflow('bench chain', CHAIN_LENGTH));
    const driver = engineDriver(app, chainId);
    const round = () =>
      measureThroughput(driver, {
        count: plan.roundExecutions,
        stepsPerExecution: CHAIN_LENGTH,
        startConcurrency: 20,
        timeoutMs: 240_000,
      });
    await measureThroughput(driver, {
      count: plan.warmupExecutions,
      stepsPerExecution: CHAIN_LENGTH,
      startConcurrency: 20,
      timeoutMs: 240_000,
    });
    const baseline: ThroughputResult[] = [];
    for (let i = 0; i < plan.baselineRounds; i += 1) baseline.push(await round());

    let purging = true;
    const pass = retention.runOnce().finally(() => {
      purging = false;
    });
    const during: ThroughputResult[] = [];
    while (purging) {
      const result = await round();
      if (purging) during.push(result);
    }
    const report = await pass;
    log(
      `  purge: ${report.step_runs} step runs of ${report.executions} executions in ${report.seconds.toFixed(1)} s (${(report.step_runs / report.seconds).toFixed(0)} runs/s, ${report.batches} batches)`,
    );
    for (let i = 0; i < plan.baselineRounds; i += 1) baseline.push(await round());
    log(
      `  engine: ${pooledStepsPerSecond(during).toFixed(0)} steps/s during the purge (${during.length} rounds), ${pooledStepsPerSecond(baseline).toFixed(0)} without (${baseline.length} rounds)`,
    );
    const countersKept = (await counters(db)) === countersBefore;
    const partitions = await measurePartitioning(db, plan.stepRuns, log);
    return {
      stepRuns: executions * RUNS_PER_EXECUTION,
      insertSeconds,
      report,
      baseline,
      during,
      countersKept,
      partitions,
    };
  } finally {
    await db.end();
    await service.close();
  }
}

/** The phase's rows: the engine during the purge, the purge itself, the partitioned lookup. */
export function purgeWorkloads(figures: PurgeFigures): Workload[] {
  const { report, partitions } = figures;
  const rate = report.step_runs / report.seconds;
  return [
    workload(
      'purge_engine_throughput',
      pooledStepsPerSecond(figures.during),
      'steps/s',
      'the engine without a purge (before and after)',
      pooledStepsPerSecond(figures.baseline),
      '>= 0.8',
      {
        note: `10-step chains while one pass purged ${report.step_runs} step runs; ${figures.during.length} rounds during, ${figures.baseline.length} without`,
        during: figures.during.map((round) => roundAll(round)),
        without: figures.baseline.map((round) => roundAll(round)),
      },
    ),
    workload(
      'purge_seconds',
      report.seconds,
      's',
      'dropping a partition of as many step runs',
      partitions.dropMs / 1000,
      null,
      {
        note: `${report.step_runs} step runs of ${report.executions} executions at ${rate.toFixed(0)} runs/s in ${report.batches} batches, engine running; counters ${figures.countersKept ? 'kept' : 'CHANGED'}`,
        ...roundAll(report),
        step_runs_per_second: Math.round(rate),
        counters_kept: figures.countersKept,
        insert_seconds: Math.round(figures.insertSeconds * 10) / 10,
      },
    ),
    workload(
      'partition_lookup_by_id',
      partitions.lookupByIdMs * 1000,
      'µs',
      'the same lookup by id and day (one partition)',
      partitions.lookupByIdAndDayMs * 1000,
      null,
      {
        note: `step runs partitioned by day (${partitions.partitions} partitions): a run found by id alone probes every partition; a primary key without the day: "${partitions.primaryKeyRefusal}"`,
        ...roundAll(partitions),
      },
    ),
  ];
}
