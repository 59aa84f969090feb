import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Diagnosis } from '../../src/schemas/diagnosis.js';
import { useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  startExecution,
  waitForExecution,
  waitUntil,
} from '../helpers/workflows.js';

/** GET /executions/{id}/diagnosis: why each unfinished step run is not running now. */

const ctx = useTestApp({ HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1' });
let failing: Server;
let failingUrl: string;

beforeAll(async () => {
  // A peer that always answers 500: its http step retries after a long backoff.
  failing = createServer((_request, response) => response.writeHead(500).end('down'));
  await new Promise<void>((resolve) => failing.listen(0, '127.0.0.1', resolve));
  failingUrl = `http://127.0.0.1:${(failing.address() as AddressInfo).port}/pay`;
});

afterAll(async () => {
  failing.closeAllConnections();
  await new Promise((resolve) => failing.close(resolve));
});

async function diagnosis(id: string): Promise<Diagnosis> {
  const response = await ctx.app.inject({ method: 'GET', url: `/executions/${id}/diagnosis` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Diagnosis;
}

/** Polls the diagnosis until `step` has a reason of `kind`. */
async function blockedAs(id: string, step: string, kind: string): Promise<Diagnosis> {
  let last: Diagnosis | undefined;
  await waitUntil(
    async () => {
      last = await diagnosis(id);
      return last.steps.some((entry) => entry.step_id === step && entry.blocked_by?.kind === kind);
    },
    `${step} blocked by ${kind}: ${JSON.stringify(last)}`,
  );
  return last as Diagnosis;
}

const stepOf = (answer: Diagnosis, id: string) => answer.steps.find((step) => step.step_id === id);

describe('GET /executions/{id}/diagnosis', () => {
  it('names the timer, the dependency and the event a run waits for', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'waits',
      workflow_type: 'parallel',
      steps: [
        { id: 'nap', name: 'Nap', step_type: 'delay', config: { seconds: 600 } },
        { id: 'after', name: 'After', step_type: 'noop', dependencies: ['nap'] },
        {
          id: 'paid',
          name: 'Paid',
          step_type: 'wait_for_event',
          config: { event: 'payment.received', correlation_key: '{% input.order %}' },
        },
      ],
    });
    const id = await startExecution(ctx.app, workflowId, { order: 'o-17' });
    const answer = await blockedAs(id, 'paid', 'event');
    await blockedAs(id, 'nap', 'timer');
    const final = await diagnosis(id);
    const nap = stepOf(final, 'nap')?.blocked_by as { kind: string; eta: string };
    expect(nap.kind).toBe('timer');
    expect(Date.parse(nap.eta)).toBeGreaterThan(Date.now() + 500_000);
    expect(stepOf(final, 'after')?.blocked_by).toEqual({
      kind: 'dependency',
      dependencies: ['nap'],
    });
    expect(stepOf(answer, 'paid')?.blocked_by).toEqual({
      kind: 'event',
      event: 'payment.received',
      correlation_key: 'o-17',
    });
    expect(final.summary).toContain('nothing runs now');
    expect(final.blocked_by).toBeNull();
  });

  it('says when no worker polls for an external task, and when one did', async () => {
    const unpolledType = `ocr-${Date.now()}`;
    const polledType = `sign-${Date.now()}`;
    const poll = (stepType: string) =>
      ctx.app.inject({
        method: 'POST',
        url: '/tasks/poll',
        payload: { worker_id: 'w-1', step_types: [stepType], max_tasks: 1, wait_seconds: 0 },
      });
    // A worker polls for one type before any task of it exists.
    expect((await poll(polledType)).statusCode).toBe(200);
    const workflowId = await createWorkflow(ctx.app, {
      name: 'external',
      workflow_type: 'parallel',
      steps: [
        { id: 'scan', name: 'Scan', step_type: unpolledType, config: {} },
        { id: 'sign', name: 'Sign', step_type: polledType, config: {} },
      ],
    });
    const id = await startExecution(ctx.app, workflowId);
    await blockedAs(id, 'scan', 'external_task');
    const answer = await blockedAs(id, 'sign', 'external_task');
    expect(stepOf(answer, 'scan')?.blocked_by).toEqual({
      kind: 'external_task',
      step_type: unpolledType,
      last_poll_at: null,
      no_worker: true,
    });
    expect(stepOf(answer, 'sign')?.blocked_by).toMatchObject({
      kind: 'external_task',
      step_type: polledType,
      no_worker: false,
    });
    expect(stepOf(answer, 'scan')?.summary).toContain('no worker has polled');
    // Claimed, the task runs on that worker.
    expect((await poll(polledType)).statusCode).toBe(200);
    const claimed = await diagnosis(id);
    expect(stepOf(claimed, 'sign')).toMatchObject({ status: 'running', blocked_by: null });
    expect(stepOf(claimed, 'sign')?.summary).toContain('held by worker w-1');
  });

  it('shows a retry backoff with its next attempt and last error', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'retrying',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'charge',
          name: 'Charge',
          step_type: 'http',
          config: { url: failingUrl },
          retry_count: 3,
          retry_backoff: { type: 'fixed', delay_ms: 600_000, max_delay_ms: 600_000 },
        },
      ],
    });
    const id = await startExecution(ctx.app, workflowId);
    const answer = await blockedAs(id, 'charge', 'retry_backoff');
    const blocked = stepOf(answer, 'charge')?.blocked_by as {
      attempt: number;
      eta: string;
      last_error: string;
    };
    expect(blocked.attempt).toBe(2);
    // Fixed backoff jitters by ±20%: 600 s waits at least 480 s.
    expect(Date.parse(blocked.eta)).toBeGreaterThan(Date.now() + 400_000);
    expect(blocked.last_error).toContain('500');
  });

  it('counts a fan-out held by its for_each_concurrency, and a paused execution', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'fan-out of naps',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'each',
          name: 'Each',
          step_type: 'delay',
          config: { seconds: 600 },
          for_each: '[1..30]',
          for_each_concurrency: 4,
        },
      ],
    });
    const id = await startExecution(ctx.app, workflowId);
    const answer = await blockedAs(id, 'each', 'concurrency');
    expect(stepOf(answer, 'each')?.blocked_by).toEqual({
      kind: 'concurrency',
      limit: 'for_each_concurrency',
      in_use: 4,
      max: 4,
      waiting: 26,
    });
    const paused = await ctx.app.inject({ method: 'POST', url: `/executions/${id}/pause` });
    expect(paused.statusCode, paused.body).toBe(200);
    const held = await diagnosis(id);
    expect(held.blocked_by).toEqual({ kind: 'paused' });
    expect(held.summary).toContain('paused');
    await ctx.app.inject({ method: 'POST', url: `/executions/${id}/cancel` });
    await waitForExecution(ctx.app, id);
    const ended = await diagnosis(id);
    expect(ended).toMatchObject({ status: 'cancelled', blocked_by: null, steps: [] });
  });

  it('answers 404 for an unknown execution', async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/executions/ex_nope/diagnosis' });
    expect(response.statusCode).toBe(404);
    expect(response.headers['content-type']).toContain('application/problem+json');
  });
});
