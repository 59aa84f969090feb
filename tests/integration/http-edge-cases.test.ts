import { describe, expect, it } from 'vitest';
import type { ProblemDetails } from '../../src/schemas/problem.js';
import { useTestApp } from '../helpers/test-app.js';
import { SEED_EXAMPLE } from '../helpers/workflows.js';

const ctx = useTestApp();

type Problem = ProblemDetails;

type Injected = Awaited<ReturnType<typeof ctx.app.inject>>;

/** Every error is RFC 9457 problem+json with type, title, status and detail; never a 5xx. */
function expectProblem(response: Injected, status: number): Problem {
  expect(response.statusCode, response.body.slice(0, 500)).toBe(status);
  expect(response.headers['content-type']).toContain('application/problem+json');
  const problem = response.json<Problem>();
  expect(problem.status).toBe(status);
  for (const field of ['type', 'title', 'detail'] as const) {
    expect(typeof problem[field]).toBe('string');
    expect(problem[field].length).toBeGreaterThan(0);
  }
  expect(response.body).not.toMatch(/\bat .+\.(ts|js):\d+/);
  return problem;
}

describe('HTTP edge cases', () => {
  it('malformed JSON is 400', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      headers: { 'content-type': 'application/json' },
      payload: '{"name": "x", ',
    });
    expectProblem(response, 400);
  });

  it('malformed JSON on PUT is 400', async () => {
    const response = await ctx.app.inject({
      method: 'PUT',
      url: '/workflows/wf_whatever',
      headers: { 'content-type': 'application/json' },
      payload: '{oops}',
    });
    expectProblem(response, 400);
  });

  it('a JSON body that is not an object is 400', async () => {
    for (const payload of ['[]', '"text"', '42', 'null']) {
      const response = await ctx.app.inject({
        method: 'POST',
        url: '/workflows',
        headers: { 'content-type': 'application/json' },
        payload,
      });
      expectProblem(response, 400);
    }
  });

  it('a missing body is 400', async () => {
    expectProblem(await ctx.app.inject({ method: 'POST', url: '/workflows' }), 400);
  });

  it('a wrong content type is 415', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      headers: { 'content-type': 'text/plain' },
      payload: JSON.stringify(SEED_EXAMPLE),
    });
    expectProblem(response, 415);
  });

  it('an oversized body is 413', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify({
        ...SEED_EXAMPLE,
        metadata: { blob: 'x'.repeat(ctx.config.MAX_BODY_BYTES) },
      }),
    });
    expectProblem(response, 413);
  });

  it('an unknown id is 404 on GET, PUT and DELETE', async () => {
    for (const method of ['GET', 'PUT', 'DELETE'] as const) {
      const response = await ctx.app.inject({
        method,
        url: '/workflows/wf_does_not_exist',
        ...(method === 'PUT' ? { payload: { name: 'x' } } : {}),
      });
      const problem = expectProblem(response, 404);
      expect(problem.code).toBe('WF_ERR_WORKFLOW_NOT_FOUND');
    }
  });

  it('odd ids are 404, not errors', async () => {
    for (const id of ['%00', 'a%00b', encodeURIComponent("' OR 1=1 --"), 'x'.repeat(90)]) {
      expectProblem(await ctx.app.inject({ method: 'GET', url: `/workflows/${id}` }), 404);
      expectProblem(await ctx.app.inject({ method: 'DELETE', url: `/workflows/${id}` }), 404);
    }
  });

  it('router-level errors are problems too: bad percent-encoding 400, over-long id 414', async () => {
    expectProblem(await ctx.app.inject({ method: 'GET', url: '/workflows/%zz' }), 400);
    expectProblem(
      await ctx.app.inject({ method: 'GET', url: `/workflows/${'x'.repeat(400)}` }),
      414,
    );
  });

  it('a JSON body with a charset is accepted', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      headers: { 'content-type': 'application/json; charset=utf-8' },
      payload: JSON.stringify(SEED_EXAMPLE),
    });
    expect(response.statusCode).toBe(201);
  });

  it('bad query parameters are 400', async () => {
    const queries = [
      'limit=0',
      'limit=abc',
      'limit=101',
      'limit=1.5',
      'limit=-1',
      'cursor=not-a-cursor',
      'cursor=%%%',
      `cursor=${Buffer.from('{"c":"yesterday","i":"x"}').toString('base64url')}`,
      `cursor=${Buffer.from('{"c":"2025-13-45T99:00:00.000000Z","i":"x"}').toString('base64url')}`,
      `cursor=${Buffer.from('[1,2]').toString('base64url')}`,
      'unknown=1',
      'status=deleted',
      'workflow_type=round_robin',
      'search=%00',
    ];
    for (const query of queries) {
      const response = await ctx.app.inject({ method: 'GET', url: `/workflows?${query}` });
      expect(response.statusCode, query).toBe(400);
      expectProblem(response, 400);
    }
  });

  it('an unknown route is a 404 problem', async () => {
    expectProblem(await ctx.app.inject({ method: 'GET', url: '/nope' }), 404);
  });

  it('the seed README example posted verbatim is 201 with an id', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      headers: { 'content-type': 'application/json' },
      payload: JSON.stringify(SEED_EXAMPLE),
    });
    expect(response.statusCode).toBe(201);
    const { id } = response.json<{ id: string }>();
    expect(typeof id).toBe('string');
    const got = await ctx.app.inject({ method: 'GET', url: `/workflows/${id}` });
    const steps = got.json<{ steps: Array<{ id: string; dependencies: string[] }> }>().steps;
    expect(steps.map((step) => step.id)).toEqual([
      'data_validation',
      'data_transformation',
      'data_storage',
    ]);
    expect(steps.every((step) => step.dependencies.length === 0)).toBe(true);
  });
});

describe('pagination', () => {
  async function collect(query: string, limit: number): Promise<{ ids: string[]; pages: number }> {
    const ids: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const url: string = `/workflows?${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`;
      const response = await ctx.app.inject({ method: 'GET', url });
      expect(response.statusCode, response.body).toBe(200);
      const page = response.json<{ items: Array<{ id: string }>; next_cursor: string | null }>();
      expect(page.items.length).toBeLessThanOrEqual(limit);
      ids.push(...page.items.map((item) => item.id));
      cursor = page.next_cursor;
      pages += 1;
      expect(pages).toBeLessThan(100);
    } while (cursor !== null);
    return { ids, pages };
  }

  it('walks more than one page, every workflow exactly once, newest first', async () => {
    const created: string[] = [];
    for (let index = 0; index < 25; index += 1) {
      const response = await ctx.app.inject({
        method: 'POST',
        url: '/workflows',
        payload: { name: `Paged ${index}`, workflow_type: 'parallel', tags: ['paged'] },
      });
      created.push(response.json<{ id: string }>().id);
    }
    const { ids, pages } = await collect('tag=paged', 10);
    expect(pages).toBe(3);
    expect(ids).toEqual([...created].reverse());
  });

  it('never skips or repeats rows that share created_at', async () => {
    // Rows inserted in one transaction share now(): only the id breaks the tie.
    const client = await ctx.app.pg.connect();
    const inserted: string[] = [];
    try {
      await client.query('BEGIN');
      for (let index = 0; index < 23; index += 1) {
        const id = `wf_same_${String(index).padStart(2, '0')}`;
        await client.query(
          `INSERT INTO workflows (id, name, workflow_type, tags) VALUES ($1, $2, 'parallel', '{same}')`,
          [id, `Same ${index}`],
        );
        inserted.push(id);
      }
      await client.query('COMMIT');
    } finally {
      client.release();
    }
    for (const limit of [1, 4, 10, 22, 23, 100]) {
      const { ids } = await collect('tag=same', limit);
      expect(ids).toEqual([...inserted].sort().reverse());
    }
  });

  it('keeps microsecond precision across page boundaries', async () => {
    // Timestamps that differ below a millisecond must still order and paginate exactly.
    await ctx.app.pg.query(
      `INSERT INTO workflows (id, name, workflow_type, tags, created_at)
       SELECT 'wf_micro_' || n, 'Micro ' || n, 'parallel', '{micro}',
              timestamptz '2024-01-01 00:00:00.000100+00' + n * interval '1 microsecond'
         FROM generate_series(1, 9) AS n`,
    );
    const { ids } = await collect('tag=micro', 2);
    expect(ids).toEqual(Array.from({ length: 9 }, (_, index) => `wf_micro_${9 - index}`));
  });
});
