import SwaggerParser from '@apidevtools/swagger-parser';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { testEnvironment, useTestApp } from '../helpers/test-app.js';

const ctx = useTestApp();

describe('health probes', () => {
  it('answers /health with the version and /health/live without touching dependencies', async () => {
    const health = await ctx.app.inject({ method: 'GET', url: '/health' });
    expect(health.statusCode).toBe(200);
    expect(health.json()).toMatchObject({ status: 'ok', service: 'workflow-service' });
    const live = await ctx.app.inject({ method: 'GET', url: '/health/live' });
    expect(live.statusCode).toBe(200);
    expect(live.json().status).toBe('alive');
  });

  it('is ready when Postgres, Redis and migrations are', async () => {
    const ready = await ctx.app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toMatchObject({
      status: 'ready',
      checks: { postgres: { status: 'up' }, redis: { status: 'up' }, migrations: { status: 'up' } },
    });
  });

  describe('with a dependency unreachable (a closed port on loopback)', () => {
    const apps: Awaited<ReturnType<typeof buildApp>>[] = [];
    afterAll(async () => {
      for (const app of apps) await app.close();
    });

    it.each([
      ['redis', { REDIS_URL: 'redis://127.0.0.1:1/0' }],
      ['postgres', { DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/none' }],
    ] as const)('answers 503 naming %s, and live stays 200', async (name, override) => {
      const app = await buildApp(
        loadConfig(
          testEnvironment(ctx.database, `${ctx.prefix}x`, {
            ...override,
            SERVICE_ROLE: 'api',
            DEPENDENCY_TIMEOUT_MS: '500',
          }),
        ),
      );
      apps.push(app);
      // Migrations are not started here: readiness must answer without them, not hang.
      const ready = await app.inject({ method: 'GET', url: '/health/ready' });
      expect(ready.statusCode).toBe(503);
      expect(ready.headers['retry-after']).toBeDefined();
      expect(ready.json().checks[name].status).toBe('down');
      const live = await app.inject({ method: 'GET', url: '/health/live' });
      expect(live.statusCode).toBe(200);
    });

    it('answers 503 problem details, never 500, when Postgres is down during a request', async () => {
      const app = await buildApp(
        loadConfig(
          testEnvironment(ctx.database, `${ctx.prefix}y`, {
            DATABASE_URL: 'postgresql://postgres@127.0.0.1:1/none',
            SERVICE_ROLE: 'api',
          }),
        ),
      );
      apps.push(app);
      const response = await app.inject({ method: 'GET', url: '/workflows' });
      expect(response.statusCode).toBe(503);
      expect(response.headers['content-type']).toContain('application/problem+json');
      expect(response.json().code).toBe('WF_ERR_DEPENDENCY_UNAVAILABLE');
    });
  });
});

describe('service information and API documentation', () => {
  it('GET /info describes the service and its limits', async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/info' });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      service: 'workflow-service',
      role: 'all',
      limits: { max_steps: 100, max_tags: 20, max_description_length: 1000 },
    });
    expect(response.json().built_in_step_types).toEqual(
      expect.arrayContaining(['noop', 'http', 'delay']),
    );
  });

  it('/docs/json is a valid OpenAPI document listing every route', async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/docs/json' });
    expect(response.statusCode).toBe(200);
    const document = response.json();
    await SwaggerParser.validate(structuredClone(document));
    const documented = Object.entries(
      document.paths as Record<string, Record<string, unknown>>,
    ).flatMap(([path, methods]) =>
      Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`),
    );
    const expected = [
      'GET /health',
      'GET /health/live',
      'GET /health/ready',
      'GET /info',
      'GET /workflows',
      'POST /workflows',
      'GET /workflows/{id}',
      'PUT /workflows/{id}',
      'DELETE /workflows/{id}',
      'POST /workflows/{id}/execute',
      'GET /executions',
      'GET /executions/{id}',
      'POST /executions/{id}/cancel',
      'POST /executions/{id}/retry',
      'POST /executions/{id}/pause',
      'POST /executions/{id}/resume',
    ];
    expect(documented).toEqual(expect.arrayContaining(expected));
    const ui = await ctx.app.inject({ method: 'GET', url: '/docs' });
    expect(ui.statusCode).toBeLessThan(400);
  });

  it('echoes a caller request id and generates one otherwise', async () => {
    const given = await ctx.app.inject({
      method: 'GET',
      url: '/health',
      headers: { 'x-request-id': 'abc-123' },
    });
    expect(given.headers['x-request-id']).toBe('abc-123');
    const generated = await ctx.app.inject({
      method: 'GET',
      url: '/health',
      headers: { 'x-request-id': 'bad id\n' },
    });
    expect(generated.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });
});
