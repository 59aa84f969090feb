import Fastify, { type FastifyInstance } from 'fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { ROLES, type Role, roleAtLeast } from '../../src/domain/roles.js';
import { accessPolicyPlugin } from '../../src/plugins/security/access-policy.js';
import { authenticationPlugin } from '../../src/plugins/security/authentication.js';
import { rateLimitsPlugin } from '../../src/plugins/security/rate-limits.js';
import { findPolicy, ROUTE_POLICIES } from '../../src/security/policy.js';
import { ApiKeyStore } from '../../src/store/api-key-store.js';
import {
  concreteUrl,
  createKey,
  problemShape,
  TEST_JWT_SECRET,
  tokenFor,
} from '../helpers/security.js';
import { testEnvironment, useTestApp } from '../helpers/test-app.js';

const ctx = useTestApp({ AUTH_MODE: 'both', JWT_SECRET: TEST_JWT_SECRET });
const keys = {} as Record<Role, { id: string; key: string }>;

beforeAll(async () => {
  for (const role of ROLES) keys[role] = await createKey(ctx.app, role);
});

type Credential = { kind: 'api-key' | 'jwt'; role: Role };

function headersFor(credential: Credential): Record<string, string> {
  return credential.kind === 'api-key'
    ? { 'x-api-key': keys[credential.role].key }
    : { authorization: `Bearer ${tokenFor(credential.role)}` };
}

function requestFor(method: string, url: string) {
  const body = ['POST', 'PUT', 'PATCH'].includes(method) ? {} : undefined;
  return { method: method as 'GET', url: concreteUrl(url), ...(body ? { payload: body } : {}) };
}

describe('the policy table', () => {
  it('covers every registered route (the startup check let the app start)', () => {
    expect(ctx.app.routeAccess.length).toBeGreaterThan(10);
    for (const route of ctx.app.routeAccess) {
      expect(findPolicy(route.method, route.url), `${route.method} ${route.url}`).toBeDefined();
    }
  });

  it('refuses to start when a route has no entry', async () => {
    const app = await buildApp(
      loadConfig(testEnvironment(ctx.database, `${ctx.prefix}u`, { SERVICE_ROLE: 'api' })),
    );
    try {
      let failure: unknown;
      try {
        app.get('/unlisted-route', async () => ({ open: true }));
        await app.ready();
      } catch (error) {
        failure = error;
      }
      expect(String(failure)).toMatch(/GET \/unlisted-route has no entry in the access policy/);
    } finally {
      await app.close();
    }
  });

  it('grants each role exactly what the table says, with API keys and with JWTs', async () => {
    const protectedRoutes = ctx.app.routeAccess.filter(
      (route) => route.access !== 'probe' && route.access !== 'public' && route.method !== 'HEAD',
    );
    // What this service serves today must be governed; entries for routes not built yet wait.
    expect(protectedRoutes.map((route) => `${route.method} ${route.url}`)).toEqual(
      expect.arrayContaining([
        'GET /workflows',
        'POST /workflows',
        'PUT /workflows/:id',
        'DELETE /workflows/:id',
        'POST /workflows/:id/execute',
        'POST /executions/:id/cancel',
        'GET /info',
        'POST /api-keys',
        'GET /api-keys',
        'DELETE /api-keys/:id',
      ]),
    );
    const failures: string[] = [];
    for (const route of protectedRoutes) {
      const required = route.access as Role;
      const anonymous = await ctx.app.inject(requestFor(route.method, route.url));
      if (anonymous.statusCode !== 401) {
        failures.push(`${route.method} ${route.url} without credentials: ${anonymous.statusCode}`);
      }
      for (const kind of ['api-key', 'jwt'] as const) {
        for (const role of ROLES) {
          // A stream for an unknown id may legitimately stay open: only refusals are checked.
          if (route.queryToken && roleAtLeast(role, required)) continue;
          const response = await ctx.app.inject({
            ...requestFor(route.method, route.url),
            headers: headersFor({ kind, role }),
          });
          const allowed = roleAtLeast(role, required);
          const ok = allowed
            ? ![401, 403].includes(response.statusCode) && response.statusCode < 500
            : response.statusCode === 403;
          if (!ok) {
            failures.push(
              `${route.method} ${route.url} as ${role} (${kind}): ${response.statusCode} ${response.body.slice(0, 200)}`,
            );
          }
        }
      }
    }
    expect(failures).toEqual([]);
  });

  it('lists every current and announced route with the documented roles', () => {
    const entry = (method: string, url: string) =>
      ROUTE_POLICIES.find((policy) => policy.method === method && policy.url === url)?.access;
    expect(entry('GET', '/executions/:id/stream')).toBe('viewer');
    expect(entry('POST', '/events')).toBe('operator');
    expect(entry('POST', '/tasks/:token/complete')).toBe('operator');
    expect(entry('DELETE', '/workflows/:id')).toBe('editor');
    expect(entry('GET', '/api-keys')).toBe('admin');
    expect(entry('GET', '/ui/*')).toBe('public');
    expect(findPolicy('POST', '/tasks/:taskToken/fail')?.access).toBe('operator');
    expect(findPolicy('HEAD', '/workflows/:id')?.access).toBe('viewer');
    expect(entry('POST', '/executions/bulk')).toBe('operator');
    expect(entry('GET', '/operations/:id')).toBe('viewer');
  });

  it('lets operators act in bulk but only admins delete in bulk', async () => {
    const filter = { status: 'failed' };
    const ask = (role: Role, action: string) =>
      ctx.app.inject({
        method: 'POST',
        url: '/executions/bulk',
        headers: headersFor({ kind: 'jwt', role }),
        payload: { action, filter, dry_run: true },
      });
    expect((await ask('viewer', 'retry')).statusCode).toBe(403);
    expect((await ask('operator', 'retry')).statusCode).toBe(200);
    const refused = await ask('editor', 'delete');
    expect(refused.statusCode).toBe(403);
    expect(refused.json().detail).toContain('admin');
    expect((await ask('admin', 'delete')).statusCode).toBe(200);
    const real = await ctx.app.inject({
      method: 'POST',
      url: '/executions/bulk',
      headers: headersFor({ kind: 'api-key', role: 'operator' }),
      payload: { action: 'delete', filter },
    });
    expect(real.statusCode).toBe(403);
    const listed = await ctx.app.inject({
      method: 'GET',
      url: '/operations',
      headers: headersFor({ kind: 'api-key', role: 'viewer' }),
    });
    expect(listed.json().items).toEqual([]);
  });
});

describe('public routes and unknown paths', () => {
  it('serves probes and docs without credentials; probes are not rate-limited', async () => {
    for (const url of ['/health', '/health/live', '/health/ready']) {
      const response = await ctx.app.inject({ method: 'GET', url });
      expect(response.statusCode, url).toBe(200);
      expect(response.headers['ratelimit-limit'], url).toBeUndefined();
    }
    const docs = await ctx.app.inject({ method: 'GET', url: '/docs/json' });
    expect(docs.statusCode).toBe(200);
    expect(docs.json().components.securitySchemes).toHaveProperty('apiKey');
    expect(docs.json().paths['/workflows'].post.security).toEqual([
      { bearerAuth: [] },
      { apiKey: [] },
    ]);
    expect((await ctx.app.inject({ method: 'GET', url: '/docs' })).statusCode).toBeLessThan(400);
  });

  it('answers an unknown path 401 to strangers and 404 to callers', async () => {
    const stranger = await ctx.app.inject({ method: 'GET', url: '/no/such/thing' });
    expect(stranger.statusCode).toBe(401);
    const caller = await ctx.app.inject({
      method: 'GET',
      url: '/no/such/thing',
      headers: { 'x-api-key': keys.viewer.key },
    });
    expect(caller.statusCode).toBe(404);
  });

  it('sends security headers on every answer, 401 included', async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/workflows' });
    expect(response.statusCode).toBe(401);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.headers['www-authenticate']).toBe('Bearer realm="workflow-service"');
    expect(response.headers['x-content-type-options']).toBe('nosniff');
    expect(response.headers['content-security-policy']).toContain("default-src 'self'");
    expect(response.headers['access-control-allow-origin']).toBeUndefined();
    expect(response.json()).toMatchObject({ status: 401, code: 'WF_ERR_UNAUTHENTICATED' });
  });

  it('reports the auth mode in /info', async () => {
    const response = await ctx.app.inject({
      method: 'GET',
      url: '/info',
      headers: { 'x-api-key': keys.viewer.key },
    });
    expect(response.json().auth).toEqual({ mode: 'both', open: false });
    // And who asks, so the dashboard offers only what the role allows.
    expect(response.json().caller).toEqual({
      kind: 'api-key',
      id: keys.viewer.id,
      role: 'viewer',
    });
  });
});

describe('API keys', () => {
  const admin = () => ({ 'x-api-key': keys.admin.key });

  it('creates a key shown once, lists keys without secrets, and revokes at once', async () => {
    const created = await ctx.app.inject({
      method: 'POST',
      url: '/api-keys',
      headers: admin(),
      payload: { name: 'ci deploy', role: 'operator' },
    });
    expect(created.statusCode).toBe(201);
    expect(created.headers['cache-control']).toBe('no-store');
    const { id, key } = created.json();
    expect(key).toMatch(/^wfk_[0-9a-f]{16}_[A-Za-z0-9_-]{43}$/);
    expect(id).toMatch(/^ak_[0-9a-f]{16}$/);
    expect(created.json()).toMatchObject({
      name: 'ci deploy',
      role: 'operator',
      status: 'active',
      created_by: `api-key:${keys.admin.id}`,
    });

    const run = await ctx.app.inject({
      method: 'GET',
      url: '/workflows',
      headers: { 'x-api-key': key },
    });
    expect(run.statusCode).toBe(200);
    const asBearer = await ctx.app.inject({
      method: 'GET',
      url: '/workflows',
      headers: { authorization: `Bearer ${key}` },
    });
    expect(asBearer.statusCode).toBe(200);

    const list = await ctx.app.inject({ method: 'GET', url: '/api-keys', headers: admin() });
    expect(list.statusCode).toBe(200);
    expect(list.body).not.toContain(key);
    expect(list.body).not.toMatch(/wfk_|key_hash|"key"/);
    expect(list.json().items.map((item: { id: string }) => item.id)).toContain(id);

    const revoked = await ctx.app.inject({
      method: 'DELETE',
      url: `/api-keys/${id}`,
      headers: admin(),
    });
    expect(revoked.statusCode).toBe(204);
    const after = await ctx.app.inject({
      method: 'GET',
      url: '/workflows',
      headers: { 'x-api-key': key },
    });
    expect(after.statusCode).toBe(401);
    const again = await ctx.app.inject({
      method: 'DELETE',
      url: `/api-keys/${id}`,
      headers: admin(),
    });
    expect(again.statusCode).toBe(204);
    const unknown = await ctx.app.inject({
      method: 'DELETE',
      url: '/api-keys/ak_0000000000000000',
      headers: admin(),
    });
    expect(unknown.statusCode).toBe(404);
  });

  it('keeps no raw key in the database, only a 32-byte hash', async () => {
    const client = new pg.Client({ connectionString: ctx.database.url });
    await client.connect();
    try {
      const { rows } = await client.query<Record<string, unknown>>('SELECT * FROM api_keys');
      expect(rows.length).toBeGreaterThanOrEqual(ROLES.length);
      const dump = JSON.stringify(rows);
      for (const role of ROLES) {
        const { key } = keys[role];
        expect(dump).not.toContain(key);
        expect(dump).not.toContain(key.slice(-43));
      }
      for (const row of rows) expect((row.key_hash as Buffer).length).toBe(32);
    } finally {
      await client.end();
    }
  });

  it('answers one identical 401 for unknown, revoked, expired and malformed keys', async () => {
    const revoked = await createKey(ctx.app, 'admin', 'to revoke');
    await ctx.app.apiKeys.revoke(revoked.id);
    const expired = await new ApiKeyStore(ctx.app.pg).insert({
      id: 'ak_00000000000000ee',
      name: 'expired',
      role: 'admin',
      hash: (await import('../../src/security/api-key-format.js')).hashApiKey(
        `wfk_00000000000000ee_${'e'.repeat(43)}`,
      ),
      createdBy: null,
      expiresAt: new Date(Date.now() - 1000),
    });
    expect(expired.status).toBe('expired');
    const attempts = [
      `wfk_0123456789abcdef_${'a'.repeat(43)}`, // unknown id
      `${keys.admin.key.slice(0, -1)}${keys.admin.key.endsWith('A') ? 'B' : 'A'}`, // wrong secret
      revoked.key,
      `wfk_00000000000000ee_${'e'.repeat(43)}`,
      'not-a-key',
      'wfk_short',
    ];
    const bodies = new Set<string>();
    for (const attempt of attempts) {
      const response = await ctx.app.inject({
        method: 'GET',
        url: '/workflows',
        headers: { 'x-api-key': attempt },
      });
      expect(response.statusCode, attempt).toBe(401);
      bodies.add(JSON.stringify(problemShape(response.body)));
    }
    const missing = await ctx.app.inject({ method: 'GET', url: '/workflows' });
    bodies.add(JSON.stringify(problemShape(missing.body)));
    expect(bodies.size).toBe(1);
  });

  it('validates key creation strictly', async () => {
    const cases = [
      { name: 'x', role: 'root' },
      { name: '', role: 'viewer' },
      { name: 'x', role: 'viewer', extra: true },
      { name: 'bell\u0007', role: 'viewer' },
      { name: 'x', role: 'viewer', expires_at: '2001-01-01T00:00:00Z' },
      { name: 'x', role: 'viewer', expires_at: 'tomorrow' },
    ];
    for (const payload of cases) {
      const response = await ctx.app.inject({
        method: 'POST',
        url: '/api-keys',
        headers: admin(),
        payload,
      });
      expect(response.statusCode, JSON.stringify(payload)).toBe(400);
    }
  });

  it('refuses two credentials at once and non-Bearer schemes', async () => {
    const both = await ctx.app.inject({
      method: 'GET',
      url: '/workflows',
      headers: { 'x-api-key': keys.admin.key, authorization: `Bearer ${tokenFor('admin')}` },
    });
    expect(both.statusCode).toBe(401);
    const basic = await ctx.app.inject({
      method: 'GET',
      url: '/workflows',
      headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` },
    });
    expect(basic.statusCode).toBe(401);
  });
});

describe('tokens in the query string', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await buildApp(
      loadConfig(
        testEnvironment(ctx.database, `${ctx.prefix}q`, {
          AUTH_MODE: 'both',
          JWT_SECRET: TEST_JWT_SECRET,
          SERVICE_ROLE: 'api',
        }),
      ),
    );
    // Stand-ins where the real routes are not built yet; the policy table governs them alike.
    if (!app.hasRoute({ method: 'GET', url: '/executions/:id/stream' })) {
      app.get('/executions/:id/stream', async (request) => ({
        query: request.query,
        caller: request.caller,
      }));
    }
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
  });

  it('accepts access_token only on the stream route, and hides it from the route', async () => {
    const token = tokenFor('viewer');
    const stream = await app.inject({
      method: 'GET',
      url: `/executions/ex_none/stream?access_token=${token}`,
    });
    expect([200, 404]).toContain(stream.statusCode);
    if (stream.statusCode === 200 && stream.json().query !== undefined) {
      expect(stream.json().query).toEqual({});
    }
    const other = await app.inject({ method: 'GET', url: `/workflows?access_token=${token}` });
    expect(other.statusCode).toBe(401);
    const badToken = await app.inject({
      method: 'GET',
      url: '/executions/ex_none/stream?access_token=forged',
    });
    expect(badToken.statusCode).toBe(401);
  });
});

describe('open mode and body limits', () => {
  it('runs open only when nothing is configured, and says so in a warning and in /info', async () => {
    const lines: string[] = [];
    const app = Fastify({
      logger: {
        level: 'warn',
        stream: { write: (line: string) => void lines.push(line) },
      },
    });
    const config = loadConfig(testEnvironment(ctx.database, `${ctx.prefix}o`, {}));
    await app.register(accessPolicyPlugin, { config });
    await app.register(rateLimitsPlugin, { config });
    await app.register(authenticationPlugin, { config });
    app.get('/info', async (request) => ({ caller: request.caller, auth: app.auth }));
    await app.ready();
    try {
      expect(lines.join('')).toMatch(/AUTHENTICATION IS OFF/);
      const response = await app.inject({ method: 'GET', url: '/info' });
      expect(response.json()).toEqual({
        caller: { kind: 'anonymous', id: 'anonymous', role: 'admin' },
        auth: { mode: 'none', open: true },
      });
    } finally {
      await app.close();
    }
  });

  it('answers 401 to a stranger before reading a large body, 413 to a caller', async () => {
    const payload = JSON.stringify({ name: 'x'.repeat(5 * 1024 * 1024) });
    const stranger = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      headers: { 'content-type': 'application/json' },
      payload,
    });
    expect(stranger.statusCode).toBe(401);
    const caller = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      headers: { 'content-type': 'application/json', 'x-api-key': keys.editor.key },
      payload,
    });
    expect(caller.statusCode).toBe(413);
    expect(caller.headers['content-type']).toContain('application/problem+json');
  });

  it('refuses unknown fields in request bodies (closed schemas)', async () => {
    const headers = { 'x-api-key': keys.admin.key };
    const attempts = [
      {
        url: '/workflows',
        payload: { name: 'x', workflow_type: 'sequential', steps: [], role: 'admin' },
      },
      { url: '/api-keys', payload: { name: 'x', role: 'viewer', key_hash: 'x' } },
      { url: '/events', payload: { type: 'x', admin: true } },
      { url: '/workflows/wf_none/execute', payload: { input_data: {}, status: 'completed' } },
    ];
    for (const { url, payload } of attempts) {
      const response = await ctx.app.inject({ method: 'POST', url, headers, payload });
      expect(response.statusCode, url).toBe(400);
    }
  });
});

describe('CORS', () => {
  let app: FastifyInstance;
  beforeAll(async () => {
    app = await buildApp(
      loadConfig(
        testEnvironment(ctx.database, `${ctx.prefix}c`, {
          AUTH_MODE: 'api-key',
          CORS_ORIGINS: 'https://ops.example.com',
          SERVICE_ROLE: 'api',
        }),
      ),
    );
    await app.ready();
  });
  afterAll(async () => {
    await app.close();
  });

  it('answers preflights for configured origins only', async () => {
    const preflight = await app.inject({
      method: 'OPTIONS',
      url: '/workflows',
      headers: {
        origin: 'https://ops.example.com',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'x-api-key, content-type',
      },
    });
    expect(preflight.statusCode).toBe(204);
    expect(preflight.headers['access-control-allow-origin']).toBe('https://ops.example.com');
    expect(String(preflight.headers['access-control-allow-headers'])).toContain('x-api-key');

    const stranger = await app.inject({
      method: 'GET',
      url: '/workflows',
      headers: { origin: 'https://evil.example.net' },
    });
    expect(stranger.statusCode).toBe(401);
    expect(stranger.headers['access-control-allow-origin']).toBeUndefined();

    const allowed = await app.inject({
      method: 'GET',
      url: '/workflows',
      headers: { origin: 'https://ops.example.com' },
    });
    // The 401 is readable by the dashboard's origin, so it can ask for a key.
    expect(allowed.statusCode).toBe(401);
    expect(allowed.headers['access-control-allow-origin']).toBe('https://ops.example.com');
  });
});
