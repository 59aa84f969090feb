import { describe, expect, it } from 'vitest';
import type { ProblemDetails } from '../../src/schemas/problem.js';
import { useTestApp } from '../helpers/test-app.js';

const ctx = useTestApp();

/** Validation problems always list their errors. */
type Problem = ProblemDetails & { errors: NonNullable<ProblemDetails['errors']> };

const step = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  step_type: 'noop',
  ...extra,
});

const valid = () => ({
  name: 'Valid workflow',
  workflow_type: 'sequential',
  steps: [step('First'), step('Second')],
});

async function countWorkflows(): Promise<number> {
  const { rows } = await ctx.app.pg.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM workflows',
  );
  return rows[0]?.n ?? 0;
}

/** Posts the body, expects a 400 problem, checks nothing was stored, returns the problem. */
async function rejected(body: unknown): Promise<Problem> {
  const before = await countWorkflows();
  const response = await ctx.app.inject({
    method: 'POST',
    url: '/workflows',
    payload: body as object,
  });
  expect(response.statusCode, response.body).toBe(400);
  expect(response.headers['content-type']).toContain('application/problem+json');
  const problem = response.json<Problem>();
  expect(problem).toMatchObject({ status: 400, title: 'Bad Request' });
  expect(problem.type).toEqual(expect.any(String));
  expect(problem.detail).toEqual(expect.any(String));
  expect(Array.isArray(problem.errors)).toBe(true);
  expect(await countWorkflows()).toBe(before);
  return problem;
}

function expectProblem(problem: Problem, path: string, message?: RegExp): void {
  const match = problem.errors.find(
    (error) => error.path === path && (message === undefined || message.test(error.message)),
  );
  expect(match, JSON.stringify(problem.errors)).toBeDefined();
}

describe('workflow validation (seed limits)', () => {
  it('accepts exactly the limits', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      payload: {
        name: 'n'.repeat(255),
        description: 'd'.repeat(1000),
        workflow_type: 'parallel',
        tags: Array.from({ length: 20 }, (_, index) => `tag${index}`),
        // The index leads: ids are derived from the first 200 characters of the name.
        steps: Array.from({ length: 100 }, (_, index) =>
          step(`${index} ${'s'.repeat(251)}`.slice(0, 255)),
        ),
      },
    });
    expect(response.statusCode, response.body.slice(0, 500)).toBe(201);
    expect(response.json().steps).toHaveLength(100);
  });

  it('refuses more than 100 steps', async () => {
    const problem = await rejected({
      ...valid(),
      steps: Array.from({ length: 101 }, (_, index) => step(`Step ${index}`)),
    });
    expectProblem(problem, 'steps', /at most 100 steps/);
  });

  it('refuses a step name over 255 characters', async () => {
    const problem = await rejected({ ...valid(), steps: [step('s'.repeat(256))] });
    expectProblem(problem, 'steps[0].name', /at most 255/);
  });

  it('refuses a workflow name over 255 characters', async () => {
    expectProblem(await rejected({ ...valid(), name: 'n'.repeat(256) }), 'name', /at most 255/);
  });

  it('refuses a description over 1000 characters', async () => {
    expectProblem(
      await rejected({ ...valid(), description: 'd'.repeat(1001) }),
      'description',
      /at most 1000/,
    );
  });

  it('refuses a config over 1 MB', async () => {
    const problem = await rejected({ ...valid(), config: { blob: 'x'.repeat(1024 * 1024) } });
    expectProblem(problem, 'config', /bytes/);
  });

  it('refuses a step config over 1 MB', async () => {
    const problem = await rejected({
      ...valid(),
      steps: [step('Big', { config: { blob: 'x'.repeat(1024 * 1024) } })],
    });
    expectProblem(problem, 'steps[0].config', /bytes/);
  });

  it('refuses metadata over 1 MB', async () => {
    const problem = await rejected({ ...valid(), metadata: { blob: 'x'.repeat(1024 * 1024) } });
    expectProblem(problem, 'metadata', /bytes/);
  });

  it('refuses more than 20 tags', async () => {
    const problem = await rejected({
      ...valid(),
      tags: Array.from({ length: 21 }, (_, index) => `tag${index}`),
    });
    expectProblem(problem, 'tags', /20 tags/);
  });
});

describe('workflow validation (structure)', () => {
  it('refuses duplicate explicit step ids', async () => {
    const problem = await rejected({
      ...valid(),
      steps: [step('One', { id: 'same' }), step('Two', { id: 'same' })],
    });
    expectProblem(problem, 'steps[1].id', /already used/);
  });

  it('refuses steps whose derived ids collide', async () => {
    const problem = await rejected({ ...valid(), steps: [step('Data Load'), step('data-load')] });
    expectProblem(problem, 'steps[1].name', /already used/);
  });

  it('refuses a malformed step id', async () => {
    const problem = await rejected({ ...valid(), steps: [step('One', { id: 'has space' })] });
    expect(problem.errors.some((error) => error.path.includes('steps.0.id'))).toBe(true);
  });

  it('refuses a dependency on a missing step', async () => {
    const problem = await rejected({
      ...valid(),
      steps: [step('One'), step('Two', { dependencies: ['ghost'] })],
    });
    expectProblem(problem, 'steps[1].dependencies[0]', /ghost/);
  });

  it('refuses a self dependency', async () => {
    const problem = await rejected({
      ...valid(),
      steps: [step('One', { id: 'one', dependencies: ['one'] })],
    });
    expectProblem(problem, 'steps[0].dependencies[0]', /itself/);
  });

  it('refuses a cycle and names its path', async () => {
    const problem = await rejected({
      ...valid(),
      workflow_type: 'parallel',
      steps: [
        step('A', { id: 'a', dependencies: ['c'] }),
        step('B', { id: 'b', dependencies: ['a'] }),
        step('C', { id: 'c', dependencies: ['b'] }),
      ],
    });
    const cycle = problem.errors.find((error) => /cycle/.test(error.message));
    expect(cycle?.message).toMatch(/a -> c -> b -> a/);
  });

  it('refuses an unparsable condition expression', async () => {
    const problem = await rejected({
      ...valid(),
      workflow_type: 'conditional',
      steps: [step('Check', { condition: 'input.amount >' })],
    });
    expectProblem(problem, 'steps[0].condition', /invalid expression/);
  });

  it('refuses an unparsable template in step config', async () => {
    const problem = await rejected({
      ...valid(),
      steps: [step('Call', { config: { url: '{% input.( %}' } })],
    });
    expect(problem.errors.some((error) => error.path.startsWith('steps[0].config'))).toBe(true);
  });

  it('refuses a loop without max_iterations', async () => {
    const problem = await rejected({
      ...valid(),
      workflow_type: 'loop',
      config: { loop: { condition: 'iteration < 3' } },
    });
    expectProblem(problem, 'config.loop.max_iterations', /required/);
  });

  it('accepts a loop with max_iterations', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      payload: {
        ...valid(),
        workflow_type: 'loop',
        config: { loop: { condition: 'iteration < 3', max_iterations: 5 } },
      },
    });
    expect(response.statusCode, response.body).toBe(201);
  });

  it('refuses an unknown workflow_type', async () => {
    const problem = await rejected({ ...valid(), workflow_type: 'round_robin' });
    expect(problem.errors.some((error) => error.path === 'body.workflow_type')).toBe(true);
  });

  it('refuses unknown top-level fields', async () => {
    const problem = await rejected({ ...valid(), owner: 'someone' });
    expect(JSON.stringify(problem.errors)).toMatch(/owner/);
  });

  it('refuses unknown step fields', async () => {
    const problem = await rejected({ ...valid(), steps: [step('One', { retries: 5 })] });
    expect(JSON.stringify(problem.errors)).toMatch(/retries/);
  });

  it('refuses a missing name and wrong types', async () => {
    const problem = await rejected({ workflow_type: 'sequential', tags: 'x', steps: {} });
    const paths = problem.errors.map((error) => error.path);
    expect(paths).toEqual(expect.arrayContaining(['body.name', 'body.tags', 'body.steps']));
  });

  it('refuses the U+0000 character, which Postgres cannot store', async () => {
    const problem = await rejected({ ...valid(), config: { note: 'a\u0000b' } });
    expectProblem(problem, 'config.note', /U\+0000/);
  });

  it('refuses absurdly deep nesting instead of failing', async () => {
    const depth = 5000;
    const nested = `${'{"n":'.repeat(depth)}{}${'}'.repeat(depth)}`;
    const before = await countWorkflows();
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      headers: { 'content-type': 'application/json' },
      payload: `{"name":"Deep","workflow_type":"parallel","metadata":${nested}}`,
    });
    expect(response.statusCode).toBe(400);
    expect(response.json<Problem>().errors[0]?.path).toMatch(/^metadata/);
    expect(await countWorkflows()).toBe(before);
  });

  it('lists every problem in one response', async () => {
    const problem = await rejected({
      name: 'n'.repeat(256),
      description: 'd'.repeat(1001),
      workflow_type: 'loop',
      tags: Array.from({ length: 21 }, (_, index) => `t${index}`),
      metadata: { blob: 'x'.repeat(1024 * 1024 + 1) },
      steps: [
        step('A', { id: 'a', dependencies: ['b'] }),
        step('B', { id: 'b', dependencies: ['a', 'missing'] }),
        step('C', { id: 'a', condition: '$$$ (' }),
        step('D', { id: 'd', dependencies: ['d'] }),
      ],
    });
    const paths = problem.errors.map((error) => error.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        'name',
        'description',
        'metadata',
        'tags',
        'config.loop',
        'steps[1].dependencies[1]',
        'steps[2].id',
        'steps[2].condition',
        'steps[3].dependencies[0]',
      ]),
    );
    expect(problem.errors.some((error) => /cycle: a -> b -> a/.test(error.message))).toBe(true);
    expect(problem.detail).toMatch(/problems found/);
  });

  it('validates the merged workflow on update and stores nothing when it fails', async () => {
    const created = await ctx.app.inject({ method: 'POST', url: '/workflows', payload: valid() });
    const id = created.json<{ id: string }>().id;
    const response = await ctx.app.inject({
      method: 'PUT',
      url: `/workflows/${id}`,
      payload: {
        name: 'x'.repeat(256),
        steps: [
          step('A', { id: 'a', dependencies: ['b'] }),
          step('B', { id: 'b', dependencies: ['a'] }),
        ],
      },
    });
    expect(response.statusCode).toBe(400);
    const problem = response.json<Problem>();
    expect(problem.errors.map((error) => error.path)).toContain('name');
    expect(problem.errors.some((error) => /cycle/.test(error.message))).toBe(true);
    const versions = await ctx.app.pg.query(
      'SELECT count(*)::int AS n FROM workflow_versions WHERE workflow_id = $1',
      [id],
    );
    expect(versions.rows[0].n).toBe(1);
  });

  it('refuses unknown fields on update', async () => {
    const created = await ctx.app.inject({ method: 'POST', url: '/workflows', payload: valid() });
    const id = created.json<{ id: string }>().id;
    const response = await ctx.app.inject({
      method: 'PUT',
      url: `/workflows/${id}`,
      payload: { version: 7 },
    });
    expect(response.statusCode).toBe(400);
    expect(response.body).toMatch(/version/);
  });
});
