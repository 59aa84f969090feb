import { afterAll, describe, expect, it } from 'vitest';
import { type ServiceProcess, startServiceProcess } from '../helpers/service-process.js';
import { testEnvironment, useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  getExecution,
  startExecution,
  waitForExecution,
} from '../helpers/workflows.js';

const ctx = useTestApp({
  SWEEP_INTERVAL_MS: '200',
  SWEEP_STALE_AFTER_MS: '1000',
  SCHEDULE_INTERVAL_MS: '200',
});

async function executionsOf(workflowId: string) {
  const response = await ctx.app.inject({
    method: 'GET',
    url: `/executions?workflow_id=${workflowId}&limit=100`,
  });
  return response.json().items as Array<{
    id: string;
    status: string;
    input_data: { scheduled_at?: string };
    labels: Record<string, string>;
  }>;
}

describe('sub-workflows', () => {
  it('a parent completes with its child output', async () => {
    const child = await createWorkflow(ctx.app, {
      name: 'double',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'twice',
          name: 'twice',
          step_type: 'transform',
          config: { expression: 'input.x * 2' },
        },
      ],
    });
    const parent = await createWorkflow(ctx.app, {
      name: 'parent',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'call',
          name: 'call',
          step_type: 'subworkflow',
          config: { workflow_id: child, input: { x: '{% input.n %}' } },
        },
        {
          id: 'plus_one',
          name: 'plus one',
          step_type: 'transform',
          config: { expression: 'steps.call.output + 1' },
        },
      ],
    });
    const execution = await waitForExecution(
      ctx.app,
      await startExecution(ctx.app, parent, { n: 20 }),
    );
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(execution.output_data).toBe(41);
    const [childExecution] = await executionsOf(child);
    expect(childExecution?.status).toBe('completed');
  });

  it("a child's failure fails the step; cancelling the parent cancels the child", async () => {
    const failing = await createWorkflow(ctx.app, {
      name: 'failing child',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'check',
          name: 'check',
          step_type: 'validate',
          config: { schema: { type: 'string' }, data: 1 },
        },
      ],
    });
    const slow = await createWorkflow(ctx.app, {
      name: 'slow child',
      workflow_type: 'sequential',
      steps: [{ id: 'nap', name: 'nap', step_type: 'delay', config: { seconds: 60 } }],
    });
    const parentOf = (child: string) =>
      createWorkflow(ctx.app, {
        name: `parent of ${child}`,
        workflow_type: 'sequential',
        steps: [
          {
            id: 'call',
            name: 'call',
            step_type: 'subworkflow',
            retry_count: 0,
            config: { workflow_id: child },
          },
        ],
      });

    const failed = await waitForExecution(
      ctx.app,
      await startExecution(ctx.app, await parentOf(failing)),
    );
    expect(failed.status).toBe('failed');
    expect(failed.steps[0]?.error?.type).toBe('subworkflow_failed');

    const parentId = await startExecution(ctx.app, await parentOf(slow));
    await waitForExecution(
      ctx.app,
      parentId,
      (execution) => execution.steps[0]?.status === 'waiting',
    );
    const [running] = await executionsOf(slow);
    expect(running?.status).toMatch(/running|waiting/);
    const cancel = await ctx.app.inject({ method: 'POST', url: `/executions/${parentId}/cancel` });
    expect(cancel.statusCode).toBe(200);
    const child = await waitForExecution(ctx.app, running?.id as string);
    expect(child.status).toBe('cancelled');
    expect((await getExecution(ctx.app, parentId)).status).toBe('cancelled');
  });

  it('refuses a sub-workflow that does not exist, without retrying', async () => {
    const parent = await createWorkflow(ctx.app, {
      name: 'orphan parent',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'call',
          name: 'call',
          step_type: 'subworkflow',
          config: { workflow_id: 'wf_missing' },
        },
      ],
    });
    const execution = await waitForExecution(ctx.app, await startExecution(ctx.app, parent));
    expect(execution.status).toBe('failed');
    expect(execution.steps[0]).toMatchObject({
      attempts: 1,
      error: { type: 'subworkflow_unavailable' },
    });
  });
});

describe('cron schedules', () => {
  const others: ServiceProcess[] = [];
  afterAll(async () => {
    for (const other of others) await other.kill('SIGTERM');
  });

  it('fires once per tick with two service processes running, and stops when paused', async () => {
    // A second service process on the same database and Redis: both run the scheduler.
    others.push(
      await startServiceProcess(
        testEnvironment(ctx.database, ctx.prefix, {
          SERVICE_ROLE: 'worker',
          SCHEDULE_INTERVAL_MS: '200',
        }),
      ),
    );

    const workflowId = await createWorkflow(ctx.app, {
      name: 'every second',
      workflow_type: 'sequential',
      status: 'active',
      config: {
        trigger: {
          schedule: { cron: '* * * * * *', timezone: 'Europe/Berlin' },
          labels: { source: 'cron' },
        },
      },
      steps: [{ id: 'tick', name: 'tick', step_type: 'noop' }],
    });
    const deadline = Date.now() + 20_000;
    while ((await executionsOf(workflowId)).length < 4 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const paused = await ctx.app.inject({
      method: 'PUT',
      url: `/workflows/${workflowId}`,
      payload: { status: 'paused' },
    });
    expect(paused.statusCode).toBe(200);
    const fired = await executionsOf(workflowId);
    expect(fired.length).toBeGreaterThanOrEqual(4);
    const ticks = fired.map((execution) => execution.input_data.scheduled_at as string);
    expect(new Set(ticks).size).toBe(ticks.length);
    for (const tick of ticks) expect(new Date(tick).getMilliseconds()).toBe(0);
    for (const execution of fired) expect(execution.labels).toEqual({ source: 'cron' });

    // Paused: no further tick fires (two seconds' worth of ticks pass).
    await new Promise((resolve) => setTimeout(resolve, 2000));
    expect((await executionsOf(workflowId)).length).toBe(fired.length);
    // A process start (up to 30 s on a loaded machine) plus 20 s of ticks and 2 s paused.
  }, 90_000);
});
