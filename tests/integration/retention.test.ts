import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { RetentionReport } from '../../src/engine/retention-sweep.js';
import { purgeFinishedExecutions } from '../../src/store/execution-purge.js';
import { testEnvironment, useDatabaseClient, useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  startExecution,
  waitForExecution,
  waitUntil,
} from '../helpers/workflows.js';

/**
 * Retention (issue 15, "Retention"; README "Operations"): what a pass purges and what it never
 * touches, that totals survive it, and that one process at a time runs it. Passes run on
 * demand (`engine.retention.runOnce()`); the schedule is stopped so that none runs on its own.
 * Old executions are made by moving their timestamps back with SQL.
 */

const ctx = useTestApp({
  STATS_CACHE_SECONDS: '0',
  RETENTION_DAYS: '30',
  RETENTION_INTERVAL_SECONDS: '86400',
});
const holder = useDatabaseClient(ctx);

/** Other processes on the same database (not started: no workers, no schedules). */
const others: FastifyInstance[] = [];
async function otherApp(overrides: Record<string, string>): Promise<FastifyInstance> {
  const app = await buildApp(loadConfig(testEnvironment(ctx.database, ctx.prefix, overrides)));
  await app.ready();
  others.push(app);
  return app;
}

beforeAll(async () => {
  await ctx.app.engine?.retention.stop();
});
afterAll(async () => {
  for (const app of others) await app.close();
});

function retentionOf(app: FastifyInstance) {
  const retention = app.engine?.retention;
  if (!retention) throw new Error('no engine in this app');
  return retention;
}

async function pass(app: FastifyInstance = ctx.app): Promise<RetentionReport> {
  const report = await retentionOf(app).runOnce();
  expect(report.leader).toBe(true);
  return report;
}

/** Moves executions (and what they were) `days` days into the past. */
async function backdate(ids: readonly string[], days: number): Promise<void> {
  await holder.db.query(
    `UPDATE workflow_executions
        SET created_at = created_at - make_interval(days => $2),
            started_at = started_at - make_interval(days => $2),
            completed_at = completed_at - make_interval(days => $2)
      WHERE id = ANY($1::text[])`,
    [ids, days],
  );
}

async function existing(ids: readonly string[]): Promise<string[]> {
  const { rows } = await holder.db.query<{ id: string }>(
    'SELECT id FROM workflow_executions WHERE id = ANY($1::text[]) ORDER BY id',
    [ids],
  );
  return rows.map((row) => row.id);
}

async function stepRunsOf(ids: readonly string[]): Promise<number> {
  const { rows } = await holder.db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM step_executions WHERE execution_id = ANY($1::text[])',
    [ids],
  );
  return rows[0]?.n ?? 0;
}

async function get(url: string, app: FastifyInstance = ctx.app) {
  const response = await app.inject({ method: 'GET', url });
  expect(response.statusCode, response.body).toBe(200);
  return response.json();
}

/** Everything the counters of a workflow and of the service say about ended executions. */
async function totals(workflowId: string) {
  const workflow = await get(`/workflows/${workflowId}`);
  const stats = await get(`/workflows/${workflowId}/stats`);
  const system = await get('/stats');
  return {
    workflow: {
      execution_count: workflow.execution_count,
      success_count: workflow.success_count,
      failure_count: workflow.failure_count,
      average_duration_seconds: workflow.average_duration_seconds,
    },
    stats: {
      execution_count: stats.execution_count,
      finished_count: stats.finished_count,
      success_count: stats.success_count,
      failure_count: stats.failure_count,
      cancelled_count: stats.cancelled_count,
      executions_by_status: stats.executions_by_status,
      average_duration_seconds: stats.average_duration_seconds,
    },
    system: { total: system.executions.total, by_status: system.executions.by_status },
  };
}

/** Runs `count` executions to their end; `input` decides whether one fails. */
async function runToEnd(workflowId: string, inputs: Array<Record<string, unknown>>) {
  const ids = [];
  for (const input of inputs) ids.push(await startExecution(ctx.app, workflowId, input));
  for (const id of ids) await waitForExecution(ctx.app, id);
  return ids;
}

const numberCheck = (extra: Record<string, unknown> = {}) => ({
  name: 'numbers',
  workflow_type: 'sequential',
  ...extra,
  steps: [
    { id: 'a', name: 'A', step_type: 'noop' },
    {
      id: 'check',
      name: 'Check',
      step_type: 'transform',
      config: { expression: '$number(input.n)' },
      retry_count: 0,
    },
  ],
});

const waitsForEvent = (name: string) => ({
  name,
  workflow_type: 'sequential',
  steps: [
    {
      id: 'wait',
      name: 'Wait',
      step_type: 'wait_for_event',
      config: { event: 'never.sent' },
      timeout_seconds: 86_400,
    },
  ],
});

describe('config.retention_days', () => {
  it('refuses a bad value with a 400 that creates nothing', async () => {
    const count = async () =>
      (await holder.db.query('SELECT 1 FROM workflows WHERE name = $1', ['bad retention']))
        .rowCount;
    for (const value of [-1, 1.5, '7', 36_501, null]) {
      const response = await ctx.app.inject({
        method: 'POST',
        url: '/workflows',
        payload: numberCheck({ name: 'bad retention', config: { retention_days: value } }),
      });
      expect(response.statusCode, response.body).toBe(400);
      expect(response.json().errors).toContainEqual(
        expect.objectContaining({ path: 'config.retention_days' }),
      );
    }
    expect(await count()).toBe(0);
    const id = await createWorkflow(ctx.app, numberCheck({ config: { retention_days: 7 } }));
    const update = await ctx.app.inject({
      method: 'PUT',
      url: `/workflows/${id}`,
      payload: { config: { retention_days: -3 } },
    });
    expect(update.statusCode, update.body).toBe(400);
    expect((await get(`/workflows/${id}`)).config).toEqual({ retention_days: 7 });
  });
});

describe('a retention pass', () => {
  it('purges old finished executions with their step runs and task tokens, keeping every total', async () => {
    await pass(); // whatever earlier tests left old
    const workflowId = await createWorkflow(ctx.app, numberCheck());
    const ended = await runToEnd(workflowId, [{ n: '1' }, { n: '2' }, { n: 'x' }]);
    const external = await createWorkflow(ctx.app, {
      name: 'external',
      workflow_type: 'sequential',
      steps: [{ id: 'sign', name: 'Sign', step_type: 'sign' }],
    });
    const signed = await startExecution(ctx.app, external);
    const polled = await ctx.app.inject({
      method: 'POST',
      url: '/tasks/poll',
      payload: { step_types: ['sign'], worker_id: 'w1', wait_seconds: 10 },
    });
    const token = polled.json().tasks[0].task_token as string;
    const done = await ctx.app.inject({
      method: 'POST',
      url: `/tasks/${token}/complete`,
      payload: { output: { ok: true } },
    });
    expect(done.statusCode, done.body).toBe(200);
    expect((await waitForExecution(ctx.app, signed)).status).toBe('completed');
    const recent = await runToEnd(workflowId, [{ n: '3' }]);

    const old = [...ended, signed];
    await backdate(old, 31);
    const runs = await stepRunsOf(old);
    const before = [await totals(workflowId), await totals(external)];

    const report = await pass();
    expect(report).toMatchObject({ executions: 4, step_runs: runs, events: 0, skipped: 0 });
    expect(await existing([...old, ...recent])).toEqual(recent);
    expect(await stepRunsOf(old)).toBe(0);
    const tokens = await holder.db.query('SELECT 1 FROM task_tokens WHERE token = $1', [token]);
    expect(tokens.rowCount).toBe(0);
    expect([await totals(workflowId), await totals(external)]).toEqual(before);

    const retention = (await get('/stats')).retention;
    expect(retention).toMatchObject({
      days: 30,
      interval_seconds: 86_400,
      last_purge: { executions: 4, step_runs: runs, events: 0 },
    });
    expect(Date.parse(retention.last_purge.ended_at)).toBeGreaterThanOrEqual(
      Date.parse(retention.last_purge.started_at),
    );
    const missing = await ctx.app.inject({ method: 'GET', url: `/executions/${ended[0]}` });
    expect(missing.statusCode).toBe(404);
  });

  it('never purges an unfinished execution, however old', async () => {
    const workflowId = await createWorkflow(ctx.app, waitsForEvent('waits'));
    const waiting = await startExecution(ctx.app, workflowId);
    const paused = await startExecution(ctx.app, workflowId);
    for (const id of [waiting, paused]) {
      await waitForExecution(ctx.app, id, (execution) => execution.steps[0]?.status === 'waiting');
    }
    const pause = await ctx.app.inject({ method: 'POST', url: `/executions/${paused}/pause` });
    expect(pause.statusCode, pause.body).toBe(200);
    await backdate([waiting, paused], 400);
    const runs = await stepRunsOf([waiting, paused]);

    await pass();
    expect(await existing([waiting, paused])).toEqual([waiting, paused].sort());
    expect(await stepRunsOf([waiting, paused])).toBe(runs);
    expect((await get(`/executions/${paused}`)).status).toBe('paused');
  });

  it('keeps a finished parent while its sub-workflow child runs, and purges both after', async () => {
    const child = await createWorkflow(ctx.app, waitsForEvent('child'));
    const parentWorkflow = await createWorkflow(ctx.app, {
      name: 'parent',
      workflow_type: 'sequential',
      steps: [
        { id: 'call', name: 'Call', step_type: 'subworkflow', config: { workflow_id: child } },
      ],
    });
    const parent = await startExecution(ctx.app, parentWorkflow);
    let childId = '';
    await waitUntil(async () => {
      const { rows } = await holder.db.query<{ id: string }>(
        `SELECT id FROM workflow_executions WHERE parent_execution_id = $1`,
        [parent],
      );
      childId = rows[0]?.id ?? '';
      return childId !== '';
    }, 'the child started');
    await waitForExecution(
      ctx.app,
      childId,
      (execution) => execution.steps[0]?.status === 'waiting',
    );
    // A parent that ended while its child still runs, as a crash between the two would leave
    // it: the sweep, which cancels such children, waits until the pass has looked.
    const sweep = ctx.app.engine?.sweep;
    await sweep?.stop();
    try {
      await holder.db.query(
        `UPDATE workflow_executions SET status = 'completed', completed_at = now() WHERE id = $1`,
        [parent],
      );
      await backdate([parent, childId], 60);
      const report = await pass();
      expect(report.skipped).toBe(1);
      expect(await existing([parent, childId])).toEqual([parent, childId].sort());
    } finally {
      sweep?.start();
    }
    await waitForExecution(ctx.app, childId);
    await holder.db.query(
      `UPDATE workflow_executions SET completed_at = completed_at - interval '60 days' WHERE id = $1`,
      [childId],
    );
    const report = await pass();
    expect(report.executions).toBe(2);
    expect(await existing([parent, childId])).toEqual([]);
  });

  it("follows a workflow's own retention_days, longer, shorter or 0 (keep)", async () => {
    const make = (days?: number) =>
      createWorkflow(
        ctx.app,
        numberCheck(days === undefined ? {} : { config: { retention_days: days } }),
      );
    const [longer, kept, shorter, global] = await Promise.all([
      make(365),
      make(0),
      make(1),
      make(),
    ]);
    const [a, b, c, d] = await Promise.all(
      [longer, kept, shorter, global].map((id) => runToEnd(id, [{ n: '1' }])),
    );
    const ids = [a, b, c, d].map((list) => list?.[0] as string);
    await backdate(ids.slice(0, 2), 100);
    await backdate(ids.slice(2), 2);
    await pass();
    // 100 days < 365; 0 keeps forever; 2 days > 1; 2 days < RETENTION_DAYS (30).
    expect(await existing(ids)).toEqual([ids[0], ids[1], ids[3]].sort());
  });

  it('with RETENTION_DAYS=0 purges nothing but what a workflow lets go itself', async () => {
    const keepAll = await otherApp({ RETENTION_DAYS: '0' });
    const plain = await createWorkflow(ctx.app, numberCheck());
    const own = await createWorkflow(ctx.app, numberCheck({ config: { retention_days: 10 } }));
    const [kept] = await runToEnd(plain, [{ n: '1' }]);
    const [purged] = await runToEnd(own, [{ n: '1' }]);
    await backdate([kept as string, purged as string], 400);
    await holder.db.query(
      `INSERT INTO events (id, type, received_at) VALUES ('ev-ancient', 'old', now() - interval '400 days')`,
    );
    const report = await pass(keepAll);
    expect(report.events).toBe(0);
    expect(await existing([kept as string, purged as string])).toEqual([kept]);
    expect((await get('/stats', keepAll)).retention.days).toBe(0);
    // The service's own setting (30 days) lets the rest go.
    await pass();
    expect(await existing([kept as string])).toEqual([]);
  });

  it('purges events received before RETENTION_DAYS', async () => {
    for (const id of ['ev-old', 'ev-new']) {
      const response = await ctx.app.inject({
        method: 'POST',
        url: '/events',
        payload: { id, type: 'retention.test', data: {} },
      });
      expect(response.statusCode, response.body).toBe(202);
    }
    await holder.db.query(
      `UPDATE events SET received_at = received_at - interval '31 days' WHERE id = 'ev-old'`,
    );
    const report = await pass();
    expect(report.events).toBe(1);
    const { rows } = await holder.db.query<{ id: string }>(
      `SELECT id FROM events WHERE id LIKE 'ev-%' ORDER BY id`,
    );
    expect(rows.map((row) => row.id)).toEqual(['ev-new']);
    expect((await get('/stats')).retention.last_purge.events).toBe(1);
  });
});

describe('purging what bulk actions leave', () => {
  it('deletes operations that ended before RETENTION_DAYS, with their items', async () => {
    const dry = await ctx.app.inject({
      method: 'POST',
      url: '/executions/bulk',
      payload: { action: 'cancel', filter: { status: 'running', workflow_id: 'none' } },
    });
    expect(dry.statusCode, dry.body).toBe(202);
    const id = dry.json().id as string;
    const deadline = Date.now() + 20_000;
    while ((await get(`/operations/${id}`)).status === 'running' && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect((await get(`/operations/${id}`)).status).toBe('completed');
    await holder.db.query(
      `UPDATE bulk_operations SET ended_at = ended_at - interval '31 days' WHERE id = $1`,
      [id],
    );
    expect((await pass()).operations).toBe(1);
    const gone = await ctx.app.inject({ method: 'GET', url: `/operations/${id}` });
    expect(gone.statusCode).toBe(404);
  });
});

describe('purging beside the engine', () => {
  it('leaves executions that run during a pass untouched, and every total as it was', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'busy',
      workflow_type: 'sequential',
      steps: Array.from({ length: 5 }, (_, index) => ({
        id: `s${index}`,
        name: `S${index}`,
        step_type: 'noop',
      })),
    });
    const old = await runToEnd(
      workflowId,
      Array.from({ length: 20 }, () => ({})),
    );
    await backdate(old, 40);
    const running = [];
    for (let i = 0; i < 30; i += 1) running.push(await startExecution(ctx.app, workflowId));
    const [report] = await Promise.all([
      pass(),
      (async () => {
        for (let i = 0; i < 30; i += 1) running.push(await startExecution(ctx.app, workflowId));
      })(),
    ]);
    expect(report.executions).toBe(20);
    for (const id of running) {
      const execution = await waitForExecution(ctx.app, id);
      expect(execution.status).toBe('completed');
      expect(execution.steps.map((step) => step.status)).toEqual(Array(5).fill('completed'));
    }
    expect(await existing([...old, ...running])).toEqual([...running].sort());
    const stats = await totals(workflowId);
    expect(stats.workflow).toMatchObject({ execution_count: 80, success_count: 80 });
    expect(stats.stats).toMatchObject({ execution_count: 80, finished_count: 80 });
  });

  it('deletes inside the caller transaction, with row locks it holds, passing over others', async () => {
    const workflowId = await createWorkflow(ctx.app, numberCheck());
    const ids = await runToEnd(workflowId, [{ n: '1' }, { n: '2' }, { n: '3' }]);
    const [mine, theirs, alsoMine] = ids as [string, string, string];
    const waiting = await startExecution(
      ctx.app,
      await createWorkflow(ctx.app, waitsForEvent('w')),
    );
    const { rows } = await holder.db.query<{ id: number }>(
      `SELECT id FROM step_executions WHERE execution_id = $1 AND item_index = -1 LIMIT 1`,
      [mine],
    );
    const runId = rows[0]?.id as number;
    const other = await ctx.app.pg.connect();
    const client = await ctx.app.pg.connect();
    try {
      await other.query('BEGIN');
      await other.query('SELECT 1 FROM workflow_executions WHERE id = $1 FOR UPDATE', [theirs]);
      await client.query('BEGIN');
      await client.query('SELECT 1 FROM workflow_executions WHERE id = ANY($1) FOR UPDATE', [
        [mine, alsoMine],
      ]);
      // Rows without a foreign key that belong to the purged executions.
      await client.query(
        `INSERT INTO for_each_item_deltas (parent_id, active, waiting, done, failed) VALUES ($1, 0, 0, 1, 0)`,
        [runId],
      );
      await client.query(
        `INSERT INTO execution_event_outbox (execution_id, status) VALUES ($1, 'completed')`,
        [mine],
      );
      const result = await purgeFinishedExecutions(client, [mine, theirs, alsoMine, waiting]);
      expect(result.deleted).toEqual([mine, alsoMine].sort());
      expect(result.executions).toBe(2);
      expect(result.step_runs).toBe(4);
      const left = await client.query(
        `SELECT (SELECT count(*) FROM for_each_item_deltas WHERE parent_id = $1)::int AS deltas,
                (SELECT count(*) FROM execution_event_outbox WHERE execution_id = $2)::int AS outbox`,
        [runId, mine],
      );
      expect(left.rows[0]).toEqual({ deltas: 0, outbox: 0 });
      await client.query('COMMIT');
    } finally {
      await client.query('ROLLBACK').catch(() => {});
      await other.query('ROLLBACK');
      client.release();
      other.release();
    }
    expect(await existing([...ids, waiting])).toEqual([theirs, waiting].sort());
  });

  it('runs one pass at a time: a second process skips while the first purges', async () => {
    const SEEDED = 10_000;
    const second = await otherApp({ RETENTION_DAYS: '30' });
    const workflowId = await createWorkflow(ctx.app, numberCheck());
    // Enough for many batches; inserted without triggers (no outbox rows to relay).
    await holder.db.query('SET session_replication_role = replica');
    await holder.db.query(
      `INSERT INTO workflow_executions
         (id, workflow_id, workflow_version, status, created_at, started_at, completed_at)
       SELECT 'ex_seeded_' || g, $1, 1, 'completed', now() - interval '50 days',
              now() - interval '50 days', now() - interval '50 days'
         FROM generate_series(1, $2::int) AS g`,
      [workflowId, SEEDED],
    );
    await holder.db.query('SET session_replication_role = DEFAULT');
    const first = retentionOf(ctx.app).runOnce();
    await waitUntil(async () => {
      const { rows } = await holder.db.query(
        `SELECT 1 FROM maintenance_runs WHERE ended_at IS NULL AND executions > 0`,
      );
      return rows.length > 0;
    }, 'the first pass purged a batch');
    const skipped = await retentionOf(second).runOnce();
    const done = await first;
    expect(skipped).toMatchObject({ leader: false, executions: 0 });
    expect(done).toMatchObject({ leader: true, executions: SEEDED });
    const { rows } = await holder.db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM workflow_executions WHERE workflow_id = $1`,
      [workflowId],
    );
    expect(rows[0]?.n).toBe(0);
  });
});
