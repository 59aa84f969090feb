import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createKey, epoch, signJwt, TEST_JWT_SECRET, untilReady } from '../helpers/security.js';
import { type ServiceProcess, startServiceProcess } from '../helpers/service-process.js';
import { testEnvironment, useTestApp } from '../helpers/test-app.js';

const LIMIT = 5;
const IP_LIMIT = 3;
const ctx = useTestApp({
  AUTH_MODE: 'both',
  JWT_SECRET: TEST_JWT_SECRET,
  RATE_LIMIT_MAX: String(LIMIT),
  RATE_LIMIT_IP_MAX: String(IP_LIMIT),
  // A window far longer than the test: no count may reset in the middle of an assertion.
  RATE_LIMIT_WINDOW_MS: '600000',
});

beforeAll(async () => {
  await untilReady(
    async () => (await ctx.app.inject({ method: 'GET', url: '/health/ready' })).statusCode,
  );
});

async function burst(
  app: FastifyInstance,
  count: number,
  headers: Record<string, string>,
  remoteAddress = '127.0.0.1',
) {
  const responses = [];
  for (let index = 0; index < count; index++) {
    responses.push(await app.inject({ method: 'GET', url: '/workflows', headers, remoteAddress }));
  }
  return responses;
}

describe('per-caller limits in one process', () => {
  it('serves exactly the limit, then 429 problem details with Retry-After', async () => {
    const { key } = await createKey(ctx.app, 'viewer', 'burst');
    const responses = await burst(ctx.app, LIMIT * 10, { 'x-api-key': key });
    const ok = responses.filter((response) => response.statusCode === 200);
    expect(ok).toHaveLength(LIMIT);
    expect(responses.slice(0, LIMIT).every((response) => response.statusCode === 200)).toBe(true);
    expect(ok.map((response) => response.headers['ratelimit-remaining'])).toEqual([
      '4',
      '3',
      '2',
      '1',
      '0',
    ]);
    for (const response of responses.slice(LIMIT)) {
      expect(response.statusCode).toBe(429);
      expect(response.headers['content-type']).toContain('application/problem+json');
      const retryAfter = Number(response.headers['retry-after']);
      expect(retryAfter).toBeGreaterThanOrEqual(1);
      expect(retryAfter).toBeLessThanOrEqual(600);
      expect(response.headers['ratelimit-limit']).toBe(String(LIMIT));
      expect(response.headers['ratelimit-remaining']).toBe('0');
      expect(response.json()).toMatchObject({ status: 429, code: 'WF_ERR_RATE_LIMITED' });
    }
  });

  it('gives every caller its own budget; probes are never limited', async () => {
    const first = await createKey(ctx.app, 'viewer', 'first');
    const second = await createKey(ctx.app, 'viewer', 'second');
    await burst(ctx.app, LIMIT + 2, { 'x-api-key': first.key });
    const other = await burst(ctx.app, 1, { 'x-api-key': second.key });
    expect(other[0]?.statusCode).toBe(200);
    for (let index = 0; index < LIMIT * 4; index++) {
      const probe = await ctx.app.inject({ method: 'GET', url: '/health/live' });
      expect(probe.statusCode).toBe(200);
    }
  });

  it('counts a token subject once, whichever of its tokens is used', async () => {
    const token = (n: number) =>
      signJwt(
        { sub: 'dave', roles: ['viewer'], exp: epoch(600), jti: `t${n}` },
        { alg: 'HS256', secret: TEST_JWT_SECRET },
      );
    const statuses: number[] = [];
    for (let index = 0; index < LIMIT * 2; index++) {
      const [response] = await burst(ctx.app, 1, { authorization: `Bearer ${token(index)}` });
      statuses.push(response?.statusCode ?? 0);
    }
    expect(statuses.filter((status) => status === 200)).toHaveLength(LIMIT);
  });

  it('limits unauthenticated and failed requests per address, never a valid credential', async () => {
    const address = '192.0.2.10';
    const { key } = await createKey(ctx.app, 'viewer', 'same address');
    const failures = await burst(ctx.app, IP_LIMIT * 3, { 'x-api-key': 'wfk_guess' }, address);
    expect(failures.filter((response) => response.statusCode === 401)).toHaveLength(IP_LIMIT);
    expect(failures.slice(IP_LIMIT).every((response) => response.statusCode === 429)).toBe(true);
    expect(failures.at(-1)?.headers['retry-after']).toBeDefined();
    const anonymous = await burst(ctx.app, 1, {}, address);
    expect(anonymous[0]?.statusCode).toBe(429);
    // That address has used up its failures, but only failures count: a valid key passes.
    const valid = await burst(ctx.app, 1, { 'x-api-key': key }, address);
    expect(valid[0]?.statusCode).toBe(200);
    // So does a valid JWT from the same address (a NAT neighbour).
    const jwt = signJwt(
      { sub: 'neighbour', roles: ['viewer'], exp: epoch(600) },
      { alg: 'HS256', secret: TEST_JWT_SECRET },
    );
    const neighbour = await burst(ctx.app, 1, { authorization: `Bearer ${jwt}` }, address);
    expect(neighbour[0]?.statusCode).toBe(200);
    // Other addresses are unaffected.
    const elsewhere = await burst(ctx.app, 1, { 'x-api-key': key }, '192.0.2.11');
    expect(elsewhere[0]?.statusCode).toBe(200);
  });
});

describe('across two service processes sharing Redis', () => {
  const processes: ServiceProcess[] = [];
  const ports: number[] = [];
  const SHARED_LIMIT = 10;

  beforeAll(async () => {
    const env = testEnvironment(ctx.database, ctx.prefix, {
      AUTH_MODE: 'api-key',
      RATE_LIMIT_MAX: String(SHARED_LIMIT),
      RATE_LIMIT_WINDOW_MS: '600000',
      SERVICE_ROLE: 'api',
      LOG_LEVEL: 'info',
    });
    for (let index = 0; index < 2; index++) {
      const service = await startServiceProcess(env, 'Server listening at');
      processes.push(service);
      const match = /Server listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(service.output());
      if (!match?.[1]) throw new Error(`no port in:\n${service.output()}`);
      ports.push(Number(match[1]));
    }
    for (const port of ports) {
      await untilReady(async () => (await fetch(`http://127.0.0.1:${port}/health/ready`)).status);
    }
  }, 60_000);

  afterAll(async () => {
    await Promise.all(processes.map((service) => service.kill('SIGTERM')));
  });

  it('serves exactly the limit in total, then 429 with Retry-After from both', async () => {
    const { key } = await createKey(ctx.app, 'viewer', 'two processes');
    const results: Array<{ port: number; status: number; retryAfter: string | null }> = [];
    for (let index = 0; index < SHARED_LIMIT * 10; index++) {
      const port = ports[index % 2] as number;
      const response = await fetch(`http://127.0.0.1:${port}/workflows`, {
        headers: { 'x-api-key': key },
      });
      await response.arrayBuffer();
      results.push({
        port,
        status: response.status,
        retryAfter: response.headers.get('retry-after'),
      });
    }
    const ok = results.filter((result) => result.status === 200);
    expect(ok).toHaveLength(SHARED_LIMIT);
    expect(new Set(ok.map((result) => result.port)).size).toBe(2);
    const limited = results.filter((result) => result.status !== 200);
    expect(limited.every((result) => result.status === 429 && Number(result.retryAfter) >= 1)).toBe(
      true,
    );
    expect(new Set(limited.map((result) => result.port)).size).toBe(2);
  });

  it('never writes a credential to the logs', async () => {
    const { key } = await createKey(ctx.app, 'viewer', 'log check');
    const port = ports[0] as number;
    await (
      await fetch(`http://127.0.0.1:${port}/workflows`, { headers: { 'x-api-key': key } })
    ).arrayBuffer();
    await (
      await fetch(`http://127.0.0.1:${port}/workflows`, {
        headers: { authorization: `Bearer ${key}` },
      })
    ).arrayBuffer();
    const stream = await fetch(
      `http://127.0.0.1:${port}/executions/ex_none/stream?access_token=${key}`,
    );
    await stream.body?.cancel();
    await (
      await fetch(`http://127.0.0.1:${port}/workflows?access_token=${key}&limit=1`)
    ).arrayBuffer();
    const secret = key.slice(-43);
    // Give the logger a moment to flush the last lines.
    await new Promise((resolve) => setTimeout(resolve, 200));
    const output = processes.map((service) => service.output()).join('\n');
    expect(output).toContain('access_token=[redacted]');
    expect(output).not.toContain(secret);
  });
});
