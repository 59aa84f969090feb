import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { count, timedBatch } from '../lib/batches.js';
import type { BenchContext } from '../lib/context.js';
import {
  callService,
  createWorkflowOver,
  executeOver,
  type ServiceProcess,
  startServiceProcess,
} from '../lib/service-process.js';
import { percentile, runPool, sleep, waitUntil } from '../lib/util.js';

/**
 * Flow control (README "Flow control"), in one service process of its own (SERVICE_ROLE=all,
 * default WORKER_CONCURRENCY) whose http steps call a loopback peer that answers after
 * PEER_DELAY_MS, so a step holds its worker a while as real calls do:
 *
 * 1. limited throughput: EXECUTIONS executions of a 2-step workflow, against the same with
 *    `config.concurrency {limit: 2, key}` over 10 keys (20 may run: the limit is not the
 *    bottleneck at 20 worker slots); executions/s of each, created -> last completed.
 * 2. fairness: key A floods FLOOD executions, then key B starts LATE, one every 50 ms; B's
 *    median created -> first step started, against the same measured alone (idle). Then A and
 *    B each flood BOTH executions, B right after A: Jain's index of completions per key over
 *    the time both have work.
 * 3. diagnosis cost: WAITING executions queued behind one that holds the only slot of its
 *    key; GET /executions/{id}/diagnosis of random queued ones, against GET /executions/{id}
 *    of the same.
 */

export interface FlowPlan {
  executions: number;
  flood: number;
  late: number;
  both: number;
  waiting: number;
  diagnosisCalls: number;
}

export interface FlowFigures {
  unlimitedPerSecond: number;
  limitedPerSecond: number;
  lateIdleMedianMs: number;
  lateLoadedMedianMs: number;
  jain: number;
  bothCompletions: { a: number; b: number };
  diagnosisP50Ms: number;
  diagnosisP99Ms: number;
  viewP50Ms: number;
  viewP99Ms: number;
}

const PEER_DELAY_MS = 10;
const KEYS = 10;

function startPeer(): Promise<{ server: Server; url: string }> {
  const server = createServer((_request, response) => {
    setTimeout(() => response.writeHead(200).end('{"ok":true}'), PEER_DELAY_MS);
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/call` }),
    ),
  );
}

function workflow(name: string, url: string, config: Record<string, unknown>, steps = 2) {
  return {
    name,
    workflow_type: 'sequential',
    status: 'active',
    config,
    steps: Array.from({ length: steps }, (_, index) => ({
      id: `s${index}`,
      name: `s${index}`,
      step_type: 'http',
      config: { url },
    })),
  };
}

/** Median created -> first step started of the given executions, in ms. */
async function startLatencies(db: pg.Client, ids: readonly string[]): Promise<number> {
  const { rows } = await db.query<{ ms: number }>(
    `SELECT EXTRACT(EPOCH FROM (min(s.started_at) - e.created_at)) * 1000 AS ms
       FROM workflow_executions e JOIN step_executions s ON s.execution_id = e.id
      WHERE e.id = ANY($1::text[]) GROUP BY e.id`,
    [[...ids]],
  );
  return percentile(
    rows.map((row) => Number(row.ms)),
    50,
  );
}

async function lateStarts(service: ServiceProcess, workflowId: string, late: number) {
  const ids: string[] = [];
  for (let index = 0; index < late; index += 1) {
    ids.push(await executeOver(service.base, workflowId, { k: 'b' }));
    await sleep(50);
  }
  return ids;
}

/** Jain's index of completions per key while both keys have work. */
async function jainWhileBoth(db: pg.Client, workflowId: string) {
  const { rows } = await db.query<{ a: number; b: number }>(
    `WITH spans AS (
       SELECT concurrency_key AS k, min(created_at) AS first_start, max(completed_at) AS last_end
         FROM workflow_executions WHERE workflow_id = $1 GROUP BY 1
     ), span AS (
       SELECT max(first_start) AS from_at, min(last_end) AS to_at FROM spans
     )
     SELECT count(*) FILTER (WHERE e.concurrency_key = 'a')::int AS a,
            count(*) FILTER (WHERE e.concurrency_key = 'b')::int AS b
       FROM workflow_executions e, span w
      WHERE e.workflow_id = $1 AND e.completed_at BETWEEN w.from_at AND w.to_at`,
    [workflowId],
  );
  const { a, b } = rows[0] ?? { a: 0, b: 0 };
  const jain = (a + b) ** 2 / (2 * (a * a + b * b));
  return { jain: Number.isFinite(jain) ? jain : 0, a, b };
}

async function measureDiagnosis(
  service: ServiceProcess,
  db: pg.Client,
  url: string,
  plan: FlowPlan,
) {
  const held = await createWorkflowOver(service.base, {
    ...workflow('one at a time', url, { concurrency: { limit: 1 } }, 1),
    steps: [{ id: 'nap', name: 'nap', step_type: 'delay', config: { seconds: 3600 } }],
  });
  const ids: string[] = [];
  await runPool(plan.waiting, 20, async () => {
    ids.push(await executeOver(service.base, held, {}));
  });
  const keyed = `SELECT count(*)::int AS n FROM workflow_executions
                  WHERE workflow_id = $1 AND concurrency_key IS NOT NULL`;
  await waitUntil(
    'every start keyed',
    async () => (await count(db, keyed, [held])) === plan.waiting,
    600_000,
    200,
  );
  const diagnosis: number[] = [];
  const view: number[] = [];
  for (let call = 0; call < plan.diagnosisCalls; call += 1) {
    const id = ids[Math.floor(Math.random() * ids.length)] as string;
    let began = performance.now();
    await callService(service.base, 'GET', `/executions/${id}/diagnosis`, 200);
    diagnosis.push(performance.now() - began);
    began = performance.now();
    await callService(service.base, 'GET', `/executions/${id}`, 200);
    view.push(performance.now() - began);
  }
  return { diagnosis, view };
}

export async function measureFlowControl(
  context: BenchContext,
  plan: FlowPlan,
  log: (message: string) => void,
): Promise<FlowFigures> {
  const peer = await startPeer();
  const service = await startServiceProcess(context, 'flow', {
    HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1',
  });
  const db = new pg.Client({ connectionString: service.databaseUrl });
  await db.connect();
  try {
    const unlimited = await createWorkflowOver(service.base, workflow('unlimited', peer.url, {}));
    const limited = await createWorkflowOver(
      service.base,
      workflow('limited', peer.url, { concurrency: { limit: 2, key: 'input.k' } }),
    );
    const keyed = (index: number) => ({ k: `k${index % KEYS}` });
    const unlimitedSeconds = await timedBatch(service, db, unlimited, plan.executions, keyed);
    const limitedSeconds = await timedBatch(service, db, limited, plan.executions, keyed);
    log(`  limited ${limitedSeconds.toFixed(1)} s, unlimited ${unlimitedSeconds.toFixed(1)} s`);

    const fair = await createWorkflowOver(
      service.base,
      workflow('fair', peer.url, { fairness_key: 'input.k' }, 1),
    );
    const idleIds = await lateStarts(service, fair, plan.late);
    await sleep(1000);
    await runPool(plan.flood, 50, async () => {
      await executeOver(service.base, fair, { k: 'a' });
    });
    const loadedIds = await lateStarts(service, fair, plan.late);
    const allDone = `SELECT count(*)::int AS n FROM workflow_executions WHERE workflow_id = $1 AND status = 'completed'`;
    const fairTotal = plan.flood + 2 * plan.late;
    await waitUntil(
      'the flood completed',
      async () => (await count(db, allDone, [fair])) === fairTotal,
      600_000,
      200,
    );
    const lateIdle = await startLatencies(db, idleIds);
    const lateLoaded = await startLatencies(db, loadedIds);
    log(
      `  late key: start ${lateLoaded.toFixed(0)} ms behind ${plan.flood} (alone ${lateIdle.toFixed(0)} ms)`,
    );

    const both = await createWorkflowOver(
      service.base,
      workflow('both', peer.url, { fairness_key: 'input.k' }, 1),
    );
    for (const key of ['a', 'b']) {
      await runPool(plan.both, 50, async () => {
        await executeOver(service.base, both, { k: key });
      });
    }
    await waitUntil(
      'both floods completed',
      async () => (await count(db, allDone, [both])) === 2 * plan.both,
      600_000,
      200,
    );
    const jain = await jainWhileBoth(db, both);
    log(
      `  Jain's index ${jain.jain.toFixed(3)} (completions while both had work: a ${jain.a}, b ${jain.b})`,
    );

    const calls = await measureDiagnosis(service, db, peer.url, plan);
    return {
      unlimitedPerSecond: plan.executions / unlimitedSeconds,
      limitedPerSecond: plan.executions / limitedSeconds,
      lateIdleMedianMs: lateIdle,
      lateLoadedMedianMs: lateLoaded,
      jain: jain.jain,
      bothCompletions: { a: jain.a, b: jain.b },
      diagnosisP50Ms: percentile(calls.diagnosis, 50),
      diagnosisP99Ms: percentile(calls.diagnosis, 99),
      viewP50Ms: percentile(calls.view, 50),
      viewP99Ms: percentile(calls.view, 99),
    };
  } finally {
    await db.end();
    await service.stop();
    peer.server.closeAllConnections();
    peer.server.close();
  }
}
