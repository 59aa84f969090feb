import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/test-app.js';
import { createWorkflow, getExecution, startExecution } from '../helpers/workflows.js';

const ctx = useTestApp();

interface Problem {
  status: number;
  detail: string;
  code: string;
  errors?: Array<{ path: string; message: string }>;
}

type Injected = Awaited<ReturnType<typeof ctx.app.inject>>;

const JSON_TYPE = { 'content-type': 'application/json' };

/** `levels` arrays nested in each other. */
const nested = (levels: number) => `${'['.repeat(levels)}${']'.repeat(levels)}`;

function post(url: string, payload: string): Promise<Injected> {
  return ctx.app.inject({ method: 'POST', url, headers: JSON_TYPE, payload });
}

function expectProblem(response: Injected, status: number): Problem {
  expect(response.statusCode, response.body.slice(0, 500)).toBe(status);
  expect(response.headers['content-type']).toContain('application/problem+json');
  // A problem never repeats a large request back.
  expect(response.body.length).toBeLessThan(10_000);
  return response.json<Problem>();
}

async function expectAlive(): Promise<void> {
  const live = await ctx.app.inject({ method: 'GET', url: '/health/live' });
  expect(live.statusCode).toBe(200);
}

let workflowId: string;

beforeAll(async () => {
  workflowId = await createWorkflow(ctx.app, {
    name: 'limits',
    workflow_type: 'sequential',
    steps: [{ id: 'a', name: 'a', step_type: 'noop' }],
  });
});

describe('JSON nesting depth (MAX_JSON_DEPTH)', () => {
  const routes = [
    { name: 'execute', url: () => `/workflows/${workflowId}/execute`, field: 'input_data' },
    { name: 'events', url: () => '/events', field: 'data' },
    { name: 'task complete', url: () => `/tasks/${randomUUID()}/complete`, field: 'output' },
  ];
  const body = (field: string, value: string) =>
    field === 'data'
      ? `{"type":"deep","data":{"x":${value}}}`
      : field === 'output'
        ? `{"output":${value}}`
        : `{"input_data":{"x":${value}}}`;

  for (const route of routes) {
    for (const levels of [5_000, 200_000]) {
      it(`${route.name}: ${levels} levels are a 400 naming the field and the limit`, async () => {
        const problem = expectProblem(
          await post(route.url(), body(route.field, nested(levels))),
          400,
        );
        expect(problem.code).toBe('WF_ERR_VALIDATION');
        expect(problem.detail).toMatch(/nested more than 64 levels deep \(MAX_JSON_DEPTH\)/);
        expect(problem.errors?.[0]?.path).toBe(route.field);
        await expectAlive();
      });
    }
  }

  it('a million levels in a workflow body are a 400 naming the field', async () => {
    const payload = `{"name":"deep","workflow_type":"parallel","metadata":{"x":${nested(1_000_000)}}}`;
    const problem = expectProblem(await post('/workflows', payload), 400);
    expect(problem.errors?.[0]?.path).toBe('metadata');
    await expectAlive();
  });

  it('accepts exactly the limit below the field, and brackets inside strings do not count', async () => {
    const accepted = await post(
      `/workflows/${workflowId}/execute`,
      `{"input_data":{"x":${nested(64)},"s":"${'['.repeat(500)}"}}`,
    );
    expect(accepted.statusCode, accepted.body).toBe(202);
    const refused = await post(
      `/workflows/${workflowId}/execute`,
      `{"input_data":{"x":${nested(65)}}}`,
    );
    expectProblem(refused, 400);
    const info = await ctx.app.inject({ method: 'GET', url: '/info' });
    expect(info.json().limits.max_json_depth).toBe(64);
  });
});

describe('size limits shared with MAX_INPUT_BYTES', () => {
  it('event data over the input limit is refused, as execution input is', async () => {
    const blob = 'x'.repeat(ctx.config.MAX_INPUT_BYTES);
    const field = expectProblem(
      await post('/events', JSON.stringify({ type: 'big', data: { blob } })),
      400,
    );
    expect(field.errors?.[0]?.path).toBe('data');
    expect(field.detail).toMatch(/MAX_INPUT_BYTES/);

    const body = expectProblem(
      await post('/events', JSON.stringify({ type: 'big', data: { blob: blob.repeat(3) } })),
      413,
    );
    expect(body.detail).toMatch(/data may be at most MAX_INPUT_BYTES/);

    const input = expectProblem(
      await post(`/workflows/${workflowId}/execute`, JSON.stringify({ input_data: { blob } })),
      400,
    );
    expect(input.errors?.[0]?.path).toBe('input_data');
    await expectAlive();
  });

  it('task output and failure details over the input limit are refused', async () => {
    const blob = 'x'.repeat(ctx.config.MAX_INPUT_BYTES);
    const output = expectProblem(
      await post(`/tasks/${randomUUID()}/complete`, JSON.stringify({ output: { blob } })),
      400,
    );
    expect(output.errors?.[0]?.path).toBe('output');
    const details = expectProblem(
      await post(
        `/tasks/${randomUUID()}/fail`,
        JSON.stringify({ error: 'x', details: { blob: blob.repeat(2) } }),
      ),
      413,
    );
    expect(details.detail).toMatch(/details/);
  });

  it('a huge unknown key is not echoed back', async () => {
    const key = 'k'.repeat(200_000);
    const problem = expectProblem(
      await post(`/workflows/${workflowId}/execute`, `{"${key}":1}`),
      400,
    );
    expect(problem.detail.length).toBeLessThan(3000);
  });
});

describe('empty JSON bodies', () => {
  it('every body-less POST and DELETE takes an empty JSON body as no body', async () => {
    const executionId = await startExecution(ctx.app, workflowId);
    const docs = await ctx.app.inject({ method: 'GET', url: '/docs/json' });
    const paths = docs.json().paths as Record<string, Record<string, { requestBody?: unknown }>>;
    const bodyless = Object.entries(paths).flatMap(([path, methods]) =>
      Object.entries(methods)
        .filter(
          ([method, operation]) => ['post', 'delete'].includes(method) && !operation.requestBody,
        )
        .map(([method]) => ({ method: method.toUpperCase() as 'POST' | 'DELETE', path })),
    );
    const routes = bodyless.map(({ path }) => path);
    expect(routes).toEqual(
      expect.arrayContaining(['/workflows/{id}', '/tasks/{token}/heartbeat', '/api-keys/{id}']),
    );
    // The operator actions take an optional body ({reason}, the retry's edits): none is none.
    const optional = ['cancel', 'retry', 'pause', 'resume'].map((action) => ({
      method: 'POST' as const,
      path: `/executions/{id}/${action}`,
    }));
    for (const { method, path } of [...bodyless, ...optional]) {
      const url = path
        .replace('/executions/{id}', `/executions/${executionId}`)
        .replace('{token}', randomUUID())
        .replace('{id}', 'does_not_exist')
        .replace('{name}', 'does-not-exist');
      const response = await ctx.app.inject({ method, url, headers: JSON_TYPE, payload: '' });
      expect(response.statusCode, `${method} ${url}: ${response.body}`).not.toBe(400);
      expect(response.statusCode, `${method} ${url}: ${response.body}`).toBeLessThan(500);
    }
  });

  it('execute with no body, or an empty JSON body, runs with input {}', async () => {
    const bare = await ctx.app.inject({ method: 'POST', url: `/workflows/${workflowId}/execute` });
    const empty = await post(`/workflows/${workflowId}/execute`, '');
    for (const response of [bare, empty]) {
      expect(response.statusCode, response.body).toBe(202);
      const execution = await getExecution(ctx.app, response.json<{ id: string }>().id);
      expect((execution as unknown as { input_data: unknown }).input_data).toEqual({});
    }
    // Completing a task without output is not a malformed request either (unknown token: 404).
    const complete = await ctx.app.inject({
      method: 'POST',
      url: `/tasks/${randomUUID()}/complete`,
    });
    expect(complete.statusCode, complete.body).toBe(404);
  });
});
