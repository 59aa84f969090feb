import { describe, expect, it } from 'vitest';
import type { Diagnosis } from '../../src/schemas/diagnosis.js';
import { useTestApp } from '../helpers/test-app.js';
import { createWorkflow, waitForExecution } from '../helpers/workflows.js';

/**
 * Debounce (issue 14, "Flow control"): starts with the same key collapse into one execution,
 * which begins with the latest input once its window closes; events go the same way.
 */

const ctx = useTestApp();
const STARTS = 50;

function debouncedWorkflow(debounce: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  return createWorkflow(ctx.app, {
    name: `debounced ${JSON.stringify(debounce)}`,
    workflow_type: 'sequential',
    config: { debounce },
    steps: [{ id: 'echo', name: 'Echo', step_type: 'transform', config: { expression: 'input' } }],
    ...extra,
  });
}

async function execute(workflowId: string, input: Record<string, unknown>) {
  const response = await ctx.app.inject({
    method: 'POST',
    url: `/workflows/${workflowId}/execute`,
    payload: { input_data: input },
  });
  expect(response.statusCode, response.body).toBe(202);
  return response.json() as { id: string; status: string; debounced?: boolean };
}

async function executionIds(workflowId: string): Promise<string[]> {
  const response = await ctx.app.inject({
    method: 'GET',
    url: `/executions?workflow_id=${workflowId}&limit=100`,
  });
  return response.json().items.map((item: { id: string }) => item.id);
}

describe('config.debounce', () => {
  it(`collapses ${STARTS} starts within the window into one execution with the last input`, async () => {
    const workflowId = await debouncedWorkflow({ period_seconds: 3 });
    const answers = [];
    for (let index = 0; index < STARTS; index += 1)
      answers.push(await execute(workflowId, { n: index }));
    const ids = new Set(answers.map((answer) => answer.id));
    expect(ids.size).toBe(1);
    expect(answers.every((answer) => answer.debounced === true && answer.status === 'queued')).toBe(
      true,
    );
    const [id] = [...ids] as [string];
    const why = (
      await ctx.app.inject({ method: 'GET', url: `/executions/${id}/diagnosis` })
    ).json() as Diagnosis;
    expect(why.blocked_by).toMatchObject({ kind: 'debounce', key: '' });
    expect(why.summary).toContain('debounced: collects starts until');
    const done = await waitForExecution(ctx.app, id, undefined, 30_000);
    expect(done.status).toBe('completed');
    expect(done.output_data).toEqual({ n: STARTS - 1 });
    expect(await executionIds(workflowId)).toEqual([id]);
    // The window closed: the next start opens a new one.
    const next = await execute(workflowId, { n: 'again' });
    expect(next.id).not.toBe(id);
    expect((await waitForExecution(ctx.app, next.id, undefined, 30_000)).output_data).toEqual({
      n: 'again',
    });
  });

  it('keeps one window per key, and caps a window at max_wait_seconds', async () => {
    const workflowId = await debouncedWorkflow({
      period_seconds: 3,
      max_wait_seconds: 3,
      key: 'input.user',
    });
    const a = await execute(workflowId, { user: 'a', n: 1 });
    const b = await execute(workflowId, { user: 'b', n: 1 });
    const a2 = await execute(workflowId, { user: 'a', n: 2 });
    expect(a2.id).toBe(a.id);
    expect(b.id).not.toBe(a.id);
    const why = (
      await ctx.app.inject({ method: 'GET', url: `/executions/${a.id}/diagnosis` })
    ).json() as Diagnosis;
    const blocked = why.blocked_by as { kind: string; key: string; eta: string; deadline: string };
    expect(blocked).toMatchObject({ kind: 'debounce', key: 'a' });
    // Pushed back by the second start, the window still ends at the deadline.
    expect(blocked.eta).toBe(blocked.deadline);
    const doneA = await waitForExecution(ctx.app, a.id, undefined, 30_000);
    expect(doneA.output_data).toEqual({ user: 'a', n: 2 });
    expect((await waitForExecution(ctx.app, b.id, undefined, 30_000)).output_data).toEqual({
      user: 'b',
      n: 1,
    });
  });

  it('collapses events that start an event-driven workflow the same way', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'debounced on events',
      workflow_type: 'event_driven',
      status: 'active',
      config: {
        trigger: { event: 'profile.changed' },
        debounce: { period_seconds: 2, key: 'input.user' },
      },
      steps: [
        { id: 'echo', name: 'Echo', step_type: 'transform', config: { expression: 'input' } },
      ],
    });
    const started = new Set<string>();
    for (let index = 0; index < 5; index += 1) {
      const response = await ctx.app.inject({
        method: 'POST',
        url: '/events',
        payload: { type: 'profile.changed', data: { user: 'u1', version: index } },
      });
      expect([200, 202], response.body).toContain(response.statusCode);
      for (const id of response.json().started_executions as string[]) started.add(id);
    }
    expect(started.size).toBe(1);
    const [id] = [...started] as [string];
    const done = await waitForExecution(ctx.app, id, undefined, 30_000);
    expect(done.output_data).toEqual({ user: 'u1', version: 4 });
    expect(await executionIds(workflowId)).toEqual([id]);
  });

  it('refuses bad settings, every problem listed, and stores nothing', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      payload: {
        name: 'badly debounced',
        workflow_type: 'sequential',
        config: {
          debounce: { period_seconds: 90_000, max_wait_seconds: 0, key: '$(' },
          concurrency: { limit: 0 },
        },
        steps: [{ id: 'only', name: 'Only', step_type: 'noop' }],
      },
    });
    expect(response.statusCode, response.body).toBe(400);
    const paths = (response.json().errors as Array<{ path: string }>).map((error) => error.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'config.debounce.period_seconds',
        'config.debounce.max_wait_seconds',
        'config.debounce.key',
        'config.concurrency.limit',
      ]),
    );
    const period = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      payload: {
        name: 'window shorter than the wait',
        workflow_type: 'sequential',
        config: { debounce: { period_seconds: 0 } },
        steps: [{ id: 'only', name: 'Only', step_type: 'noop' }],
      },
    });
    expect(period.statusCode).toBe(400);
    const list = await ctx.app.inject({ method: 'GET', url: '/workflows?limit=100' });
    expect(JSON.stringify(list.json())).not.toContain('badly debounced');
  });
});
