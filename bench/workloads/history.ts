import pg from 'pg';
import { workflowWindowAggregate } from '../../src/store/stats-store.js';
import { compareInterleaved, type LoadResult } from '../lib/autocannon.js';
import { bulkLoad, countersFromRows } from '../lib/bulk-load.js';
import type { BenchContext } from '../lib/context.js';
import { serviceEnvironment, startInProcessService } from '../lib/service.js';
import { createWorkflow, sequentialWorkflow } from './engine.js';

/**
 * GET /executions and GET /workflows/{id}/stats with a long history against the same calls
 * with a near-empty one, on the same server (SERVICE_ROLE=api, listening on 127.0.0.1).
 *
 * The "empty" database holds one full page of executions (100), so both lists return the same
 * number of items and the ratio shows what the history costs, not what serialising a page
 * costs. Then the history is filled to `executions` rows (each with the step runs of
 * its HISTORY_STEPS steps)
 * by SQL (generate_series), vacuumed and analysed as autovacuum would leave it, and measured
 * again. One client at a time (autocannon -c 1): the figure is the mean latency of one call.
 */
export interface HistoryFigures {
  executions: number;
  stepRuns: number;
  insertSeconds: number;
  listEmpty: LoadResult;
  listFull: LoadResult;
  labelEmpty: LoadResult;
  labelFull: LoadResult;
  statsEmpty: LoadResult;
  statsFull: LoadResult;
  /** Mean time of the uncached stats window query (STATS_WINDOW newest executions). */
  windowQueryMs: { full: number; nearEmpty: number };
}

const NEAR_EMPTY = 100;
/** The service's default STATS_WINDOW, and how often its query is timed on each side. */
const STATS_WINDOW = 1000;
const WINDOW_QUERIES = 50;
/** Steps of the history's workflow: 200,000 executions make 600,000 step runs. */
const HISTORY_STEPS = 3;

/** Inserts executions numbered [from, to] of the workflow, oldest first, 10 s apart. */
export async function insertHistory(
  db: pg.Client,
  workflowId: string,
  from: number,
  to: number,
  total: number,
): Promise<void> {
  await bulkLoad(db, async () => {
    await db.query(
      `INSERT INTO workflow_executions
       (id, workflow_id, workflow_version, status, input_data, output_data, step_results,
        started_at, completed_at, duration_seconds, created_at, updated_at, trigger, labels)
     SELECT 'ex_hist' || lpad(g::text, 9, '0'), $1, 1, e.status,
            jsonb_build_object('order', g, 'customer', 'c' || (g % 1000)),
            CASE WHEN e.status = 'completed' THEN jsonb_build_object('ok', true, 'order', g) END,
            jsonb_build_object('s1', jsonb_build_object('order', g)),
            e.t, e.t + e.d, round(extract(epoch FROM e.d)::numeric, 2), e.t, e.t + e.d,
            '{"type": "api"}',
            jsonb_build_object('order', g::text, 'customer', 'c' || (g % 1000))
       FROM generate_series($2::int, $3::int) AS g,
            LATERAL (SELECT now() - ($4::int - g) * interval '10 seconds' AS t,
                            (0.05 + (g % 97) / 100.0) * interval '1 second' AS d,
                            CASE WHEN g % 50 = 0 THEN 'failed' WHEN g % 211 = 0 THEN 'cancelled'
                                 ELSE 'completed' END AS status) AS e`,
      [workflowId, from, to, total],
    );
    await db.query(
      `INSERT INTO step_executions
       (execution_id, step_id, iteration, item_index, status, attempt, output, queued_at,
        started_at, completed_at, created_at, updated_at)
     SELECT e.id, 's' || k, 0, -1,
            CASE WHEN e.status = 'completed' OR k = 1 THEN 'completed'
                 WHEN k = 2 THEN e.status ELSE 'cancelled' END,
            CASE WHEN e.status = 'completed' OR k > 2 THEN 1 ELSE 4 END,
            jsonb_build_object('order', (e.input_data->>'order')::int),
            e.started_at + (k - 1) * (e.completed_at - e.started_at) / $3::int,
            e.started_at + (k - 1) * (e.completed_at - e.started_at) / $3::int,
            e.started_at + k * (e.completed_at - e.started_at) / $3::int,
            e.created_at, e.completed_at
       FROM workflow_executions e, generate_series(1, $3::int) AS k
      WHERE e.id BETWEEN 'ex_hist' || lpad($1::text, 9, '0') AND 'ex_hist' || lpad($2::text, 9, '0')`,
      [from, to, HISTORY_STEPS],
    );
    await countersFromRows(db, workflowId);
  });
}

export async function measureHistory(
  context: BenchContext,
  options: { executions: number; seconds: number; rounds: number; warmupSeconds: number },
  log: (message: string) => void,
): Promise<HistoryFigures> {
  const open = async (name: string) => {
    const database = await context.database(name);
    const service = await startInProcessService(
      serviceEnvironment(database, context.redisUrl, context.prefix(name), { SERVICE_ROLE: 'api' }),
      { listen: true },
    );
    const db = new pg.Client({ connectionString: database.url });
    await db.connect();
    const workflowId = await createWorkflow(
      service.app,
      sequentialWorkflow('bench history', HISTORY_STEPS),
    );
    return { service, db, workflowId };
  };
  const small = await open('history_small');
  const full = await open('history');
  try {
    await insertHistory(small.db, small.workflowId, 1, NEAR_EMPTY, NEAR_EMPTY);
    const started = performance.now();
    await insertHistory(full.db, full.workflowId, 1, options.executions, options.executions);
    const insertSeconds = (performance.now() - started) / 1000;
    log(`  ${options.executions} executions inserted in ${insertSeconds.toFixed(1)} s`);
    const plan = {
      seconds: options.seconds,
      rounds: options.rounds,
      warmupSeconds: options.warmupSeconds,
    };
    const list = (s: typeof small) => ({ url: `${s.service.url}/executions`, connections: 1 });
    const stats = (s: typeof small) => ({
      url: `${s.service.url}/workflows/${s.workflowId}/stats`,
      connections: 1,
    });
    const lists = await compareInterleaved(list(full), list(small), plan);
    // A customer's executions: 200 of 200,000 on the full side, 1 of 100 on the other.
    const byLabel = (s: typeof small) => ({
      url: `${s.service.url}/executions?label.customer=c42`,
      connections: 1,
    });
    const labelled = await compareInterleaved(byLabel(full), byLabel(small), plan);
    const statses = await compareInterleaved(stats(full), stats(small), plan);
    log(
      `  list: ${lists.figure.latencyMeanMs.toFixed(2)} ms (${NEAR_EMPTY} executions: ${lists.baseline.latencyMeanMs.toFixed(2)} ms); stats: ${statses.figure.latencyMeanMs.toFixed(2)} ms (${statses.baseline.latencyMeanMs.toFixed(2)} ms)`,
    );
    // The window part of the stats is cached a few seconds (STATS_CACHE_SECONDS): what
    // computing it costs, on both sides, is measured on its own.
    const windowMs = async (side: typeof small) => {
      const started = performance.now();
      for (let i = 0; i < WINDOW_QUERIES; i += 1) {
        await workflowWindowAggregate(side.db, side.workflowId, STATS_WINDOW);
      }
      return (performance.now() - started) / WINDOW_QUERIES;
    };
    await windowMs(full);
    const windowQueryMs = { full: await windowMs(full), nearEmpty: await windowMs(small) };
    log(
      `  stats window query (uncached): ${windowQueryMs.full.toFixed(2)} ms (${NEAR_EMPTY} executions: ${windowQueryMs.nearEmpty.toFixed(2)} ms)`,
    );
    const { rows } = await full.db.query<{ executions: number; runs: number }>(
      `SELECT (SELECT count(*) FROM workflow_executions)::int AS executions,
              (SELECT count(*) FROM step_executions)::int AS runs`,
    );
    return {
      executions: rows[0]?.executions ?? 0,
      stepRuns: rows[0]?.runs ?? 0,
      insertSeconds,
      listEmpty: lists.baseline,
      listFull: lists.figure,
      labelEmpty: labelled.baseline,
      labelFull: labelled.figure,
      statsEmpty: statses.baseline,
      statsFull: statses.figure,
      windowQueryMs,
    };
  } finally {
    for (const side of [small, full]) {
      await side.db.end();
      await side.service.close();
    }
  }
}
