import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runPool } from '../../bench/lib/util.js';
import { CountingServer } from '../helpers/counting-server.js';
import { type ServiceProcess, startServiceProcess } from '../helpers/service-process.js';
import { testEnvironment, useDatabaseClient, useTestApp } from '../helpers/test-app.js';
import { createWorkflow, maxOverlap, waitUntil } from '../helpers/workflows.js';

/**
 * Execution concurrency across processes (issue 14, "Proof"): one API process and three
 * worker processes share `config.concurrency {limit: 3, key}` over four keys. Two audits: the
 * peer the steps call counts the calls in flight per key as it sees them, and the recorded
 * step times give each execution's span; neither may ever show more than 3 of a key.
 */

const EXECUTIONS = 200;
const KEYS = ['north', 'south', 'east', 'west'];
const LIMIT = 3;
const ctx = useTestApp({ SERVICE_ROLE: 'api', HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1' });
const database = useDatabaseClient(ctx);
const peer = new CountingServer();
const inFlight = new Map<string, number>();
const mostInFlight = new Map<string, number>();
const workers: ServiceProcess[] = [];
let baseUrl: string;

beforeAll(async () => {
  // Each call holds its key's count for a moment, so overlapping executions would show.
  peer.route('/work', (request, response) => {
    const key = new URL(request.url ?? '/', 'http://peer').searchParams.get('key') ?? '?';
    const now = (inFlight.get(key) ?? 0) + 1;
    inFlight.set(key, now);
    mostInFlight.set(key, Math.max(mostInFlight.get(key) ?? 0, now));
    setTimeout(() => {
      inFlight.set(key, (inFlight.get(key) ?? 1) - 1);
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    }, 20);
  });
  baseUrl = await peer.listen();
  for (let index = 0; index < 3; index += 1) {
    workers.push(await startServiceProcess(workerEnvironment()));
  }
});

afterAll(async () => {
  await Promise.all(workers.map((worker) => worker.kill('SIGTERM')));
  await peer.close();
});

function workerEnvironment() {
  return testEnvironment(ctx.database, ctx.prefix, {
    SERVICE_ROLE: 'worker',
    WORKER_CONCURRENCY: '8',
    HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1',
    // A killed worker's job goes to another within seconds.
    JOB_LOCK_MS: '2000',
  });
}

describe('execution concurrency across processes', () => {
  it(`keeps at most ${LIMIT} executions per key running: ${EXECUTIONS} executions, 4 keys, 3 workers`, async () => {
    const call = { url: `{% '${baseUrl}/work?key=' & input.account %}` };
    const workflowId = await createWorkflow(ctx.app, {
      name: 'per-account limit',
      workflow_type: 'sequential',
      config: { concurrency: { limit: LIMIT, key: 'input.account' } },
      steps: [
        { id: 'reserve', name: 'Reserve', step_type: 'http', config: call },
        { id: 'charge', name: 'Charge', step_type: 'http', config: call },
      ],
    });
    await runPool(EXECUTIONS, 16, async (index) => {
      const response = await ctx.app.inject({
        method: 'POST',
        url: `/workflows/${workflowId}/execute`,
        payload: { input_data: { account: KEYS[index % KEYS.length] } },
      });
      expect(response.statusCode, response.body).toBe(202);
    });
    const ended = async () =>
      (
        await database.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM workflow_executions WHERE status = 'completed'`,
        )
      ).rows[0]?.n ?? 0;
    await waitUntil(
      async () => (await ended()) === EXECUTIONS,
      'every execution completed',
      180_000,
    );

    for (const key of KEYS) expect(mostInFlight.get(key)).toBeLessThanOrEqual(LIMIT);
    const { rows } = await database.db.query<{
      key: string;
      started_at: string;
      completed_at: string;
    }>(
      // Microseconds as text: Date would round them to milliseconds, making neighbours touch.
      `SELECT e.concurrency_key AS key,
              to_char(min(s.started_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS started_at,
              to_char(max(s.completed_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS completed_at
         FROM workflow_executions e JOIN step_executions s ON s.execution_id = e.id
        GROUP BY e.id, e.concurrency_key`,
    );
    expect(rows).toHaveLength(EXECUTIONS);
    for (const key of KEYS) {
      const spans = rows.filter((row) => row.key === key);
      expect(spans).toHaveLength(EXECUTIONS / KEYS.length);
      const most = maxOverlap(spans);
      expect(most, `executions of ${key} running at once`).toBeLessThanOrEqual(LIMIT);
      // The limit was reached, so it was what held the others back.
      expect(most).toBeGreaterThanOrEqual(2);
    }
  }, 240_000);

  it('keeps a named limit of 2 shared by two workflows, with a worker killed mid-run', async () => {
    const response = await ctx.app.inject({
      method: 'PUT',
      url: '/limits/shared-peer',
      payload: { max_concurrent: 2 },
    });
    expect([200, 201], response.body).toContain(response.statusCode);
    const limited = (name: string) =>
      createWorkflow(ctx.app, {
        name,
        workflow_type: 'sequential',
        steps: [
          {
            id: 'call',
            name: 'Call',
            step_type: 'http',
            config: { url: `${baseUrl}/work?key=shared` },
            limits: [{ name: 'shared-peer' }],
          },
        ],
      });
    const workflows = [await limited('first sharer'), await limited('second sharer')];
    const ids: string[] = [];
    await runPool(60, 8, async (index) => {
      const started = await ctx.app.inject({
        method: 'POST',
        url: `/workflows/${workflows[index % 2]}/execute`,
        payload: {},
      });
      expect(started.statusCode, started.body).toBe(202);
      ids.push(started.json().id);
    });
    // Kill a worker while calls are in flight: a run it held keeps its slot until re-run.
    await waitUntil(async () => (inFlight.get('shared') ?? 0) > 0, 'a call in flight', 30_000);
    const victim = workers.shift() as ServiceProcess;
    await victim.kill('SIGKILL');
    workers.push(await startServiceProcess(workerEnvironment()));
    const completed = async () =>
      (
        await database.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM workflow_executions
            WHERE id = ANY($1::text[]) AND status = 'completed'`,
          [ids],
        )
      ).rows[0]?.n ?? 0;
    await waitUntil(
      async () => (await completed()) === ids.length,
      'every execution completed',
      180_000,
    );
    expect(mostInFlight.get('shared')).toBeLessThanOrEqual(2);
    const { rows } = await database.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM step_executions WHERE limit_keys IS NOT NULL AND status = 'running'`,
    );
    expect(rows[0]?.n).toBe(0);
  }, 240_000);
});
