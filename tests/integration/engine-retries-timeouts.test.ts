import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Queryable, withTransaction } from '../../src/store/db.js';
import { useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  type ExecutionBody,
  getExecution,
  startExecution,
  stepStatuses,
  waitForExecution,
  waitUntil,
} from '../helpers/workflows.js';

/**
 * Retries, timeouts, cancel, retry-from-failure, pause/resume, version pinning, idempotent
 * execute and the execution list, through HTTP against a local loopback server.
 */

const ctx = useTestApp({
  HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1',
  SWEEP_INTERVAL_MS: '200',
  SWEEP_STALE_AFTER_MS: '2000',
});

const DEADLINE_MS = 30_000;

/** Starts an execution of `workflowId` and waits (up to DEADLINE_MS) until it ends. */
async function runToEnd(workflowId: string): Promise<ExecutionBody> {
  return waitForExecution(
    ctx.app,
    await startExecution(ctx.app, workflowId),
    undefined,
    DEADLINE_MS,
  );
}
const ENDED = ['completed', 'failed', 'cancelled', 'timed_out'];

/** A loopback HTTP server with routes that fail, hang or count, and a log of what it saw. */
const calls = new Map<string, number>();
const abortedRequests = new Set<string>();
let server: Server;
let baseUrl: string;

function countCall(path: string): number {
  const count = (calls.get(path) ?? 0) + 1;
  calls.set(path, count);
  return count;
}

beforeAll(async () => {
  server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0] as string;
    const count = countCall(path);
    const reply = (status: number, body: unknown) => {
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
    };
    request.resume();
    if (path.startsWith('/flaky/')) {
      // Fails twice with a retryable 500, then answers.
      if (count <= 2) reply(500, { error: 'try again' });
      else reply(200, { ok: true, call: count });
    } else if (path.startsWith('/missing/')) {
      reply(404, { error: 'no such thing' });
    } else if (path.startsWith('/fail-once/')) {
      // A non-retryable answer the first time only.
      if (count === 1) reply(400, { error: 'bad request this time' });
      else reply(200, { ok: true, call: count });
    } else if (path.startsWith('/always-500/')) {
      reply(500, { error: 'down' });
    } else if (path.startsWith('/hang-once/') && count > 1) {
      reply(200, { ok: true, call: count });
    } else if (path.startsWith('/hang/') || path.startsWith('/hang-once/')) {
      // Never answers; records the client giving up before an answer was sent.
      response.on('close', () => {
        if (!response.writableEnded) abortedRequests.add(path);
      });
    } else {
      reply(200, { ok: true, path, call: count });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

function httpStep(id: string, path: string, extra: Record<string, unknown> = {}) {
  return { id, name: id, step_type: 'http', config: { url: `${baseUrl}${path}` }, ...extra };
}

function ownRun(execution: ExecutionBody, stepId: string) {
  const run = execution.steps.find((step) => step.step_id === stepId && step.item_index === null);
  if (!run) throw new Error(`no run of ${stepId}: ${JSON.stringify(execution)}`);
  return run;
}

async function post(url: string, payload?: Record<string, unknown>) {
  return ctx.app.inject({ method: 'POST', url, ...(payload ? { payload } : {}) });
}

/** A workflow's counters (GET /workflows/{id}) and its ended executions by status (stats). */
async function readCounters(workflowId: string) {
  const [workflow, stats] = await Promise.all([
    ctx.app.inject({ method: 'GET', url: `/workflows/${workflowId}` }),
    ctx.app.inject({ method: 'GET', url: `/workflows/${workflowId}/stats` }),
  ]);
  expect(workflow.statusCode, workflow.body).toBe(200);
  expect(stats.statusCode, stats.body).toBe(200);
  const { execution_count, success_count, failure_count } = workflow.json();
  const { completed, failed, cancelled, timed_out } = stats.json().executions_by_status;
  return {
    execution_count,
    success_count,
    failure_count,
    by_status: { completed, failed, cancelled, timed_out },
  };
}

/**
 * Expects a workflow's counters to read `expected`, waiting for them first: the cached view
 * of the workflow is dropped just after the commit that changed them, not in it.
 */
async function expectCounters(
  workflowId: string,
  expected: Awaited<ReturnType<typeof readCounters>>,
): Promise<void> {
  let counters = await readCounters(workflowId);
  await waitUntil(
    async () => {
      counters = await readCounters(workflowId);
      return isDeepStrictEqual(counters, expected);
    },
    'the counters read as expected',
    DEADLINE_MS,
  ).catch(() => {});
  expect(counters).toEqual(expected);
}

function expectProblem(
  response: { statusCode: number; headers: Record<string, unknown>; json(): unknown },
  status: number,
) {
  expect(response.statusCode).toBe(status);
  expect(String(response.headers['content-type'])).toContain('application/problem+json');
  expect((response.json() as { status: number }).status).toBe(status);
}

async function listAll(query: string): Promise<Array<{ id: string; status: string }>> {
  const response = await ctx.app.inject({ method: 'GET', url: `/executions?${query}` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json().items;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('retries', () => {
  it('retries a retryable failure until it succeeds', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'flaky',
      workflow_type: 'sequential',
      steps: [
        httpStep('call', '/flaky/retry-success', {
          retry_count: 3,
          retry_backoff: { type: 'fixed', delay_ms: 100, max_delay_ms: 100 },
        }),
      ],
    });
    const execution = await runToEnd(workflowId);
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(ownRun(execution, 'call').attempts).toBe(3);
    expect(ownRun(execution, 'call').status).toBe('completed');
    expect(calls.get('/flaky/retry-success')).toBe(3);
    expect(execution.output_data).toMatchObject({ status: 200, body: { ok: true, call: 3 } });
  });

  it('fails at once on a non-retryable HTTP status', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'not found',
      workflow_type: 'sequential',
      steps: [
        httpStep('lookup', '/missing/one', {
          retry_count: 3,
          retry_backoff: { type: 'fixed', delay_ms: 100, max_delay_ms: 100 },
        }),
        { id: 'after', name: 'after', step_type: 'noop' },
      ],
    });
    const execution = await runToEnd(workflowId);
    expect(execution.status, JSON.stringify(execution)).toBe('failed');
    expect(execution.error).toContain('lookup');
    expect(ownRun(execution, 'lookup').attempts).toBe(1);
    expect(ownRun(execution, 'lookup').error?.type).toBe('http_status');
    expect(stepStatuses(execution)).toEqual({ lookup: 'failed', after: 'cancelled' });
    expect(calls.get('/missing/one')).toBe(1);
  });

  it('fails at once on a validate step with bad data', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'bad data',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'check_input',
          name: 'Check input',
          step_type: 'validate',
          config: {
            schema: { type: 'object', required: ['amount'] },
            data: '{% input %}',
          },
          retry_count: 5,
        },
      ],
    });
    const execution = await waitForExecution(
      ctx.app,
      await startExecution(ctx.app, workflowId, { other: 1 }),
      undefined,
      DEADLINE_MS,
    );
    expect(execution.status, JSON.stringify(execution)).toBe('failed');
    expect(execution.error).toContain('check_input');
    expect(ownRun(execution, 'check_input').attempts).toBe(1);
    expect(ownRun(execution, 'check_input').error?.type).toBe('validation_failed');
  });
});

describe('timeouts', () => {
  it('fails a step attempt that runs past timeout_seconds', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'step timeout',
      workflow_type: 'sequential',
      steps: [httpStep('slow', '/hang/step-timeout', { timeout_seconds: 1, retry_count: 0 })],
    });
    const execution = await runToEnd(workflowId);
    expect(execution.status, JSON.stringify(execution)).toBe('failed');
    const run = ownRun(execution, 'slow');
    expect(run.status).toBe('failed');
    expect(run.error?.type).toBe('timeout');
    expect(run.attempts).toBe(1);
    expect(execution.error).toContain('slow');
    // The abandoned request was aborted, not left open.
    await waitUntil(
      () => abortedRequests.has('/hang/step-timeout'),
      'the timed-out request is aborted',
      DEADLINE_MS,
    );
  });

  it('times out an execution past config.timeout_seconds and cancels its steps', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'execution timeout',
      workflow_type: 'sequential',
      config: { timeout_seconds: 1 },
      steps: [
        { id: 'wait', name: 'wait', step_type: 'delay', config: { seconds: 60 } },
        { id: 'after', name: 'after', step_type: 'noop' },
      ],
    });
    const execution = await runToEnd(workflowId);
    expect(execution.status, JSON.stringify(execution)).toBe('timed_out');
    expect(stepStatuses(execution)).toEqual({ wait: 'cancelled', after: 'cancelled' });
    expect(execution.completed_at).not.toBeNull();
  });
});

describe('cancel', () => {
  it('aborts the running attempt and stays cancelled', async () => {
    const path = '/hang/cancel';
    const workflowId = await createWorkflow(ctx.app, {
      name: 'cancel me',
      workflow_type: 'sequential',
      steps: [
        httpStep('slow', path, { timeout_seconds: 60 }),
        { id: 'after', name: 'after', step_type: 'noop' },
      ],
    });
    const executionId = await startExecution(ctx.app, workflowId);
    await waitUntil(
      () => calls.get(path) === 1,
      'the slow request reaches the server',
      DEADLINE_MS,
    );
    expect(abortedRequests.has(path)).toBe(false);

    const cancelled = await post(`/executions/${executionId}/cancel`);
    expect(cancelled.statusCode, cancelled.body).toBe(200);
    expect(cancelled.json().status).toBe('cancelled');
    await waitUntil(
      () => abortedRequests.has(path),
      'the server sees the request aborted',
      DEADLINE_MS,
    );

    // Several sweep intervals later nothing has revived it.
    await sleep(1000);
    const execution = await getExecution(ctx.app, executionId);
    expect(execution.status).toBe('cancelled');
    expect(stepStatuses(execution)).toEqual({ slow: 'cancelled', after: 'cancelled' });
    expect(calls.get(path)).toBe(1);

    expectProblem(await post(`/executions/${executionId}/cancel`), 409);
  });

  it('refuses to cancel an execution that already ended', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'done',
      workflow_type: 'sequential',
      steps: [{ id: 'a', name: 'a', step_type: 'noop' }],
    });
    const executionId = await startExecution(ctx.app, workflowId);
    await waitForExecution(ctx.app, executionId, undefined, DEADLINE_MS);
    expectProblem(await post(`/executions/${executionId}/cancel`), 409);
    expectProblem(await post('/executions/ex_does_not_exist/cancel'), 404);
  });
});

describe('retry from failure', () => {
  it('resumes from the failed step without running completed steps again', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'retry me',
      workflow_type: 'sequential',
      steps: [
        httpStep('a', '/ok/retry-a'),
        httpStep('b', '/fail-once/retry-b', { retry_count: 3 }),
        {
          id: 'c',
          name: 'c',
          step_type: 'transform',
          config: { expression: 'steps.b.output.body.call' },
        },
      ],
    });
    const executionId = await startExecution(ctx.app, workflowId);
    const failed = await waitForExecution(ctx.app, executionId, undefined, DEADLINE_MS);
    expect(failed.status, JSON.stringify(failed)).toBe('failed');
    expect(failed.error).toContain('b');
    expect(stepStatuses(failed)).toEqual({ a: 'completed', b: 'failed', c: 'cancelled' });
    expect(ownRun(failed, 'b').attempts).toBe(1);

    const retried = await post(`/executions/${executionId}/retry`);
    expect(retried.statusCode, retried.body).toBe(200);
    expect(['running', 'waiting', 'completed']).toContain(retried.json().status);

    const execution = await waitForExecution(ctx.app, executionId, undefined, DEADLINE_MS);
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(execution.error).toBeNull();
    expect(stepStatuses(execution)).toEqual({ a: 'completed', b: 'completed', c: 'completed' });
    expect(execution.output_data).toBe(2);
    expect(calls.get('/ok/retry-a')).toBe(1);
    expect(calls.get('/fail-once/retry-b')).toBe(2);
    // Retrying a completed execution is refused.
    expectProblem(await post(`/executions/${executionId}/retry`), 409);
  });
});

describe('stopping and resuming around failures', () => {
  it('cancels during a retry backoff and never calls again', async () => {
    const path = '/always-500/backoff';
    const workflowId = await createWorkflow(ctx.app, {
      name: 'cancel in backoff',
      workflow_type: 'sequential',
      steps: [
        httpStep('call', path, {
          retry_count: 5,
          retry_backoff: { type: 'fixed', delay_ms: 1500, max_delay_ms: 1500 },
        }),
      ],
    });
    const executionId = await startExecution(ctx.app, workflowId);
    await waitForExecution(
      ctx.app,
      executionId,
      (execution) => ownRun(execution, 'call').status === 'queued' && calls.get(path) === 1,
      DEADLINE_MS,
    );
    const cancelled = await post(`/executions/${executionId}/cancel`);
    expect(cancelled.statusCode, cancelled.body).toBe(200);
    // Past the moment the retry was due.
    await sleep(2500);
    const execution = await getExecution(ctx.app, executionId);
    expect(execution.status).toBe('cancelled');
    expect(stepStatuses(execution)).toEqual({ call: 'cancelled' });
    expect(calls.get(path)).toBe(1);
  });

  it('fails a parallel execution when one branch fails and aborts the other', async () => {
    const hang = '/hang/parallel-sibling';
    const workflowId = await createWorkflow(ctx.app, {
      name: 'parallel failure',
      workflow_type: 'parallel',
      steps: [
        httpStep('slow', hang, { timeout_seconds: 60 }),
        httpStep('broken', '/missing/parallel', { dependencies: [] }),
      ],
    });
    const executionId = await startExecution(ctx.app, workflowId);
    const execution = await waitForExecution(ctx.app, executionId, undefined, DEADLINE_MS);
    expect(execution.status, JSON.stringify(execution)).toBe('failed');
    expect(execution.error).toContain('broken');
    expect(ownRun(execution, 'broken').status).toBe('failed');
    // The sibling either never reached the server or had its request aborted.
    expect(ownRun(execution, 'slow').status).toBe('cancelled');
    if (calls.get(hang) === 1) {
      await waitUntil(
        () => abortedRequests.has(hang),
        'the sibling request is aborted',
        DEADLINE_MS,
      );
    }
  });

  it('retries a timed-out execution to completion', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'retry timed out',
      workflow_type: 'sequential',
      config: { timeout_seconds: 2 },
      steps: [httpStep('first', '/ok/timed-out-first'), httpStep('slow', '/hang-once/timed-out')],
    });
    const executionId = await startExecution(ctx.app, workflowId);
    const timedOut = await waitForExecution(ctx.app, executionId, undefined, DEADLINE_MS);
    expect(timedOut.status, JSON.stringify(timedOut)).toBe('timed_out');
    expect(stepStatuses(timedOut)).toEqual({ first: 'completed', slow: 'cancelled' });
    await expectCounters(workflowId, {
      execution_count: 1,
      success_count: 0,
      failure_count: 1,
      by_status: { completed: 0, failed: 0, cancelled: 0, timed_out: 1 },
    });
    await waitUntil(
      () => abortedRequests.has('/hang-once/timed-out'),
      'the hanging request is aborted',
      DEADLINE_MS,
    );

    const retried = await post(`/executions/${executionId}/retry`);
    expect(retried.statusCode, retried.body).toBe(200);
    const execution = await waitForExecution(ctx.app, executionId, undefined, DEADLINE_MS);
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(stepStatuses(execution)).toEqual({ first: 'completed', slow: 'completed' });
    expect(calls.get('/ok/timed-out-first')).toBe(1);
    expect(calls.get('/hang-once/timed-out')).toBe(2);
    // The retry took the timed-out end back out of the counters before counting the new one.
    await expectCounters(workflowId, {
      execution_count: 1,
      success_count: 1,
      failure_count: 0,
      by_status: { completed: 1, failed: 0, cancelled: 0, timed_out: 0 },
    });
  });

  it('retries a for_each step whose item failed and keeps the results in order', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'for each retry',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'each',
          name: 'each',
          step_type: 'http',
          for_each: 'input.items',
          for_each_concurrency: 2,
          config: {
            url: `{% item = 3 ? '${baseUrl}/fail-once/each-3' : '${baseUrl}/ok/each-' & $string(item) %}`,
          },
        },
        {
          id: 'calls',
          name: 'calls',
          step_type: 'transform',
          config: { expression: 'steps.each.output.body.path' },
        },
      ],
    });
    const executionId = await startExecution(ctx.app, workflowId, { items: [1, 2, 3, 4, 5] });
    const failed = await waitForExecution(ctx.app, executionId, undefined, DEADLINE_MS);
    expect(failed.status, JSON.stringify(failed)).toBe('failed');
    expect(failed.error).toContain('each');
    expect(stepStatuses(failed)).toEqual({ each: 'failed', calls: 'cancelled' });

    const retried = await post(`/executions/${executionId}/retry`);
    expect(retried.statusCode, retried.body).toBe(200);
    const execution = await waitForExecution(ctx.app, executionId, undefined, DEADLINE_MS);
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    const items = execution.steps.filter(
      (run) => run.step_id === 'each' && run.item_index !== null,
    );
    expect(items.map((run) => [run.item_index, run.status])).toEqual([
      [0, 'completed'],
      [1, 'completed'],
      [2, 'completed'],
      [3, 'completed'],
      [4, 'completed'],
    ]);
    // Item 3's second call answered without a path; JSONata's mapping leaves it out.
    expect(execution.output_data).toEqual(['/ok/each-1', '/ok/each-2', '/ok/each-4', '/ok/each-5']);
    expect((execution.step_results.each as Array<{ body: unknown }>)[2]?.body).toEqual({
      ok: true,
      call: 2,
    });
  });
});

describe('pause and resume', () => {
  // A service of its own whose sweep never re-enqueues stale runs within the test: resume
  // itself must put back everything the pause held, not leave it to the safety net.
  const held = useTestApp({ SWEEP_INTERVAL_MS: '200', SWEEP_STALE_AFTER_MS: '600000' });

  async function pauseAndResume(waitUntilSleeping: boolean): Promise<void> {
    const app = held.app;
    const workflowId = await createWorkflow(app, {
      name: 'pause me',
      workflow_type: 'sequential',
      steps: [
        // Long enough that the pause surely lands while it sleeps, even on a busy machine.
        { id: 'wait', name: 'wait', step_type: 'delay', config: { seconds: 3 } },
        { id: 'next', name: 'next', step_type: 'noop', config: { done: true } },
      ],
    });
    const executionId = await startExecution(app, workflowId);
    if (waitUntilSleeping) {
      await waitForExecution(
        app,
        executionId,
        (execution) => ownRun(execution, 'wait').status === 'waiting',
        DEADLINE_MS,
      );
    }
    const pausedAt = Date.now();
    const paused = await app.inject({ method: 'POST', url: `/executions/${executionId}/pause` });
    expect(paused.statusCode, paused.body).toBe(200);
    expect(paused.json().status).toBe('paused');

    // Well past the moment the delay would have ended.
    await sleep(Math.max(0, pausedAt + 4000 - Date.now()));
    const holding = await getExecution(app, executionId);
    expect(holding.status).toBe('paused');
    expect(['pending', 'queued']).toContain(ownRun(holding, 'next').status);
    expect(ownRun(holding, 'next').started_at).toBeNull();
    expect(ownRun(holding, 'wait').status).not.toBe('completed');
    expectProblem(
      await app.inject({ method: 'POST', url: `/executions/${executionId}/pause` }),
      409,
    );

    const resumed = await app.inject({ method: 'POST', url: `/executions/${executionId}/resume` });
    expect(resumed.statusCode, resumed.body).toBe(200);
    // Resume leaves its decisions to an advance job, which a worker may already have run to
    // the end by the time the answer is read.
    expect(['running', 'waiting', 'completed']).toContain(resumed.json().status);
    const execution = await waitForExecution(app, executionId, undefined, DEADLINE_MS);
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(stepStatuses(execution)).toEqual({ wait: 'completed', next: 'completed' });
    expect(execution.output_data).toEqual({ done: true });
    expectProblem(
      await app.inject({ method: 'POST', url: `/executions/${executionId}/resume` }),
      409,
    );
  }

  it('holds the next step when paused right after start, and finishes after resume', async () => {
    await pauseAndResume(false);
  });

  it('holds a delay whose timer fires while paused, and finishes after resume', async () => {
    await pauseAndResume(true);
  });
});

describe('version pinning', () => {
  it('finishes a running execution with the definition it started with', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'pinned',
      workflow_type: 'sequential',
      steps: [
        { id: 'wait', name: 'wait', step_type: 'delay', config: { seconds: 2 } },
        { id: 'result', name: 'result', step_type: 'transform', config: { expression: '"v1"' } },
      ],
    });
    const firstId = await startExecution(ctx.app, workflowId);
    const updated = await ctx.app.inject({
      method: 'PUT',
      url: `/workflows/${workflowId}`,
      payload: {
        steps: [
          { id: 'other', name: 'other', step_type: 'noop' },
          { id: 'result', name: 'result', step_type: 'transform', config: { expression: '"v2"' } },
          {
            id: 'extra',
            name: 'extra',
            step_type: 'transform',
            config: { expression: '"v2-extra"' },
          },
        ],
      },
    });
    expect(updated.statusCode, updated.body).toBe(200);
    expect((await getExecution(ctx.app, firstId)).status).not.toBe('completed');

    const first = await waitForExecution(ctx.app, firstId, undefined, DEADLINE_MS);
    expect(first.status, JSON.stringify(first)).toBe('completed');
    expect(first.workflow_version).toBe(1);
    expect(first.steps.map((step) => step.step_id)).toEqual(['wait', 'result']);
    expect(first.output_data).toBe('v1');

    const second = await runToEnd(workflowId);
    expect(second.status, JSON.stringify(second)).toBe('completed');
    expect(second.workflow_version).toBe(2);
    expect(second.steps.map((step) => step.step_id)).toEqual(['other', 'result', 'extra']);
    expect(second.output_data).toBe('v2-extra');
  });
});

describe('execute', () => {
  const quickWorkflow = (name: string, extra: Record<string, unknown> = {}) => ({
    name,
    workflow_type: 'sequential',
    steps: [{ id: 'a', name: 'a', step_type: 'noop' }],
    ...extra,
  });

  it('returns the same execution for the same Idempotency-Key', async () => {
    const workflowId = await createWorkflow(ctx.app, quickWorkflow('idempotent'));
    const execute = (key: string) =>
      ctx.app.inject({
        method: 'POST',
        url: `/workflows/${workflowId}/execute`,
        payload: { input_data: { n: 1 } },
        headers: { 'idempotency-key': key },
      });
    const first = await execute('key-1');
    expect(first.statusCode, first.body).toBe(202);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const again = await execute('key-1');
    expect(again.statusCode, again.body).toBe(200);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.json().id).toBe(first.json().id);
    const other = await execute('key-2');
    expect(other.statusCode, other.body).toBe(202);
    expect(other.json().id).not.toBe(first.json().id);

    const concurrent = await Promise.all(Array.from({ length: 5 }, () => execute('key-3')));
    for (const response of concurrent)
      expect([200, 202], response.body).toContain(response.statusCode);
    expect(concurrent.filter((response) => response.statusCode === 202)).toHaveLength(1);
    expect(new Set(concurrent.map((response) => response.json().id)).size).toBe(1);

    const all = await listAll(`workflow_id=${workflowId}&limit=100`);
    expect(all).toHaveLength(3);
    for (const execution of all)
      await waitForExecution(ctx.app, execution.id, undefined, DEADLINE_MS);
  });

  it('pins the version current at each start, and refuses a workflow paused since the last', async () => {
    // A start tries the version its process saw last in one statement; a workflow that
    // changed since must neither run its old version nor start while paused.
    const workflowId = await createWorkflow(ctx.app, quickWorkflow('changing'));
    const execute = () =>
      ctx.app.inject({
        method: 'POST',
        url: `/workflows/${workflowId}/execute`,
        payload: { input_data: {} },
      });
    const update = (payload: Record<string, unknown>) =>
      ctx.app.inject({ method: 'PUT', url: `/workflows/${workflowId}`, payload });
    const first = await execute();
    expect(first.statusCode, first.body).toBe(202);
    expect(first.json().workflow_version).toBe(1);
    const put = await update({ description: 'version 2' });
    expect(put.statusCode, put.body).toBe(200);
    const second = await execute();
    expect(second.statusCode, second.body).toBe(202);
    expect(second.json().workflow_version).toBe(2);
    const pause = await update({ status: 'paused' });
    expect(pause.statusCode, pause.body).toBe(200);
    expectProblem(await execute(), 409);
    for (const response of [first, second]) {
      await waitForExecution(ctx.app, response.json().id, undefined, DEADLINE_MS);
    }
  });

  it('records when a step claimed inline started, also when it sleeps rather than completes', async () => {
    // `nap` is claimed inline by the worker that completes `first`; its claim leaves its start
    // open, and its record (a sleep, not a completion) must fill it in.
    const workflowId = await createWorkflow(ctx.app, {
      name: 'inline sleeper',
      workflow_type: 'sequential',
      steps: [
        { id: 'first', name: 'first', step_type: 'noop' },
        { id: 'nap', name: 'nap', step_type: 'delay', config: { seconds: 60 } },
      ],
    });
    const executionId = await startExecution(ctx.app, workflowId);
    const sleeping = await waitForExecution(
      ctx.app,
      executionId,
      (execution) => ownRun(execution, 'nap').status === 'waiting',
      DEADLINE_MS,
    );
    const napStarted = ownRun(sleeping, 'nap').started_at;
    expect(napStarted, JSON.stringify(sleeping)).not.toBeNull();
    expect(Date.parse(napStarted ?? '')).toBeGreaterThanOrEqual(
      Date.parse(ownRun(sleeping, 'first').completed_at ?? ''),
    );
    expect((await post(`/executions/${executionId}/cancel`)).statusCode).toBe(200);
  });

  it('answers 503 when the workflow changes under every try of a start, and starts nothing', async () => {
    // Each statement of the start is followed by a committed change of the workflow (a PUT
    // from another connection), so the version the start read is never the one it inserts.
    const workflowId = await createWorkflow(ctx.app, quickWorkflow('always changing'));
    let changes = 0;
    const changeWorkflow = async () => {
      changes += 1;
      const put = await ctx.app.inject({
        method: 'PUT',
        url: `/workflows/${workflowId}`,
        payload: { description: `change ${changes}` },
      });
      expect(put.statusCode, put.body).toBe(200);
    };
    const { state } = ctx.app.engineParts;
    const failure = await withTransaction(ctx.app.pg, async (tx) => {
      const query = tx.query.bind(tx) as (...args: unknown[]) => Promise<unknown>;
      const changing = {
        query: async (...args: unknown[]) => {
          const result = await query(...args);
          await changeWorkflow();
          return result;
        },
      } as unknown as Queryable;
      return state.start(changing, { workflowId, input: {}, idempotencyKey: null }).then(
        () => null,
        (error: unknown) => error,
      );
    });
    expect(failure).toMatchObject({ statusCode: 503, code: 'WF_ERR_DEPENDENCY_UNAVAILABLE' });
    expect(String(failure)).toContain('changing right now');
    expect(changes).toBeGreaterThanOrEqual(3);
    expect(await listAll(`workflow_id=${workflowId}`)).toEqual([]);
    // Once the workflow holds still, it starts.
    expect((await post(`/workflows/${workflowId}/execute`, { input_data: {} })).statusCode).toBe(
      202,
    );
  });

  it('answers 409 for paused and archived workflows and 404 for unknown ones', async () => {
    const pausedId = await createWorkflow(ctx.app, quickWorkflow('paused', { status: 'paused' }));
    expectProblem(await post(`/workflows/${pausedId}/execute`, { input_data: {} }), 409);

    const archivedId = await createWorkflow(ctx.app, quickWorkflow('to archive'));
    const archived = await ctx.app.inject({
      method: 'PUT',
      url: `/workflows/${archivedId}`,
      payload: { status: 'archived' },
    });
    expect(archived.statusCode, archived.body).toBe(200);
    expectProblem(await post(`/workflows/${archivedId}/execute`, { input_data: {} }), 409);

    expectProblem(await post('/workflows/wf_does_not_exist/execute', { input_data: {} }), 404);
    expect(await listAll(`workflow_id=${pausedId}`)).toEqual([]);
  });
});

describe('GET /executions', () => {
  it('filters by workflow and status and pages with a cursor', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'listed',
      workflow_type: 'sequential',
      steps: [{ id: 'a', name: 'a', step_type: 'noop' }],
    });
    const failingId = await createWorkflow(ctx.app, {
      name: 'listed failing',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'v',
          name: 'v',
          step_type: 'validate',
          config: { schema: { type: 'string' }, data: 1 },
        },
      ],
    });
    const started: string[] = [];
    for (let index = 0; index < 7; index += 1) {
      started.push(await startExecution(ctx.app, workflowId, { index }));
    }
    const failedId = await startExecution(ctx.app, failingId);
    for (const id of [...started, failedId]) {
      await waitForExecution(
        ctx.app,
        id,
        (execution) => ENDED.includes(execution.status),
        DEADLINE_MS,
      );
    }

    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const query: string = `workflow_id=${workflowId}&limit=3${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
      const response = await ctx.app.inject({ method: 'GET', url: `/executions?${query}` });
      expect(response.statusCode, response.body).toBe(200);
      const body = response.json() as {
        items: Array<{ id: string; workflow_id: string }>;
        next_cursor: string | null;
      };
      expect(body.items.length).toBeLessThanOrEqual(3);
      for (const item of body.items) expect(item.workflow_id).toBe(workflowId);
      seen.push(...body.items.map((item) => item.id));
      cursor = body.next_cursor;
      pages += 1;
    } while (cursor !== null && pages < 10);
    expect(pages).toBe(3);
    expect(new Set(seen).size).toBe(seen.length);
    expect([...seen].sort()).toEqual([...started].sort());
    // Newest first.
    expect(seen).toEqual([...started].reverse());

    const failed = await listAll(`workflow_id=${failingId}&status=failed`);
    expect(failed.map((execution) => execution.id)).toEqual([failedId]);
    expect(await listAll(`workflow_id=${failingId}&status=completed`)).toEqual([]);
    const completed = await listAll(`workflow_id=${workflowId}&status=completed&limit=100`);
    expect(completed).toHaveLength(7);
    expect(completed.every((execution) => execution.status === 'completed')).toBe(true);

    const badCursor = await ctx.app.inject({
      method: 'GET',
      url: '/executions?cursor=not-a-cursor',
    });
    expectProblem(badCursor, 400);
    const badStatus = await ctx.app.inject({ method: 'GET', url: '/executions?status=nope' });
    expectProblem(badStatus, 400);
    const unknown = await ctx.app.inject({ method: 'GET', url: '/executions/ex_does_not_exist' });
    expectProblem(unknown, 404);
  });
});
