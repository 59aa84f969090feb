import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/test-app.js';
import { createWorkflow, NUMBER_CHECK_STEP, waitForExecution } from '../helpers/workflows.js';

/**
 * Labels and search (issue 15, "Labels and search"): labels given on execute and on an event,
 * inherited by sub-workflows, shown in the view, and the filters of GET /executions.
 */

const ctx = useTestApp();

async function execute(workflowId: string, body: Record<string, unknown>) {
  const response = await ctx.app.inject({
    method: 'POST',
    url: `/workflows/${workflowId}/execute`,
    payload: body,
  });
  expect(response.statusCode, response.body).toBe(202);
  return response.json() as { id: string; labels: Record<string, string> };
}

async function list(query: string): Promise<string[]> {
  const response = await ctx.app.inject({ method: 'GET', url: `/executions?limit=100&${query}` });
  expect(response.statusCode, response.body).toBe(200);
  return (response.json().items as Array<{ id: string }>).map((item) => item.id).sort();
}

const echo = { id: 'echo', name: 'Echo', step_type: 'transform', config: { expression: 'input' } };

describe('labels and search', () => {
  it('keeps labels, and finds executions by every label given', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'labelled',
      workflow_type: 'sequential',
      steps: [echo],
    });
    const a = await execute(workflowId, { labels: { order: '4711', tenant: 'acme' } });
    const b = await execute(workflowId, { labels: { order: '4712', tenant: 'acme' } });
    const c = await execute(workflowId, {});
    expect(a.labels).toEqual({ order: '4711', tenant: 'acme' });
    expect(c.labels).toEqual({});
    expect(await list('label.order=4711')).toEqual([a.id]);
    expect(await list('label.tenant=acme')).toEqual([a.id, b.id].sort());
    expect(await list('label.tenant=acme&label.order=4712')).toEqual([b.id]);
    expect(await list('label.tenant=nobody')).toEqual([]);
    expect(await list(`workflow_id=${workflowId}&workflow_version=1`)).toEqual(
      [a.id, b.id, c.id].sort(),
    );
    for (const id of [a.id, b.id, c.id]) await waitForExecution(ctx.app, id);
    const since = new Date(Date.now() - 60_000).toISOString();
    expect(
      await list(`workflow_id=${workflowId}&ended_after=${encodeURIComponent(since)}`),
    ).toEqual([a.id, b.id, c.id].sort());
    expect(
      await list(`workflow_id=${workflowId}&ended_before=${encodeURIComponent(since)}`),
    ).toEqual([]);
  });

  it('finds failed executions by the step that failed and by the error type', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'failing',
      workflow_type: 'sequential',
      steps: [NUMBER_CHECK_STEP],
    });
    const bad = await execute(workflowId, { input_data: { n: 'x' } });
    const good = await execute(workflowId, { input_data: { n: '3' } });
    expect((await waitForExecution(ctx.app, bad.id)).status).toBe('failed');
    await waitForExecution(ctx.app, good.id);
    expect(await list(`workflow_id=${workflowId}&failed_step=check`)).toEqual([bad.id]);
    expect(await list(`workflow_id=${workflowId}&error_type=expression_error`)).toEqual([bad.id]);
    expect(await list(`workflow_id=${workflowId}&failed_step=other`)).toEqual([]);
  });

  it('gives an event its labels, and a sub-workflow its parent', async () => {
    const child = await createWorkflow(ctx.app, {
      name: 'child',
      workflow_type: 'sequential',
      status: 'active',
      steps: [echo],
    });
    const parent = await createWorkflow(ctx.app, {
      name: 'parent on events',
      workflow_type: 'event_driven',
      status: 'active',
      config: { trigger: { event: 'order.labelled', labels: { source: 'events', order: 'x' } } },
      steps: [
        {
          id: 'sub',
          name: 'Sub',
          step_type: 'subworkflow',
          config: { workflow_id: child, input: {} },
        },
      ],
    });
    const published = await ctx.app.inject({
      method: 'POST',
      url: '/events',
      payload: { type: 'order.labelled', data: {}, labels: { order: '9001' } },
    });
    expect([200, 202], published.body).toContain(published.statusCode);
    const [started] = published.json().started_executions as string[];
    await waitForExecution(ctx.app, started as string, undefined, 30_000);
    expect(await list('label.order=9001')).toHaveLength(2);
    expect(await list(`workflow_id=${child}&label.order=9001`)).toHaveLength(1);
    expect(await list(`workflow_id=${parent}&label.order=9001`)).toEqual([started]);
    // The trigger's labels fill in under the event's own.
    expect(await list(`workflow_id=${parent}&label.source=events`)).toEqual([started]);
  });

  it('keys flow control by labels', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'per tenant label',
      workflow_type: 'sequential',
      config: { concurrency: { limit: 1, key: 'labels.tenant' } },
      steps: [echo],
    });
    const run = await execute(workflowId, { labels: { tenant: 'acme' } });
    const view = await ctx.app.inject({ method: 'GET', url: `/executions/${run.id}` });
    expect(view.json().concurrency_key).toBe('acme');
  });

  it('refuses labels over the limits and unknown filters, changing nothing', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'strict labels',
      workflow_type: 'sequential',
      steps: [echo],
    });
    const many = Object.fromEntries(Array.from({ length: 21 }, (_, index) => [`k${index}`, 'v']));
    for (const labels of [
      many,
      { ['k'.repeat(65)]: 'v' },
      { order: 'v'.repeat(257) },
      { order: 7 },
      { 'bad key': 'v' },
    ]) {
      const response = await ctx.app.inject({
        method: 'POST',
        url: `/workflows/${workflowId}/execute`,
        payload: { labels },
      });
      expect(response.statusCode, JSON.stringify(labels).slice(0, 80)).toBe(400);
      expect(response.headers['content-type']).toContain('application/problem+json');
    }
    expect(await list(`workflow_id=${workflowId}`)).toEqual([]);
    const badTrigger = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      payload: {
        name: 'bad trigger labels',
        workflow_type: 'event_driven',
        config: { trigger: { event: 'x', labels: { 'bad key': 'v' } } },
        steps: [echo],
      },
    });
    expect(badTrigger.statusCode).toBe(400);
    expect(badTrigger.json().errors[0].path).toMatch(/^config\.trigger\.labels/);
    for (const query of [
      'colour=red',
      'label.=x',
      'label.order=1&label.order=2',
      'workflow_version=0',
    ]) {
      const response = await ctx.app.inject({ method: 'GET', url: `/executions?${query}` });
      expect(response.statusCode, query).toBe(400);
    }
  });
});
