import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  getExecution,
  startExecution,
  stepStatuses,
  waitForExecution,
} from '../helpers/workflows.js';

const ctx = useTestApp({ SWEEP_INTERVAL_MS: '200', SWEEP_STALE_AFTER_MS: '1000' });

async function postEvent(body: Record<string, unknown>) {
  const response = await ctx.app.inject({ method: 'POST', url: '/events', payload: body });
  expect([200, 202], response.body).toContain(response.statusCode);
  return { status: response.statusCode, body: response.json() };
}

async function executionsOf(workflowId: string): Promise<string[]> {
  const response = await ctx.app.inject({
    method: 'GET',
    url: `/executions?workflow_id=${workflowId}&limit=100`,
  });
  return response.json().items.map((item: { id: string }) => item.id);
}

function eventWorkflow(name: string, trigger: Record<string, unknown>, status = 'active') {
  return {
    name,
    workflow_type: 'event_driven',
    status,
    config: { trigger },
    steps: [{ id: 'echo', name: 'echo', step_type: 'transform', config: { expression: 'input' } }],
  };
}

describe('events start event_driven workflows', () => {
  it('starts exactly the matching active workflows, once per event id', async () => {
    const plain = await createWorkflow(ctx.app, eventWorkflow('plain', { event: 'order.paid' }));
    const big = await createWorkflow(
      ctx.app,
      eventWorkflow('big orders', { event: 'order.paid', filter: 'event.data.amount > 100' }),
    );
    const draft = await createWorkflow(
      ctx.app,
      eventWorkflow('draft', { event: 'order.paid' }, 'draft'),
    );
    const other = await createWorkflow(
      ctx.app,
      eventWorkflow('other type', { event: 'order.shipped' }),
    );

    const small = await postEvent({ type: 'order.paid', data: { amount: 50 }, id: 'evt-small' });
    expect(small.status).toBe(202);
    expect(small.body.started_executions).toHaveLength(1);
    const large = await postEvent({ type: 'order.paid', data: { amount: 150 }, id: 'evt-large' });
    expect(large.body.started_executions).toHaveLength(2);

    const again = await postEvent({ type: 'order.paid', data: { amount: 150 }, id: 'evt-large' });
    expect(again.status).toBe(200);
    expect(again.body.started_executions).toEqual(large.body.started_executions);

    expect(await executionsOf(plain)).toHaveLength(2);
    expect(await executionsOf(big)).toHaveLength(1);
    expect(await executionsOf(draft)).toHaveLength(0);
    expect(await executionsOf(other)).toHaveLength(0);

    const [started] = await executionsOf(big);
    const execution = await waitForExecution(ctx.app, started as string);
    expect(execution.status).toBe('completed');
    expect(execution.output_data).toEqual({ amount: 150 });

    const listed = await ctx.app.inject({ method: 'GET', url: '/events?type=order.paid&limit=1' });
    expect(listed.statusCode).toBe(200);
    expect(listed.json().items).toHaveLength(1);
    expect(listed.json().next_cursor).toEqual(expect.any(String));
    const next = await ctx.app.inject({
      method: 'GET',
      url: `/events?type=order.paid&limit=1&cursor=${listed.json().next_cursor}`,
    });
    expect(next.json().items[0].id).not.toBe(listed.json().items[0].id);
  });
});

describe('wait_for_event', () => {
  const waiting = (correlation: string, extra: Record<string, unknown> = {}) => ({
    name: `wait ${correlation}`,
    workflow_type: 'sequential',
    steps: [
      {
        id: 'await_payment',
        name: 'await payment',
        step_type: 'wait_for_event',
        config: { event: 'payment', correlation_key: '{% $string(input.order) %}', ...extra },
        timeout_seconds: 60,
      },
      {
        id: 'after',
        name: 'after',
        step_type: 'transform',
        config: { expression: 'steps.await_payment.output.data' },
      },
    ],
  });

  it('resumes only the step whose correlation key and match fit', async () => {
    const workflowId = await createWorkflow(
      ctx.app,
      waiting('corr', { match: 'event.data.ok = true' }),
    );
    const one = await startExecution(ctx.app, workflowId, { order: 1 });
    const two = await startExecution(ctx.app, workflowId, { order: 2 });
    for (const id of [one, two]) {
      await waitForExecution(ctx.app, id, (execution) => execution.steps[0]?.status === 'waiting');
    }

    const mismatch = await postEvent({
      type: 'payment',
      correlation_key: '2',
      data: { ok: false },
    });
    expect(mismatch.body.resumed_steps).toEqual([]);
    const match = await postEvent({ type: 'payment', correlation_key: '2', data: { ok: true } });
    expect(match.body.resumed_steps).toEqual([{ execution_id: two, step_id: 'await_payment' }]);

    const resumed = await waitForExecution(ctx.app, two);
    expect(resumed.status).toBe('completed');
    expect(resumed.output_data).toEqual({ ok: true });
    expect((await getExecution(ctx.app, one)).steps[0]?.status).toBe('waiting');
    await ctx.app.inject({ method: 'POST', url: `/executions/${one}/cancel` });
  });

  it('takes an event that arrived just before the step started waiting', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'late waiter',
      workflow_type: 'sequential',
      steps: [
        { id: 'first', name: 'first', step_type: 'delay', config: { seconds: 1 } },
        {
          id: 'await_payment',
          name: 'await',
          step_type: 'wait_for_event',
          config: { event: 'payment.early', correlation_key: '{% $string(input.order) %}' },
        },
      ],
    });
    const id = await startExecution(ctx.app, workflowId, { order: 7 });
    // Posted while the first step sleeps: nothing waits for it yet.
    const early = await postEvent({
      type: 'payment.early',
      correlation_key: '7',
      data: { paid: 1 },
    });
    expect(early.body.resumed_steps).toEqual([]);
    const execution = await waitForExecution(ctx.app, id);
    expect(execution.status).toBe('completed');
    expect(stepStatuses(execution)).toEqual({ first: 'completed', await_payment: 'completed' });
  });

  it('times out when no event comes', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'never paid',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'await_payment',
          name: 'await',
          step_type: 'wait_for_event',
          config: { event: 'never' },
          timeout_seconds: 1,
          retry_count: 0,
        },
      ],
    });
    const execution = await waitForExecution(ctx.app, await startExecution(ctx.app, workflowId));
    expect(execution.status).toBe('failed');
    expect(execution.steps[0]?.error?.type).toBe('timeout');
  });
});

describe('cron schedules', () => {
  it('rejects an invalid schedule at creation', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      payload: {
        name: 'bad cron',
        workflow_type: 'sequential',
        config: { trigger: { schedule: { cron: 'every day', timezone: 'Mars/Olympus' } } },
      },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().errors[0].path).toBe('config.trigger.schedule');
  });
});
