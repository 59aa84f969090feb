import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { workflowViewSchema } from '../../src/schemas/workflows.js';
import { useTestApp } from '../helpers/test-app.js';

const ctx = useTestApp();

const body = {
  name: 'Cached workflow',
  workflow_type: 'sequential',
  steps: [{ name: 'Only', step_type: 'noop' }],
};

async function create(): Promise<string> {
  const response = await ctx.app.inject({ method: 'POST', url: '/workflows', payload: body });
  expect(response.statusCode).toBe(201);
  return response.json<{ id: string }>().id;
}

function cacheKey(id: string): string {
  return `${ctx.config.REDIS_PREFIX}:cache:workflow:${id}`;
}

describe('workflow cache', () => {
  it('fills the cache on GET under the configured prefix', async () => {
    const id = await create();
    expect(await ctx.app.redis.exists(cacheKey(id))).toBe(0);
    const first = await ctx.app.inject({ method: 'GET', url: `/workflows/${id}` });
    expect(first.statusCode).toBe(200);
    expect(await ctx.app.redis.exists(cacheKey(id))).toBe(1);
    const ttl = await ctx.app.redis.ttl(cacheKey(id));
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(ctx.config.CACHE_TTL_SECONDS);
    const second = await ctx.app.inject({ method: 'GET', url: `/workflows/${id}` });
    // A hit answers the very text the miss answered and cached, a view as the schema says.
    expect(second.body).toBe(first.body);
    expect(second.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(workflowViewSchema.strict().parse(second.json())).toEqual(second.json());
  });

  it('is never stale after PUT returns', async () => {
    const id = await create();
    for (let round = 1; round <= 5; round += 1) {
      await ctx.app.inject({ method: 'GET', url: `/workflows/${id}` });
      const put = await ctx.app.inject({
        method: 'PUT',
        url: `/workflows/${id}`,
        payload: { name: `Round ${round}` },
      });
      expect(put.statusCode).toBe(200);
      const got = await ctx.app.inject({ method: 'GET', url: `/workflows/${id}` });
      expect(got.json()).toMatchObject({ name: `Round ${round}`, version: round + 1 });
    }
  });

  it('is never stale after DELETE returns', async () => {
    const id = await create();
    expect((await ctx.app.inject({ method: 'GET', url: `/workflows/${id}` })).statusCode).toBe(200);
    expect(await ctx.app.redis.exists(cacheKey(id))).toBe(1);
    const deleted = await ctx.app.inject({ method: 'DELETE', url: `/workflows/${id}` });
    expect(deleted.statusCode).toBe(204);
    expect((await ctx.app.inject({ method: 'GET', url: `/workflows/${id}` })).statusCode).toBe(404);
    expect(await ctx.app.redis.exists(cacheKey(id))).toBe(0);
  });

  it('refuses a fill that started before an invalidation (slow reader race)', async () => {
    const id = await create();
    const cache = ctx.app.workflowCache;
    // A reader misses and loads the row...
    const lookup = await cache.get(id);
    expect(lookup.json).toBeNull();
    const oldView = await ctx.app.workflows.get(id);
    await ctx.app.redis.del(cacheKey(id));
    // ...meanwhile a writer commits and invalidates...
    const put = await ctx.app.inject({
      method: 'PUT',
      url: `/workflows/${id}`,
      payload: { name: 'Newer' },
    });
    expect(put.statusCode).toBe(200);
    // ...and only then the slow reader tries to fill with what it loaded before.
    await cache.fill(id, JSON.stringify(oldView), lookup.json === null ? lookup.ticket : null);
    expect(await ctx.app.redis.exists(cacheKey(id))).toBe(0);
    const got = await ctx.app.inject({ method: 'GET', url: `/workflows/${id}` });
    expect(got.json()).toMatchObject({ name: 'Newer', version: 2 });
  });

  it('refuses a late fill of a deleted workflow', async () => {
    const id = await create();
    const cache = ctx.app.workflowCache;
    const lookup = await cache.get(id);
    const oldView = await ctx.app.workflows.get(id);
    await ctx.app.redis.del(cacheKey(id));
    expect((await ctx.app.inject({ method: 'DELETE', url: `/workflows/${id}` })).statusCode).toBe(
      204,
    );
    await cache.fill(id, JSON.stringify(oldView), lookup.json === null ? lookup.ticket : null);
    expect((await ctx.app.inject({ method: 'GET', url: `/workflows/${id}` })).statusCode).toBe(404);
  });

  it('shows counter changes once the engine invalidates', async () => {
    const id = await create();
    await ctx.app.inject({ method: 'GET', url: `/workflows/${id}` });
    await ctx.app.pg.query('UPDATE workflows SET execution_count = 7 WHERE id = $1', [id]);
    await ctx.app.workflowCache.invalidate(id);
    const got = await ctx.app.inject({ method: 'GET', url: `/workflows/${id}` });
    expect(got.json()).toMatchObject({ execution_count: 7 });
  });
});

describe('workflow reads without Redis', () => {
  const unreachable = {} as { app: Awaited<ReturnType<typeof buildApp>> };

  beforeAll(async () => {
    // Same database as the main app, but Redis on a closed port.
    const config = loadConfig({
      NODE_ENV: 'test',
      DATABASE_URL: ctx.config.DATABASE_URL,
      REDIS_URL: 'redis://127.0.0.1:1',
      REDIS_PREFIX: ctx.config.REDIS_PREFIX,
      LOG_LEVEL: 'silent',
      SERVICE_ROLE: 'api',
      MIGRATE_ON_START: 'false',
    });
    unreachable.app = await buildApp(config);
    await unreachable.app.ready();
    unreachable.app.lifecycle.databaseReady = true;
  });

  afterAll(async () => {
    await unreachable.app?.close();
  });

  it('answers GET /workflows/{id} from Postgres when Redis is unreachable', async () => {
    const id = await create();
    const response = await unreachable.app.inject({ method: 'GET', url: `/workflows/${id}` });
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({ id, name: 'Cached workflow' });
  });

  it('updates and deletes without Redis, and its own reads follow', async () => {
    const id = await create();
    const put = await unreachable.app.inject({
      method: 'PUT',
      url: `/workflows/${id}`,
      payload: { name: 'Written without Redis' },
    });
    expect(put.statusCode).toBe(200);
    const own = await unreachable.app.inject({ method: 'GET', url: `/workflows/${id}` });
    expect(own.json()).toMatchObject({ name: 'Written without Redis', version: 2 });
    const deleted = await unreachable.app.inject({ method: 'DELETE', url: `/workflows/${id}` });
    expect(deleted.statusCode).toBe(204);
    const gone = await unreachable.app.inject({ method: 'GET', url: `/workflows/${id}` });
    expect(gone.statusCode).toBe(404);
  });
});
