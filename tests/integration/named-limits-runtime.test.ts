import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Diagnosis } from '../../src/schemas/diagnosis.js';
import type { LimitView } from '../../src/schemas/limits.js';
import { useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  startExecution,
  waitForExecution,
  waitUntil,
} from '../helpers/workflows.js';

/**
 * Named limits at run time (issue 14, "Named limits"): a step over its limit waits holding no
 * worker and says which limit and key; a freed slot lets the next run go; a rate gives tokens
 * per period. The peer the steps call holds each request until the test lets it go, so what
 * holds a slot is certain without timing.
 */

const ctx = useTestApp({ HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1' });
let peer: Server;
let baseUrl: string;
/** Requests the peer holds, by path, and the most it held at once, by path. */
const held = new Map<string, ServerResponse[]>();
const most = new Map<string, number>();
const callTimes: number[] = [];

beforeAll(async () => {
  peer = createServer((request: IncomingMessage, response: ServerResponse) => {
    const path = (request.url ?? '/').split('?')[0] as string;
    callTimes.push(Date.now());
    if (path.startsWith('/free')) {
      response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      return;
    }
    const list = held.get(path) ?? [];
    list.push(response);
    held.set(path, list);
    most.set(path, Math.max(most.get(path) ?? 0, list.length));
  });
  await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(peer.address() as AddressInfo).port}`;
});

afterAll(async () => {
  peer.closeAllConnections();
  await new Promise((resolve) => peer.close(resolve));
});

/** Answers every request the peer holds at `path`. */
function release(path: string): number {
  const list = held.get(path) ?? [];
  held.set(path, []);
  for (const response of list) response.writeHead(200).end('{"ok":true}');
  return list.length;
}

async function putLimit(name: string, body: Record<string, unknown>): Promise<void> {
  const response = await ctx.app.inject({ method: 'PUT', url: `/limits/${name}`, payload: body });
  expect([200, 201], response.body).toContain(response.statusCode);
}

async function limitView(name: string): Promise<LimitView> {
  const response = await ctx.app.inject({ method: 'GET', url: `/limits/${name}` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<LimitView>();
}

async function diagnosis(id: string): Promise<Diagnosis> {
  const response = await ctx.app.inject({ method: 'GET', url: `/executions/${id}/diagnosis` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json<Diagnosis>();
}

function callingWorkflow(name: string, path: string, limits: unknown[]): Promise<string> {
  return createWorkflow(ctx.app, {
    name,
    workflow_type: 'sequential',
    steps: [
      { id: 'call', name: 'Call', step_type: 'http', config: { url: `${baseUrl}${path}` }, limits },
    ],
  });
}

const ended = (id: string) => waitForExecution(ctx.app, id, undefined, 30_000);

describe('named limits at run time', () => {
  it('max_concurrent 2 shared by two workflows: the third run waits, then takes the freed slot', async () => {
    await putLimit('payments', { max_concurrent: 2 });
    const first = await callingWorkflow('charges', '/pay', [{ name: 'payments' }]);
    const second = await callingWorkflow('refunds', '/pay', [{ name: 'payments' }]);
    const ids = [
      await startExecution(ctx.app, first),
      await startExecution(ctx.app, second),
      await startExecution(ctx.app, first),
      await startExecution(ctx.app, second),
    ];
    await waitUntil(async () => (held.get('/pay') ?? []).length === 2, 'two calls in flight');
    const usage = await limitView('payments');
    await waitUntil(async () => (await limitView('payments')).waiting === 2, 'two runs waiting');
    expect(usage.in_use).toBe(2);
    const waiting: Diagnosis[] = [];
    for (const id of ids) {
      const why = await diagnosis(id);
      if (why.steps[0]?.status === 'waiting') waiting.push(why);
    }
    expect(waiting).toHaveLength(2);
    expect(waiting[0]?.steps[0]?.blocked_by).toEqual({
      kind: 'concurrency',
      limit: 'named_limit',
      name: 'payments',
      key: null,
      in_use: 2,
      max: 2,
      waiting: 1,
    });
    expect(waiting[0]?.steps[0]?.summary).toBe('waits for a slot of limit payments: 2 of 2 in use');
    // Each slot freed lets exactly one waiting run in.
    expect(release('/pay')).toBe(2);
    await waitUntil(async () => (held.get('/pay') ?? []).length === 2, 'the waiting runs called');
    expect(release('/pay')).toBe(2);
    for (const id of ids) expect((await ended(id)).status).toBe('completed');
    expect(most.get('/pay')).toBe(2);
    expect((await limitView('payments')).in_use).toBe(0);
  });

  it('gives each key value its own budget, and a failing key the "__error__" one', async () => {
    await putLimit('per-account', { max_concurrent: 1 });
    const workflowId = await callingWorkflow('per account', '/account', [
      { name: 'per-account', key: 'input.account' },
    ]);
    const a1 = await startExecution(ctx.app, workflowId, { account: 'a' });
    const b1 = await startExecution(ctx.app, workflowId, { account: 'b' });
    await waitUntil(async () => (held.get('/account') ?? []).length === 2, 'a and b in flight');
    const a2 = await startExecution(ctx.app, workflowId, { account: 'a' });
    await waitUntil(
      async () => (await diagnosis(a2)).steps[0]?.blocked_by?.kind === 'concurrency',
      'a2 waits for the slot of key a',
    );
    expect((await diagnosis(a2)).steps[0]?.blocked_by).toMatchObject({
      name: 'per-account',
      key: 'a',
    });
    const keys = (await limitView('per-account')).keys;
    expect(keys).toEqual(
      expect.arrayContaining([
        { key: 'a', in_use: 1, waiting: 1 },
        { key: 'b', in_use: 1, waiting: 0 },
      ]),
    );
    const broken = await startExecution(ctx.app, workflowId, {});
    await waitUntil(
      async () => (held.get('/account') ?? []).length === 3,
      'the unkeyed run called',
    );
    expect((await limitView('per-account')).keys).toEqual(
      expect.arrayContaining([{ key: '__error__', in_use: 1, waiting: 0 }]),
    );
    release('/account');
    await waitUntil(async () => (held.get('/account') ?? []).length === 1, 'a2 called');
    release('/account');
    for (const id of [a1, b1, a2, broken]) expect((await ended(id)).status).toBe('completed');
  });

  it('a rate gives its tokens per period; a run without one waits for the next', async () => {
    await putLimit('partner-api', { rate: { limit: 2, period_seconds: 2 } });
    const workflowId = await callingWorkflow('rated', '/free/rated', [{ name: 'partner-api' }]);
    const before = callTimes.length;
    const ids: string[] = [];
    for (let index = 0; index < 5; index += 1) ids.push(await startExecution(ctx.app, workflowId));
    let eta: string | undefined;
    await waitUntil(async () => {
      for (const id of ids) {
        const blocked = (await diagnosis(id)).steps[0]?.blocked_by;
        if (blocked?.kind === 'rate_limit') {
          expect(blocked).toMatchObject({
            name: 'partner-api',
            key: null,
            limit: 2,
            period_seconds: 2,
          });
          eta = blocked.eta;
          return true;
        }
      }
      return false;
    }, 'a run waits for a token');
    for (const id of ids) expect((await ended(id)).status).toBe('completed');
    // 2 tokens per 2 s window: 5 calls need three windows, so the last came at least one
    // whole window after the first (a bound from the token count, not a speed).
    const calls = callTimes.slice(before).sort((a, b) => a - b);
    expect(calls).toHaveLength(5);
    expect(Date.parse(eta as string)).toBeGreaterThan(calls[0] as number);
    expect((calls[4] as number) - (calls[0] as number)).toBeGreaterThanOrEqual(2000);
  });
});
