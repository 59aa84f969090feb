import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { startRuntime } from '../../src/runtime.js';
import { CountingServer } from '../helpers/counting-server.js';
import { openSse, type SseMessage } from '../helpers/monitoring.js';
import { testEnvironment, useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  getExecution,
  startExecution,
  stepStatuses,
  waitForExecution,
  waitUntil,
} from '../helpers/workflows.js';

/**
 * GET /executions/{id}/stream against a real listening server (inject does not stream),
 * read with node's fetch.
 */

// MAX_STEPS above the worker's inline bound (100 steps per job), so a chain can pass it.
const CHAIN_STEPS = 150;
const ctx = useTestApp({
  HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1',
  STREAM_HEARTBEAT_MS: '300',
  MAX_STEPS: String(CHAIN_STEPS),
});

const server = new CountingServer();
for (let index = 0; index < 10; index += 1) {
  server.route(`/flaky-${index}`, (_request, response, call) => {
    response.writeHead(call === 1 ? 503 : 200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ call }));
  });
}
let upstream: string;
let base: string;
let flaky = 0;

beforeAll(async () => {
  upstream = await server.listen();
  base = await ctx.app.listen({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => {
  await server.close();
});

interface StreamEvent {
  kind: 'step' | 'execution';
  type: string;
  step_id?: string;
  status: string;
  attempt?: number;
}

const events = (messages: SseMessage[]) =>
  messages
    .filter((message) => message.event === 'step' || message.event === 'execution')
    .map((message) => JSON.parse(message.data) as StreamEvent);

/** The sequence of event types each step (or the execution, under '') went through. */
function byStep(list: StreamEvent[]): Record<string, string[]> {
  const result: Record<string, string[]> = {};
  for (const event of list) {
    const key = event.kind === 'execution' ? '' : (event.step_id as string);
    result[key] ??= [];
    result[key].push(event.type);
  }
  return result;
}

/** `step:type` of the step events, in order. */
const stepPath = (list: StreamEvent[]) =>
  list.filter((event) => event.kind === 'step').map((event) => `${event.step_id}:${event.type}`);

/**
 * The execution's own path: from `first` to `last`, in between only running <-> waiting (it
 * waits while every active step sleeps); which of those it takes is the engine's business.
 */
function expectExecutionPath(types: string[], first: string, last: string): void {
  expect(types[0]).toBe(first);
  expect(types[types.length - 1]).toBe(last);
  for (const type of types.slice(1, -1)) {
    expect(['execution.running', 'execution.waiting']).toContain(type);
  }
}

/** noop -> flaky http (one retry) -> 1 s delay (sleeps) -> skipped by its condition. */
async function richWorkflow(app: FastifyInstance): Promise<string> {
  flaky += 1;
  return createWorkflow(app, {
    name: `stream rich ${flaky}`,
    workflow_type: 'sequential',
    steps: [
      { id: 'a', name: 'A', step_type: 'noop' },
      {
        id: 'call',
        name: 'Call',
        step_type: 'http',
        config: { url: `${upstream}/flaky-${flaky}` },
        retry_count: 2,
        retry_backoff: { type: 'fixed', delay_ms: 10 },
      },
      { id: 'nap', name: 'Nap', step_type: 'delay', config: { seconds: 1 } },
      { id: 'never', name: 'Never', step_type: 'noop', condition: 'false' },
    ],
  });
}

/** a (noop) -> hold (1 s delay) -> c (noop); paused while `hold` sleeps, so tests can join. */
async function pausedExecution(app: FastifyInstance): Promise<string> {
  const workflowId = await createWorkflow(app, {
    name: 'stream pausable',
    workflow_type: 'sequential',
    steps: [
      { id: 'a', name: 'A', step_type: 'noop' },
      { id: 'hold', name: 'Hold', step_type: 'delay', config: { seconds: 1 } },
      { id: 'c', name: 'C', step_type: 'noop' },
    ],
  });
  const id = await startExecution(app, workflowId);
  await waitForExecution(app, id, (execution) => stepStatuses(execution).hold === 'waiting');
  const pause = await app.inject({ method: 'POST', url: `/executions/${id}/pause` });
  expect(pause.statusCode, pause.body).toBe(200);
  // Joining once all of it reached Redis, the client sees no change again after its snapshot.
  await relayed(app);
  return id;
}

/** Waits until every committed change has been relayed to Redis (the outbox is empty). */
async function relayed(app: FastifyInstance): Promise<void> {
  await waitUntil(async () => {
    const { rows } = await app.pg.query<{ count: number }>(
      'SELECT count(*)::int AS count FROM execution_event_outbox',
    );
    return rows[0]?.count === 0;
  }, 'the outbox is relayed');
}

async function resume(app: FastifyInstance, id: string): Promise<void> {
  const response = await app.inject({ method: 'POST', url: `/executions/${id}/resume` });
  expect(response.statusCode, response.body).toBe(200);
}

describe('GET /executions/{id}/stream', () => {
  it('delivers every transition of an execution, in order, and closes when it ends', async () => {
    const { app } = ctx;
    const id = await startExecution(app, await richWorkflow(app));
    // Last-Event-ID 0-0: everything from the start of the execution's log.
    const full = await openSse(`${base}/executions/${id}/stream`, { 'last-event-id': '0-0' });
    const live = await openSse(`${base}/executions/${id}/stream`);
    expect(full.status).toBe(200);
    expect(full.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(full.headers.get('cache-control')).toContain('no-cache');
    expect(full.headers.get('x-request-id')).toBeTruthy();

    const everything = await full.rest();
    const list = events(everything);
    const steps = byStep(list);
    expectExecutionPath(steps[''] ?? [], 'execution.running', 'execution.completed');
    expect({ ...steps, '': undefined }).toEqual({
      '': undefined,
      a: ['step.queued', 'step.running', 'step.completed'],
      call: ['step.queued', 'step.running', 'step.retrying', 'step.running', 'step.completed'],
      // A quick step made ready by a worker's commit is claimed in that commit: no queue.
      nap: ['step.running', 'step.waiting', 'step.running', 'step.completed'],
      never: ['step.skipped'],
    });
    // One step after the other, and the end last.
    const position = (stepId: string, type: string) =>
      list.findIndex((event) => event.step_id === stepId && event.type === type);
    expect(position('a', 'step.completed')).toBeLessThan(position('call', 'step.queued'));
    expect(position('call', 'step.completed')).toBeLessThan(position('nap', 'step.running'));
    expect(position('nap', 'step.completed')).toBeLessThan(position('never', 'step.skipped'));
    expect(list[list.length - 1]?.type).toBe('execution.completed');
    const retried = list.filter((event) => event.step_id === 'call' && event.status === 'running');
    expect(retried.map((event) => event.attempt)).toEqual([1, 2]);
    // Ids are the stream's, strictly increasing.
    const ids = everything.map((message) => message.id as string);
    const ordered = [...ids].sort((x, y) => {
      const [xm, xs] = x.split('-').map(BigInt) as [bigint, bigint];
      const [ym, ys] = y.split('-').map(BigInt) as [bigint, bigint];
      return xm === ym ? Number(xs - ys) : Number(xm - ym);
    });
    expect(ids).toEqual(ordered);
    expect(new Set(ids).size).toBe(ids.length);

    // A client that joined right after the start: a snapshot first, then the rest, ending in
    // the same state as the execution in Postgres.
    const joined = await live.rest();
    expect(joined[0]?.event).toBe('snapshot');
    const snapshot = JSON.parse(joined[0]?.data as string);
    expect(snapshot.execution.id).toBe(id);
    expect(snapshot.workflow.steps.map((step: { id: string }) => step.id)).toEqual([
      'a',
      'call',
      'nap',
      'never',
    ]);
    expect(snapshot.workflow.steps[1].depends_on).toEqual(['a']);
    const state: Record<string, string> = Object.fromEntries(
      (snapshot.execution.steps as Array<{ step_id: string; status: string }>).map((step) => [
        step.step_id,
        step.status,
      ]),
    );
    let status = snapshot.execution.status as string;
    for (const event of events(joined.slice(1))) {
      if (event.kind === 'execution') status = event.status;
      else state[event.step_id as string] = event.status;
    }
    const final = await getExecution(app, id);
    expect(status).toBe('completed');
    expect(state).toEqual(stepStatuses(final));
    expect(joined[joined.length - 1]?.event).toBe('execution');
  });

  it('runs a chain of quick steps inline, but sends it back through the queue past its bounds', async () => {
    const { app } = ctx;
    const workflowId = await createWorkflow(app, {
      name: 'long quick chain',
      workflow_type: 'sequential',
      steps: Array.from({ length: CHAIN_STEPS }, (_, index) => ({
        id: `s${index}`,
        name: `S${index}`,
        step_type: 'noop',
      })),
    });
    const id = await startExecution(app, workflowId);
    const full = await openSse(`${base}/executions/${id}/stream`, { 'last-event-id': '0-0' });
    const steps = byStep(events(await full.rest()));
    expectExecutionPath(steps[''] ?? [], 'execution.running', 'execution.completed');
    const ids = Array.from({ length: CHAIN_STEPS }, (_, index) => `s${index}`);
    for (const stepId of ids) expect(steps[stepId]?.at(-1), stepId).toBe('step.completed');
    // A step that went through the queue shows step.queued; one claimed inline does not.
    const queued = ids.filter((stepId) => steps[stepId]?.includes('step.queued'));
    expect(queued[0]).toBe('s0');
    // At most 100 steps (or 1 s) per job: the chain went back to the queue at least once.
    expect(queued.length).toBeGreaterThanOrEqual(2);
    // ...and most steps ran inline.
    expect(queued.length).toBeLessThan(CHAIN_STEPS / 2);
  });

  it('starts a client that connects mid-run with the current state, then every change', async () => {
    const { app } = ctx;
    const id = await pausedExecution(app);
    const client = await openSse(`${base}/executions/${id}/stream?access_token=ignored-when-open`);
    expect(client.status).toBe(200);
    const first = await client.next();
    expect(first?.event).toBe('snapshot');
    const snapshot = JSON.parse(first?.data as string);
    expect(snapshot.execution.status).toBe('paused');
    expect(stepStatuses(snapshot.execution)).toEqual({
      a: 'completed',
      hold: 'waiting',
      c: 'pending',
    });

    await resume(app, id);
    const rest = events(await client.rest());
    expect(stepPath(rest)).toEqual([
      'hold:step.running',
      'hold:step.completed',
      'c:step.running',
      'c:step.completed',
    ]);
    expectExecutionPath(byStep(rest)[''] ?? [], 'execution.running', 'execution.completed');
    expect(rest[rest.length - 1]?.type).toBe('execution.completed');
  });

  it('resumes from Last-Event-ID with exactly what the client missed', async () => {
    const { app } = ctx;
    const id = await pausedExecution(app);
    const first = await openSse(`${base}/executions/${id}/stream`);
    const snapshot = await first.next();
    expect(snapshot?.event).toBe('snapshot');
    await resume(app, id);
    // Read until the delay step runs again, then drop the connection.
    let seen = snapshot as SseMessage;
    for (;;) {
      const message = (await first.next()) as SseMessage;
      seen = message;
      const event = JSON.parse(message.data) as StreamEvent;
      if (event.step_id === 'hold' && event.status === 'running') break;
    }
    first.close();
    await waitForExecution(app, id);

    const again = await openSse(`${base}/executions/${id}/stream`, {
      'last-event-id': seen.id as string,
    });
    const missed = await again.rest();
    expect(missed.every((message) => message.event !== 'snapshot')).toBe(true);

    const log = await (
      await openSse(`${base}/executions/${id}/stream`, { 'last-event-id': '0-0' })
    ).rest();
    const expected = log.slice(log.findIndex((message) => message.id === seen.id) + 1);
    expect(missed.map((message) => message.id)).toEqual(expected.map((message) => message.id));
    expect(stepPath(events(missed))).toEqual([
      'hold:step.completed',
      'c:step.running',
      'c:step.completed',
    ]);
    expect(events(missed).pop()?.type).toBe('execution.completed');

    // After the final event there is nothing more: 204 tells EventSource to stop.
    const done = await fetch(`${base}/executions/${id}/stream`, {
      headers: { 'last-event-id': missed[missed.length - 1]?.id as string },
    });
    expect(done.status).toBe(204);
    // An id the log does not hold (any more): a fresh snapshot instead of a gap.
    const unknown = await openSse(`${base}/executions/${id}/stream?last_event_id=1-0`);
    const resync = await unknown.rest();
    expect(resync.map((message) => message.event)).toEqual(['snapshot']);
  });

  it('sends heartbeats while idle and leaks no subscription when clients leave', async () => {
    const { app } = ctx;
    const id = await pausedExecution(app);
    const clients = await Promise.all(
      [1, 2, 3].map(() => openSse(`${base}/executions/${id}/stream`)),
    );
    for (const client of clients) expect((await client.next())?.event).toBe('snapshot');
    await waitUntil(() => clients[0]?.comments().includes('heartbeat') === true, 'a heartbeat');
    expect(app.executionEventHub.listenerCount()).toBe(3);
    for (const client of clients) client.close();
    await waitUntil(() => app.executionEventHub.listenerCount() === 0, 'listeners are gone');
    await waitUntil(
      async () =>
        (await app.inject({ method: 'GET', url: '/metrics' })).body.includes(
          'workflow_execution_stream_clients 0',
        ),
      'the client gauge is back to 0',
    );
    await app.inject({ method: 'POST', url: `/executions/${id}/cancel` });
  });

  it('sends the final state of an ended execution and closes', async () => {
    const { app } = ctx;
    const workflowId = await createWorkflow(app, {
      name: 'stream ended',
      workflow_type: 'sequential',
      steps: [{ id: 'a', name: 'A', step_type: 'noop' }],
    });
    const id = await startExecution(app, workflowId);
    await waitForExecution(app, id);
    const messages = await (await openSse(`${base}/executions/${id}/stream`)).rest();
    expect(messages.map((message) => message.event)).toEqual(['snapshot']);
    expect(JSON.parse(messages[0]?.data as string).execution.status).toBe('completed');
  });

  it('answers 404 problem details for an unknown execution', async () => {
    const response = await fetch(`${base}/executions/ex_nope/stream`);
    expect(response.status).toBe(404);
    expect(response.headers.get('content-type')).toContain('application/problem+json');
    expect(await response.json()).toMatchObject({ code: 'WF_ERR_EXECUTION_NOT_FOUND' });
  });

  describe('from another API process', () => {
    let other: FastifyInstance | undefined;
    afterAll(async () => {
      await other?.close();
    });

    it('streams executions that a different process runs', async () => {
      other = await buildApp(
        loadConfig(testEnvironment(ctx.database, ctx.prefix, { SERVICE_ROLE: 'api' })),
      );
      await other.ready();
      await startRuntime(other);
      const otherBase = await other.listen({ port: 0, host: '127.0.0.1' });
      const id = await pausedExecution(ctx.app);
      const client = await openSse(`${otherBase}/executions/${id}/stream`);
      expect((await client.next())?.event).toBe('snapshot');
      await resume(ctx.app, id);
      const rest = events(await client.rest());
      expect(rest[rest.length - 1]?.type).toBe('execution.completed');
      expect(rest.some((event) => event.step_id === 'c' && event.type === 'step.completed')).toBe(
        true,
      );
    });
  });
});
