import { describe, expect, it } from 'vitest';
import type { Diagnosis } from '../../src/schemas/diagnosis.js';
import { useTestApp } from '../helpers/test-app.js';
import { createWorkflow, getExecution, waitForExecution } from '../helpers/workflows.js';

/**
 * Execution concurrency per key (issue 14, "Flow control"): `config.concurrency` with its
 * three `on_limit` actions, the line of queued executions in priority order, the key that
 * fails, and the settings refused. Slots are held by a step that sleeps, so what holds them is
 * certain without timing.
 */

const ctx = useTestApp();

async function sleepingWorkflow(concurrency: Record<string, unknown>): Promise<string> {
  return createWorkflow(ctx.app, {
    name: `limited ${JSON.stringify(concurrency)}`,
    workflow_type: 'sequential',
    config: { concurrency },
    steps: [{ id: 'nap', name: 'Nap', step_type: 'delay', config: { seconds: 600 } }],
  });
}

async function execute(workflowId: string, body: Record<string, unknown> = {}) {
  const response = await ctx.app.inject({
    method: 'POST',
    url: `/workflows/${workflowId}/execute`,
    payload: body,
  });
  expect(response.statusCode, response.body).toBe(202);
  return response.json() as { id: string; status: string };
}

async function diagnosis(id: string): Promise<Diagnosis> {
  const response = await ctx.app.inject({ method: 'GET', url: `/executions/${id}/diagnosis` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Diagnosis;
}

/** Admitted, its step asleep: it holds its slot. */
const napping = (execution: { status: string; steps: Array<{ status: string }> }) =>
  execution.status === 'waiting' && execution.steps[0]?.status === 'waiting';

async function cancel(id: string): Promise<void> {
  const response = await ctx.app.inject({ method: 'POST', url: `/executions/${id}/cancel` });
  expect(response.statusCode, response.body).toBe(200);
}

/** Waits until the diagnosis of a queued execution names its key (a worker keyed it). */
async function keyed(id: string): Promise<Diagnosis> {
  let last = await diagnosis(id);
  const deadline = Date.now() + 20_000;
  while (last.blocked_by?.kind !== 'execution_concurrency' || last.blocked_by.key === null) {
    if (Date.now() > deadline) throw new Error(`not keyed: ${JSON.stringify(last)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    last = await diagnosis(id);
  }
  return last;
}

describe('config.concurrency', () => {
  it('queues beyond the limit, in priority order, and admits the next when a slot frees', async () => {
    const workflowId = await sleepingWorkflow({ limit: 1, key: 'input.account' });
    // Its key is evaluated at its start: with a slot free it is admitted at once.
    const first = await execute(workflowId, { input_data: { account: 'a' } });
    expect(first.status).toBe('running');
    await waitForExecution(ctx.app, first.id, napping);
    const second = await execute(workflowId, { input_data: { account: 'a' } });
    expect(second.status).toBe('queued');
    const urgent = await execute(workflowId, { input_data: { account: 'a' }, priority: 1 });
    // Another key has its own budget.
    const other = await execute(workflowId, { input_data: { account: 'b' } });
    await waitForExecution(ctx.app, other.id, napping);

    const secondWhy = await keyed(second.id);
    expect(secondWhy.status).toBe('queued');
    expect(secondWhy.blocked_by).toEqual({
      kind: 'execution_concurrency',
      key: 'a',
      key_error: null,
      in_use: 1,
      max: 1,
      position: 2,
      on_limit: 'queue',
    });
    expect(secondWhy.summary).toContain('1 of 1 executions of key "a" run');
    expect(secondWhy.steps[0]?.blocked_by?.kind).toBe('execution_concurrency');
    expect((await keyed(urgent.id)).blocked_by).toMatchObject({ position: 1 });
    expect((await getExecution(ctx.app, second.id)).concurrency_key).toBe('a');

    await cancel(first.id);
    await waitForExecution(ctx.app, urgent.id, napping);
    expect((await getExecution(ctx.app, second.id)).status).toBe('queued');
    await cancel(urgent.id);
    await waitForExecution(ctx.app, second.id, napping);
    // A queued execution may be cancelled too; it held no slot.
    const third = await execute(workflowId, { input_data: { account: 'a' } });
    await keyed(third.id);
    await cancel(third.id);
    await cancel(second.id);
    await cancel(other.id);
  });

  it('cancel_new ends the new execution as cancelled, with the reason', async () => {
    const workflowId = await sleepingWorkflow({ limit: 1, on_limit: 'cancel_new' });
    const first = await execute(workflowId);
    await waitForExecution(ctx.app, first.id, napping);
    const second = await execute(workflowId);
    const ended = await waitForExecution(ctx.app, second.id);
    expect(ended.status).toBe('cancelled');
    expect(ended.error).toContain('cancel_new');
    expect((await getExecution(ctx.app, first.id)).status).toBe('waiting');
    await cancel(first.id);
  });

  it('cancel_oldest cancels the oldest execution of the key and runs the new one', async () => {
    const workflowId = await sleepingWorkflow({ limit: 1, on_limit: 'cancel_oldest' });
    const first = await execute(workflowId);
    await waitForExecution(ctx.app, first.id, napping);
    const second = await execute(workflowId);
    await waitForExecution(ctx.app, second.id, napping);
    const oldest = await waitForExecution(ctx.app, first.id);
    expect(oldest.status).toBe('cancelled');
    expect(oldest.error).toContain(`to make room for ${second.id}`);
    await cancel(second.id);
  });

  it('puts an execution whose key fails under "__error__", says why, and stalls no other', async () => {
    const workflowId = await sleepingWorkflow({ limit: 1, key: '$number(input.account)' });
    const broken = await execute(workflowId, { input_data: { account: 'not a number' } });
    const fine = await execute(workflowId, { input_data: { account: '7' } });
    await waitForExecution(ctx.app, fine.id, napping);
    await waitForExecution(ctx.app, broken.id, napping);
    expect((await getExecution(ctx.app, broken.id)).concurrency_key).toBe('__error__');
    const another = await execute(workflowId, { input_data: {} });
    const why = await keyed(another.id);
    expect(why.blocked_by).toMatchObject({ key: '__error__', in_use: 1, position: 1 });
    expect(why.blocked_by).toHaveProperty('key_error', 'the key expression gave nothing');
    expect(why.summary).toContain('its key expression failed');
    for (const id of [broken.id, fine.id, another.id]) await cancel(id);
  });

  it('refuses bad settings with every problem listed, and stores nothing', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      payload: {
        name: 'badly limited',
        workflow_type: 'sequential',
        config: { concurrency: { limit: 0, key: 'input.(', on_limit: 'drop' } },
        steps: [{ id: 'only', name: 'Only', step_type: 'noop' }],
      },
    });
    expect(response.statusCode, response.body).toBe(400);
    const paths = (response.json().errors as Array<{ path: string }>).map((error) => error.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'config.concurrency.limit',
        'config.concurrency.on_limit',
        'config.concurrency.key',
      ]),
    );
    const list = await ctx.app.inject({ method: 'GET', url: '/workflows?limit=100' });
    expect(JSON.stringify(list.json())).not.toContain('badly limited');
  });
});
