import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { startRuntime } from '../../src/runtime.js';
import { createKey, TEST_JWT_SECRET, tokenFor, untilReady } from '../helpers/security.js';
import { deleteRedisPrefix, testEnvironment, useTestApp } from '../helpers/test-app.js';

const IP_LIMIT = 100;
const ctx = useTestApp({
  AUTH_MODE: 'both',
  JWT_SECRET: TEST_JWT_SECRET,
  RATE_LIMIT_IP_MAX: String(IP_LIMIT),
  // A window far longer than the test: no count may reset in the middle of an assertion.
  RATE_LIMIT_WINDOW_MS: '600000',
});

/** Shaped like one of ours, so it costs a lookup, but no row has it. */
function guessedKey(): string {
  return `wfk_${randomBytes(8).toString('hex')}_${randomBytes(32).toString('base64url')}`;
}

beforeAll(async () => {
  await untilReady(
    async () => (await ctx.app.inject({ method: 'GET', url: '/health/ready' })).statusCode,
  );
});

describe('no lockout of valid credentials', () => {
  const address = '192.0.2.30';
  const get = (url: string, headers: Record<string, string>) =>
    ctx.app.inject({ method: 'GET', url, headers, remoteAddress: address });

  it('serves a valid key or token from an address that keeps failing; refuses its failures', async () => {
    const admin = await createKey(ctx.app, 'admin', 'lockout admin');
    const statuses: number[] = [];
    for (let index = 0; index < 150; index++) {
      const key = index % 3 === 0 ? 'wfk_malformed' : guessedKey();
      statuses.push((await get('/workflows', { 'x-api-key': key })).statusCode);
    }
    expect(statuses.slice(0, IP_LIMIT).every((status) => status === 401)).toBe(true);
    expect(statuses.slice(IP_LIMIT).every((status) => status === 429)).toBe(true);

    // Never used before (nothing cached) and then again (cached): both served.
    expect((await get('/api-keys', { 'x-api-key': admin.key })).statusCode).toBe(200);
    expect((await get('/api-keys', { authorization: `Bearer ${admin.key}` })).statusCode).toBe(200);
    expect(
      (await get('/api-keys', { authorization: `Bearer ${tokenFor('admin')}` })).statusCode,
    ).toBe(200);

    const bad = await get('/workflows', { 'x-api-key': guessedKey() });
    expect(bad.statusCode).toBe(429);
    expect(bad.json()).toMatchObject({ status: 429, code: 'WF_ERR_RATE_LIMITED' });
    const retryAfter = Number(bad.headers['retry-after']);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(600);
    expect((await get('/workflows', {})).statusCode).toBe(429);
    expect((await get('/workflows', { authorization: 'Bearer not.a.jwt' })).statusCode).toBe(429);
    // The valid key's requests did not lift the address's refusal either.
    expect((await get('/workflows', { 'x-api-key': guessedKey() })).statusCode).toBe(429);
  });

  it('trusts a cached key only with its own secret, and forgets it when revoked', async () => {
    const { id, key } = await createKey(ctx.app, 'viewer', 'cached');
    const other = '198.51.100.40';
    const call = (credential: string) =>
      ctx.app.inject({
        method: 'GET',
        url: '/workflows',
        headers: { 'x-api-key': credential },
        remoteAddress: other,
      });
    expect((await call(key)).statusCode).toBe(200);
    // Kept in Redis by hash for a few seconds, never as the key itself.
    const redis = new Redis(inject('redisUrl'));
    try {
      const cacheKey = `${ctx.prefix}:apikeys:verified:${id}`;
      const cached = await redis.get(cacheKey);
      expect(cached).toContain('"role":"viewer"');
      expect(cached).not.toContain(key.slice(-43));
      expect(await redis.pttl(cacheKey)).toBeGreaterThan(0);
      expect(await redis.pttl(cacheKey)).toBeLessThanOrEqual(10_000);
    } finally {
      redis.disconnect();
    }
    // Same id, another secret: the cache must not vouch for it.
    const forged = `${key.slice(0, 21)}${randomBytes(32).toString('base64url')}`;
    expect((await call(forged)).statusCode).toBe(401);
    await ctx.app.apiKeys.revoke(id);
    expect((await call(key)).statusCode).toBe(401);
  });
});

interface Listening {
  app: FastifyInstance;
  url: string;
  prefix: string;
}

/** A second service on the same database, listening on loopback with a budget of 3 failures. */
async function listen(overrides: Record<string, string>): Promise<Listening> {
  const prefix = `${ctx.prefix}x${randomBytes(3).toString('hex')}`;
  const config = loadConfig(
    testEnvironment(ctx.database, prefix, {
      AUTH_MODE: 'api-key',
      SERVICE_ROLE: 'api',
      RATE_LIMIT_IP_MAX: '3',
      RATE_LIMIT_WINDOW_MS: '600000',
      ...overrides,
    }),
  );
  const app = await buildApp(config);
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  await startRuntime(app);
  await untilReady(async () => (await fetch(`${url}/health/ready`)).status);
  return { app, url, prefix };
}

async function stop(service: Listening | undefined): Promise<void> {
  if (service === undefined) return;
  service.app.lifecycle.shuttingDown = true;
  await service.app.close();
  await deleteRedisPrefix(service.prefix);
}

async function attempt(service: Listening, forwardedFor: string, key = guessedKey()) {
  const response = await fetch(`${service.url}/workflows`, {
    headers: { 'x-api-key': key, 'x-forwarded-for': forwardedFor },
  });
  await response.arrayBuffer();
  return { status: response.status, retryAfter: response.headers.get('retry-after') };
}

describe.each([
  ['a CIDR', '127.0.0.1/8'],
  ['a hop count', '1'],
])('TRUST_PROXY as %s', (_kind, setting) => {
  let service: Listening | undefined;
  beforeAll(async () => {
    service = await listen({ TRUST_PROXY: setting });
  }, 30_000);
  afterAll(() => stop(service));

  it('gives each forwarded client address its own failure budget', async () => {
    if (service === undefined) throw new Error('not started');
    const first: number[] = [];
    for (let index = 0; index < 3; index++) {
      first.push((await attempt(service, '198.51.100.1')).status);
    }
    expect(first).toEqual([401, 401, 401]);
    const over = await attempt(service, '198.51.100.1');
    expect(over.status).toBe(429);
    expect(Number(over.retryAfter)).toBeGreaterThanOrEqual(1);
    // The next client behind the same proxy is not punished for the first one's failures.
    expect((await attempt(service, '198.51.100.2')).status).toBe(401);
    // Nor is a valid key of the first one.
    const { key } = await createKey(ctx.app, 'viewer', `behind proxy ${setting}`);
    expect((await attempt(service, '198.51.100.1', key)).status).toBe(200);
  });
});

describe('without TRUST_PROXY', () => {
  let service: Listening | undefined;
  beforeAll(async () => {
    service = await listen({});
  }, 30_000);
  afterAll(() => stop(service));

  it('ignores X-Forwarded-For: every claimed address shares the peer address budget', async () => {
    if (service === undefined) throw new Error('not started');
    const statuses: number[] = [];
    for (const forwardedFor of ['198.51.100.1', '198.51.100.2', '198.51.100.3']) {
      statuses.push((await attempt(service, forwardedFor)).status);
    }
    expect(statuses).toEqual([401, 401, 401]);
    expect((await attempt(service, '198.51.100.4')).status).toBe(429);
  });
});
