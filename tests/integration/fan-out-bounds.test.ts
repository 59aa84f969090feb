import type { FastifyInstance } from 'fastify';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { testEnvironment, useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  getExecution,
  startExecution,
  waitForExecution,
} from '../helpers/workflows.js';

/**
 * Nothing expensive inside a request (a start leaves its first decisions to a worker), bounded
 * fan-outs, the summarised execution view and the paginated step runs.
 */

const MAX_ITEMS = 400;
const ctx = useTestApp({ MAX_FOR_EACH_ITEMS: String(MAX_ITEMS), SWEEP_STALE_AFTER_MS: '2000' });
const apps: FastifyInstance[] = [];

afterAll(async () => {
  for (const app of apps) await app.close();
});

interface StepPage {
  items: Array<{ step_id: string; status: string; item_index: number | null; output: unknown }>;
  next_cursor: string | null;
}

async function stepPage(app: FastifyInstance, id: string, query: string) {
  return app.inject({ method: 'GET', url: `/executions/${id}/steps?${query}` });
}

describe('starting an execution', () => {
  it('answers 202 at once with a conditioned first step pending; a worker decides it', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'first condition',
      workflow_type: 'sequential',
      steps: [
        { id: 'gate', name: 'Gate', step_type: 'noop', condition: 'input.go = true' },
        { id: 'after', name: 'After', step_type: 'noop' },
      ],
    });
    const response = await ctx.app.inject({
      method: 'POST',
      url: `/workflows/${workflowId}/execute`,
      payload: { input_data: { go: true } },
    });
    expect(response.statusCode, response.body).toBe(202);
    const body = response.json() as { id: string; status: string; steps: StepPage['items'] };
    expect(body.status).toBe('running');
    expect(body.steps.find((step) => step.step_id === 'gate')?.status).toBe('pending');
    const execution = await waitForExecution(ctx.app, body.id);
    expect(execution.status, JSON.stringify(execution.error)).toBe('completed');
    expect(execution.steps.map((step) => step.status)).toEqual(['completed', 'completed']);
  });

  it('an API-only process never evaluates the first condition; the sweep covers the lost job', async () => {
    // Its advance job goes to a queue no worker reads (another Redis prefix): as good as lost.
    const api = await buildApp(
      loadConfig(
        testEnvironment(ctx.database, `${ctx.prefix}api`, {
          SERVICE_ROLE: 'api',
          EXPRESSION_TIMEOUT_MS: '120000',
        }),
      ),
    );
    apps.push(api);
    await api.ready();
    const slow = await createWorkflow(api, {
      name: 'slow first condition',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'gate',
          name: 'Gate',
          step_type: 'noop',
          condition: '$count($map([1..5000000], function($v) { $v * 2 })) > 0',
        },
      ],
    });
    const began = Date.now();
    const response = await api.inject({ method: 'POST', url: `/workflows/${slow}/execute` });
    // Liveness, not a benchmark: evaluating that condition would take far longer.
    expect(Date.now() - began).toBeLessThan(10_000);
    expect(response.statusCode, response.body).toBe(202);
    expect(response.json().steps[0].status).toBe('pending');

    const quick = await createWorkflow(api, {
      name: 'quick first condition',
      workflow_type: 'sequential',
      steps: [{ id: 'gate', name: 'Gate', step_type: 'noop', condition: 'true' }],
    });
    const id = await startExecution(api, quick);
    expect((await getExecution(api, id)).steps[0]?.status).toBe('pending');
    // The worker process (another prefix) never got the job: its recovery sweep finds the
    // idle execution in Postgres and advances it.
    const execution = await waitForExecution(ctx.app, id, undefined, 30_000);
    expect(execution.status, JSON.stringify(execution.error)).toBe('completed');
  }, 60_000);
});

describe('fan-outs', () => {
  it(`fails a for_each over more than MAX_FOR_EACH_ITEMS items before any item run`, async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'too many items',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'each',
          name: 'Each',
          step_type: 'noop',
          for_each: `[1..${MAX_ITEMS + 1}]`,
        },
      ],
    });
    const id = await startExecution(ctx.app, workflowId);
    const execution = await waitForExecution(ctx.app, id);
    expect(execution.status).toBe('failed');
    expect(execution.steps).toHaveLength(1);
    const error = execution.steps[0]?.error as {
      type: string;
      retryable: boolean;
      message: string;
    };
    expect(error.type).toBe('for_each_limit');
    expect(error.retryable).toBe(false);
    expect(error.message).toContain(String(MAX_ITEMS + 1));
    expect(error.message).toContain(String(MAX_ITEMS));
    const page = await stepPage(ctx.app, id, 'limit=100');
    expect(page.statusCode, page.body).toBe(200);
    expect((page.json() as StepPage).items).toHaveLength(1);
  });

  it('summarises a 300-item fan-out in the view; pages of its runs cover each run once', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'large fan-out',
      workflow_type: 'sequential',
      steps: [
        { id: 'first', name: 'First', step_type: 'noop' },
        { id: 'each', name: 'Each', step_type: 'noop', for_each: '[1..300]' },
        { id: 'last', name: 'Last', step_type: 'noop' },
      ],
    });
    const id = await startExecution(ctx.app, workflowId);
    const execution = await waitForExecution(ctx.app, id, undefined, 120_000);
    expect(execution.status, JSON.stringify(execution.error)).toBe('completed');

    expect(execution.steps.map((step) => step.step_id)).toEqual(['first', 'each', 'last']);
    const each = execution.steps[1] as ExecutionStep;
    expect(each.items).toEqual({ total: 300, by_status: { completed: 300 } });
    expect(each.output).toMatchObject({ summarised: true, items: 300 });
    expect(execution.step_results.each).toMatchObject({
      summarised: true,
      items: 300,
      steps_url: `/executions/${id}/steps?step_id=each`,
    });

    const seen: StepPage['items'] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `limit=100${cursor ? `&cursor=${cursor}` : ''}`;
      const response = await stepPage(ctx.app, id, query);
      expect(response.statusCode, response.body).toBe(200);
      const page = response.json() as StepPage;
      expect(page.items.length).toBeLessThanOrEqual(100);
      seen.push(...page.items);
      cursor = page.next_cursor;
      pages += 1;
    } while (cursor !== null && pages < 10);
    expect(seen).toHaveLength(303);
    const keys = seen.map((run) => `${run.step_id}/${run.item_index}`);
    expect(new Set(keys).size).toBe(303);
    const items = seen.filter((run) => run.step_id === 'each' && run.item_index !== null);
    expect(items.map((run) => run.item_index).sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual(
      Array.from({ length: 300 }, (_, index) => index),
    );
    expect(items.every((run) => run.status === 'completed')).toBe(true);

    const filtered = await stepPage(ctx.app, id, 'step_id=last&status=completed');
    expect((filtered.json() as StepPage).items.map((run) => run.step_id)).toEqual(['last']);
  }, 150_000);

  it('answers 404 for an unknown execution and 400 for a bad cursor or limit', async () => {
    expect((await stepPage(ctx.app, 'ex_missing', 'limit=10')).statusCode).toBe(404);
    const workflowId = await createWorkflow(ctx.app, {
      name: 'pages',
      workflow_type: 'sequential',
      steps: [{ id: 'a', name: 'A', step_type: 'noop' }],
    });
    const id = await startExecution(ctx.app, workflowId);
    const bad = await stepPage(ctx.app, id, 'cursor=not-a-cursor');
    expect(bad.statusCode).toBe(400);
    expect(bad.json().code).toBe('WF_ERR_INVALID_CURSOR');
    expect((await stepPage(ctx.app, id, 'limit=101')).statusCode).toBe(400);
  });
});

type ExecutionStep = StepPage['items'][number] & {
  items?: { total: number; by_status: Record<string, number> };
};
