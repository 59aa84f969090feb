import { afterAll, describe, expect, it } from 'vitest';
import { runPool } from '../../bench/lib/util.js';
import { type ServiceProcess, startServiceProcess } from '../helpers/service-process.js';
import { testEnvironment, useDatabaseClient, useTestApp } from '../helpers/test-app.js';
import { createWorkflow, waitUntil } from '../helpers/workflows.js';

/**
 * Execution priority (issue 14, "Priority"): starts queue with no worker running (this file's
 * app serves the API only), then one worker process with one slot takes them in priority
 * order, first in first out within a priority.
 */

const QUEUED = 1000;
const ctx = useTestApp({ SERVICE_ROLE: 'api' });
const database = useDatabaseClient(ctx);
let worker: ServiceProcess | undefined;

afterAll(async () => {
  await worker?.kill('SIGTERM');
});

async function execute(workflowId: string, body: Record<string, unknown>) {
  return ctx.app.inject({ method: 'POST', url: `/workflows/${workflowId}/execute`, payload: body });
}

describe('priority', () => {
  it(`starts a priority-1 execution before ${QUEUED} priority-5 ones queued before it`, async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'one step',
      workflow_type: 'sequential',
      steps: [{ id: 'only', name: 'Only', step_type: 'noop' }],
    });
    // One start at a time: the order of the answers is the order of the jobs.
    const ordinary: string[] = [];
    await runPool(QUEUED, 1, async () => {
      const response = await execute(workflowId, {});
      expect(response.statusCode, response.body).toBe(202);
      ordinary.push(response.json().id);
    });
    const urgent = await execute(workflowId, { priority: 1 });
    expect(urgent.statusCode, urgent.body).toBe(202);
    expect(urgent.json().priority).toBe(1);
    const last = await execute(workflowId, { priority: 10 });
    expect(last.statusCode, last.body).toBe(202);

    worker = await startServiceProcess(
      testEnvironment(ctx.database, ctx.prefix, {
        SERVICE_ROLE: 'worker',
        WORKER_CONCURRENCY: '1',
      }),
    );
    const count = async () =>
      (
        await database.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM workflow_executions WHERE status = 'completed'`,
        )
      ).rows[0]?.n ?? 0;
    await waitUntil(
      async () => (await count()) === QUEUED + 2,
      'every execution completed',
      120_000,
    );
    const { rows } = await database.db.query<{ execution_id: string }>(
      'SELECT execution_id FROM step_executions ORDER BY started_at, id',
    );
    const order = rows.map((row) => row.execution_id);
    expect(order[0]).toBe(urgent.json().id);
    expect(order.at(-1)).toBe(last.json().id);
    // First in, first out within priority 5.
    const fifth = order.filter((id) => ordinary.includes(id));
    expect(fifth).toEqual(ordinary);
  }, 180_000);

  it('refuses a priority outside 1..10, on execute and in a workflow config', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'prioritised',
      workflow_type: 'sequential',
      config: { priority: 2 },
      steps: [{ id: 'only', name: 'Only', step_type: 'noop' }],
    });
    for (const priority of [0, 11, 2.5, '1']) {
      const response = await execute(workflowId, { priority });
      expect(response.statusCode, response.body).toBe(400);
      expect(response.json().errors[0].path).toContain('priority');
    }
    const created = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      payload: {
        name: 'bad priority',
        workflow_type: 'sequential',
        config: { priority: 0 },
        steps: [{ id: 'only', name: 'Only', step_type: 'noop' }],
      },
    });
    expect(created.statusCode, created.body).toBe(400);
    expect(created.json().errors).toEqual([
      { path: 'config.priority', message: 'must be an integer from 1 to 10' },
    ]);
    // The workflow's own default applies when the start names none.
    const started = await execute(workflowId, {});
    expect(started.statusCode, started.body).toBe(202);
    expect(started.json().priority).toBe(2);
  });
});
