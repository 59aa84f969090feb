import { describe, expect, it } from 'vitest';
import { LIMIT_WAIT_KIND, limitKeyText } from '../../src/domain/limits.js';
import type { Role } from '../../src/domain/roles.js';
import type { LimitView } from '../../src/schemas/limits.js';
import type { ProblemDetails } from '../../src/schemas/problem.js';
import { TEST_JWT_SECRET, tokenFor } from '../helpers/security.js';
import { useTestApp } from '../helpers/test-app.js';

// Credentials on, so that the roles of the table are what the routes answer.
const ctx = useTestApp({ AUTH_MODE: 'jwt', JWT_SECRET: TEST_JWT_SECRET, SERVICE_ROLE: 'api' });

type Problem = ProblemDetails & { errors: NonNullable<ProblemDetails['errors']> };
type Method = 'GET' | 'PUT' | 'POST' | 'DELETE';

async function call(method: Method, url: string, payload?: unknown, role: Role = 'editor') {
  return ctx.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${tokenFor(role)}` },
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
}

async function putLimit(name: string, body: unknown): Promise<LimitView> {
  const response = await call('PUT', `/limits/${name}`, body);
  expect([200, 201], response.body).toContain(response.statusCode);
  return response.json<LimitView>();
}

async function count(table: 'limits' | 'workflows'): Promise<number> {
  const { rows } = await ctx.app.pg.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`);
  return rows[0]?.n ?? 0;
}

/** Sends the request, expects a 400 problem that stored nothing, returns its errors by path. */
async function refused(method: Method, url: string, body: unknown): Promise<Problem> {
  const before = { limits: await count('limits'), workflows: await count('workflows') };
  const response = await call(method, url, body);
  expect(response.statusCode, response.body).toBe(400);
  expect(response.headers['content-type']).toContain('application/problem+json');
  const problem = response.json<Problem>();
  expect(problem).toMatchObject({ status: 400, code: 'WF_ERR_VALIDATION' });
  expect({ limits: await count('limits'), workflows: await count('workflows') }).toEqual(before);
  return problem;
}

const paths = (problem: Problem) => problem.errors.map((error) => error.path).sort();

const limitedStep = (name: string, limits: unknown[]) => ({ name, step_type: 'noop', limits });

async function createWorkflow(steps: unknown[], status = 'draft'): Promise<string> {
  const response = await call('POST', '/workflows', {
    name: 'Limited',
    workflow_type: 'sequential',
    status,
    steps,
  });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<{ id: string }>().id;
}

describe('PUT /limits/{name}', () => {
  it('creates a limit (201, Location), then replaces it as a whole (200)', async () => {
    const created = await call('PUT', '/limits/payments-api', {
      max_concurrent: 5,
      rate: { limit: 100, period_seconds: 60 },
    });
    expect(created.statusCode, created.body).toBe(201);
    expect(created.headers.location).toBe('/limits/payments-api');
    const view = created.json<LimitView>();
    expect(view).toMatchObject({
      name: 'payments-api',
      max_concurrent: 5,
      rate: { limit: 100, period_seconds: 60 },
      in_use: 0,
      waiting: 0,
      keys: [],
      used_by: [],
    });

    const replaced = await call('PUT', '/limits/payments-api', {
      rate: { limit: 10, period_seconds: 1 },
    });
    expect(replaced.statusCode, replaced.body).toBe(200);
    expect(replaced.headers.location).toBeUndefined();
    const after = replaced.json<LimitView>();
    expect(after).toMatchObject({ max_concurrent: null, rate: { limit: 10, period_seconds: 1 } });
    expect(after.created_at).toBe(view.created_at);
    expect(Date.parse(after.updated_at)).toBeGreaterThanOrEqual(Date.parse(view.updated_at));
  });

  it('accepts the bounds', async () => {
    const view = await putLimit('a', {
      max_concurrent: 100_000,
      rate: { limit: 1_000_000, period_seconds: 86_400 },
    });
    expect(view).toMatchObject({ name: 'a', max_concurrent: 100_000 });
    expect((await putLimit('b_1.x-y', { max_concurrent: 1 })).rate).toBeNull();
  });

  it('lists every problem of a request at once and stores nothing', async () => {
    const problem = await refused('PUT', '/limits/several-problems', {
      max_concurrent: 0,
      rate: { limit: 0, period_seconds: 0, burst: 3 },
      colour: 'red',
    });
    expect(paths(problem)).toEqual([
      'body',
      'body.max_concurrent',
      'body.rate',
      'body.rate.limit',
      'body.rate.period_seconds',
    ]);
    expect(problem.errors.filter((error) => /Unrecognized key/.test(error.message))).toHaveLength(
      2,
    );
  });

  it('refuses values out of range and of the wrong type', async () => {
    const cases: Array<[unknown, string[]]> = [
      [{ max_concurrent: 100_001 }, ['body.max_concurrent']],
      [{ max_concurrent: 1.5 }, ['body.max_concurrent']],
      [{ max_concurrent: '5' }, ['body.max_concurrent']],
      [
        { rate: { limit: 1_000_001, period_seconds: 86_401 } },
        ['body.rate.limit', 'body.rate.period_seconds'],
      ],
      [{ rate: { limit: 5 } }, ['body.rate.period_seconds']],
      [{ rate: null }, ['body.rate']],
    ];
    for (const [body, expected] of cases) {
      expect(paths(await refused('PUT', '/limits/ranges', body)), JSON.stringify(body)).toEqual(
        expected,
      );
    }
  });

  it('needs max_concurrent or rate', async () => {
    const problem = await refused('PUT', '/limits/empty', {});
    expect(problem.errors).toEqual([
      { path: 'body', message: 'give max_concurrent, rate or both' },
    ]);
  });

  it('refuses a bad name together with every problem of the body', async () => {
    const problem = await refused('PUT', '/limits/Bad:Name', { max_concurrent: 0, x: 1 });
    expect(paths(problem)).toEqual(['body', 'body.max_concurrent', 'params.name']);
    for (const name of ['-lead', 'a'.repeat(64), 'UPPER', 'a:b', 'sp%20ace']) {
      const bad = await refused('PUT', `/limits/${name}`, { max_concurrent: 1 });
      expect(paths(bad), name).toEqual(['params.name']);
    }
    await putLimit('a'.repeat(63), { max_concurrent: 1 });
  });

  it('is for editors: a viewer or operator is refused, nothing stored', async () => {
    for (const role of ['viewer', 'operator'] as const) {
      const response = await call('PUT', '/limits/roles', { max_concurrent: 1 }, role);
      expect(response.statusCode, role).toBe(403);
      const deleted = await call('DELETE', '/limits/payments-api', undefined, role);
      expect(deleted.statusCode, role).toBe(403);
    }
    expect((await call('GET', '/limits/roles', undefined, 'viewer')).statusCode).toBe(404);
    expect((await call('GET', '/limits', undefined, 'viewer')).statusCode).toBe(200);
    expect((await call('GET', '/limits')).statusCode).toBe(200);
    const anonymous = await ctx.app.inject({ method: 'GET', url: '/limits' });
    expect(anonymous.statusCode).toBe(401);
  });
});

describe('GET /limits and /limits/{name}', () => {
  it('reads a limit with no usage, and lists every limit by name', async () => {
    await putLimit('read-me', { max_concurrent: 3 });
    const read = await call('GET', '/limits/read-me', undefined, 'viewer');
    expect(read.statusCode).toBe(200);
    expect(read.json()).toEqual({
      name: 'read-me',
      max_concurrent: 3,
      rate: null,
      created_at: expect.any(String),
      updated_at: expect.any(String),
      in_use: 0,
      waiting: 0,
      keys: [],
      used_by: [],
    });
    const list = await call('GET', '/limits', undefined, 'viewer');
    const names = list.json<{ items: LimitView[] }>().items.map((limit) => limit.name);
    expect(names).toContain('read-me');
    expect(names).toEqual([...names].sort());
  });

  it('answers 404 problems for unknown names', async () => {
    for (const method of ['GET', 'DELETE'] as const) {
      const response = await call(method, '/limits/never-made');
      expect(response.statusCode, method).toBe(404);
      expect(response.json()).toMatchObject({ status: 404, code: 'WF_ERR_LIMIT_NOT_FOUND' });
    }
    expect((await call('GET', '/limits/Not_Valid')).statusCode).toBe(400);
  });
});

describe('steps that name limits', () => {
  it('stores the limits of a step and shows them, key null when none', async () => {
    await putLimit('stored', { max_concurrent: 2 });
    const id = await createWorkflow([
      limitedStep('First', [{ name: 'stored', key: 'input.account_id' }]),
      limitedStep('Second', [{ name: 'stored' }]),
      { name: 'Third', step_type: 'noop' },
    ]);
    const view = (await call('GET', `/workflows/${id}`)).json<{ steps: { limits: unknown }[] }>();
    expect(view.steps.map((step) => step.limits)).toEqual([
      [{ name: 'stored', key: 'input.account_id' }],
      [{ name: 'stored', key: null }],
      [],
    ]);
    // A PUT without steps keeps them, limits included.
    const renamed = await call('PUT', `/workflows/${id}`, { name: 'Renamed' });
    expect(renamed.statusCode, renamed.body).toBe(200);
    expect(renamed.json().steps[0].limits).toEqual([{ name: 'stored', key: 'input.account_id' }]);
    expect((await call('GET', '/limits/stored')).json().used_by).toEqual([id]);
  });

  it('refuses a workflow naming unknown limits, listing every one, on create and update', async () => {
    await putLimit('known', { max_concurrent: 1 });
    const steps = [
      limitedStep('One', [{ name: 'known' }, { name: 'missing-a' }]),
      limitedStep('Two', [{ name: 'missing-b', key: 'input.x' }]),
    ];
    const created = await refused('POST', '/workflows', {
      name: 'Unknown limits',
      workflow_type: 'sequential',
      steps,
    });
    expect(paths(created)).toEqual(['steps[0].limits[1].name', 'steps[1].limits[0].name']);
    expect(created.errors[0]?.message).toMatch(/no limit is named "missing-a"/);

    const id = await createWorkflow([{ name: 'Plain', step_type: 'noop' }]);
    const updated = await refused('PUT', `/workflows/${id}`, { steps });
    expect(paths(updated)).toEqual(['steps[0].limits[1].name', 'steps[1].limits[0].name']);
    const stored = (await call('GET', `/workflows/${id}`)).json();
    expect(stored.version).toBe(1);
    expect(stored.steps[0].limits).toEqual([]);
  });

  it('lists unknown limits beside the other problems of a definition', async () => {
    await putLimit('known', { max_concurrent: 1 });
    const problem = await refused('POST', '/workflows', {
      name: 'Mixed',
      workflow_type: 'sequential',
      steps: [
        limitedStep('One', [
          { name: 'known', key: 'input.(' },
          { name: 'known' },
          { name: 'nowhere' },
        ]),
      ],
    });
    expect(paths(problem)).toEqual([
      'steps[0].limits[0].key',
      'steps[0].limits[1].name',
      'steps[0].limits[2].name',
    ]);
    expect(problem.errors.find((e) => e.path === 'steps[0].limits[0].key')?.message).toMatch(
      /invalid expression/,
    );
    expect(problem.errors.find((e) => e.path === 'steps[0].limits[1].name')?.message).toMatch(
      /already named by steps\[0\]\.limits\[0\]/,
    );
  });

  it('refuses a bad key expression, too many limits, a bad name and unknown fields', async () => {
    await putLimit('known', { max_concurrent: 1 });
    const badKey = await refused('POST', '/workflows', {
      name: 'Bad key',
      workflow_type: 'sequential',
      steps: [limitedStep('One', [{ name: 'known', key: '$$$ ((' }])],
    });
    expect(paths(badKey)).toEqual(['steps[0].limits[0].key']);

    const shape = await refused('POST', '/workflows', {
      name: 'Bad shape',
      workflow_type: 'sequential',
      steps: [
        limitedStep(
          'Six',
          Array.from({ length: 6 }, (_, i) => ({ name: `l${i}` })),
        ),
        limitedStep('Odd', [{ name: 'Has:Colon', key: '', weight: 2 }]),
      ],
    });
    expect(paths(shape)).toEqual([
      'body.steps.0.limits',
      'body.steps.1.limits.0',
      'body.steps.1.limits.0.key',
      'body.steps.1.limits.0.name',
    ]);
  });
});

describe('DELETE /limits/{name}', () => {
  it('is refused (409, naming the workflows) while a workflow that is not archived names it', async () => {
    await putLimit('shared', { max_concurrent: 2 });
    const first = await createWorkflow([limitedStep('One', [{ name: 'shared' }])]);
    const second = await createWorkflow(
      [limitedStep('One', [{ name: 'shared', key: 'input.k' }])],
      'active',
    );
    const archived = await createWorkflow([limitedStep('One', [{ name: 'shared' }])], 'archived');

    const refusedDelete = await call('DELETE', '/limits/shared');
    expect(refusedDelete.statusCode, refusedDelete.body).toBe(409);
    const problem = refusedDelete.json<Problem>();
    expect(problem).toMatchObject({ status: 409, code: 'WF_ERR_LIMIT_IN_USE' });
    expect(problem.type).toBe('urn:workflow-service:problem:limit-in-use');
    expect(problem.detail).toContain(first);
    expect(problem.detail).toContain(second);
    expect(problem.detail).not.toContain(archived);
    expect((await call('GET', '/limits/shared')).json().used_by).toEqual([first, second].sort());

    // One stops naming it, the other is archived: nothing holds it any more.
    const replaced = await call('PUT', `/workflows/${first}`, {
      steps: [{ name: 'One', step_type: 'noop' }],
    });
    expect(replaced.statusCode, replaced.body).toBe(200);
    expect((await call('DELETE', '/limits/shared')).statusCode).toBe(409);
    expect((await call('PUT', `/workflows/${second}`, { status: 'archived' })).statusCode).toBe(
      200,
    );

    const deleted = await call('DELETE', '/limits/shared');
    expect(deleted.statusCode, deleted.body).toBe(204);
    expect((await call('GET', '/limits/shared')).statusCode).toBe(404);
    // An archived workflow that names a deleted limit cannot be stored again until it exists.
    const revived = await refused('PUT', `/workflows/${archived}`, { status: 'active' });
    expect(paths(revived)).toEqual(['steps[0].limits[0].name']);
  });
});

describe('usage', () => {
  it('counts runs in use and waiting per key, busiest first', async () => {
    await putLimit('metered', { max_concurrent: 2 });
    await putLimit('other', { rate: { limit: 1, period_seconds: 1 } });
    const workflowId = await createWorkflow([limitedStep('One', [{ name: 'metered' }])]);
    const executionId = `ex_usage_${workflowId}`;
    await ctx.app.pg.query(
      `INSERT INTO workflow_executions (id, workflow_id, status, workflow_version)
       VALUES ($1, $2, 'completed', 1)`,
      [executionId, workflowId],
    );
    const runs: Array<[string, string | null, string[] | null]> = [
      // status, wait_kind, limit_keys
      ['running', null, [limitKeyText('metered', 'acct-1'), limitKeyText('other', null)]],
      ['running', null, [limitKeyText('metered', 'acct-1')]],
      ['running', null, [limitKeyText('metered', 'acct-1')]],
      ['waiting', LIMIT_WAIT_KIND, [limitKeyText('metered', 'acct-1')]],
      ['running', null, [limitKeyText('metered', 'acct:2')]],
      ['running', null, [limitKeyText('metered', null)]],
      ['waiting', LIMIT_WAIT_KIND, [limitKeyText('metered', null), limitKeyText('other', null)]],
      ['waiting', LIMIT_WAIT_KIND, [limitKeyText('metered', null)]],
      // Not counted: waiting for something else, queued, ended, or holding no limit.
      ['waiting', 'event', [limitKeyText('metered', 'acct-1')]],
      ['queued', null, [limitKeyText('metered', 'acct-1')]],
      ['completed', null, [limitKeyText('metered', 'acct-1')]],
      ['running', null, null],
      ['running', null, [limitKeyText('metered-not', 'acct-1')]],
    ];
    for (const [index, [status, waitKind, keys]] of runs.entries()) {
      await ctx.app.pg.query(
        `INSERT INTO step_executions (execution_id, step_id, status, wait_kind, limit_keys)
         VALUES ($1, $2, $3, $4, $5)`,
        [executionId, `run_${index}`, status, waitKind, keys],
      );
    }

    const metered = (await call('GET', '/limits/metered', undefined, 'viewer')).json<LimitView>();
    expect(metered).toMatchObject({ in_use: 5, waiting: 3, used_by: [workflowId] });
    expect(metered.keys).toEqual([
      { key: 'acct-1', in_use: 3, waiting: 1 },
      { key: null, in_use: 1, waiting: 2 },
      { key: 'acct:2', in_use: 1, waiting: 0 },
    ]);
    const other = (await call('GET', '/limits/other')).json<LimitView>();
    expect(other).toMatchObject({ in_use: 1, waiting: 1, used_by: [] });
    expect(other.keys).toEqual([{ key: null, in_use: 1, waiting: 1 }]);

    const listed = (await call('GET', '/limits')).json<{ items: LimitView[] }>().items;
    expect(listed.find((limit) => limit.name === 'metered')).toEqual(metered);
    expect(listed.find((limit) => limit.name === 'other')).toEqual(other);
  });

  it('lists at most 100 keys, while the totals count them all', async () => {
    await putLimit('many-keys', { max_concurrent: 1 });
    const workflowId = await createWorkflow([
      limitedStep('One', [{ name: 'many-keys', key: 'input.k' }]),
    ]);
    const executionId = `ex_many_${workflowId}`;
    await ctx.app.pg.query(
      `INSERT INTO workflow_executions (id, workflow_id, status, workflow_version)
       VALUES ($1, $2, 'completed', 1)`,
      [executionId, workflowId],
    );
    await ctx.app.pg.query(
      `INSERT INTO step_executions (execution_id, step_id, status, limit_keys)
       SELECT $1, 'run_' || i, 'running', ARRAY['many-keys:k' || lpad(i::text, 3, '0')]
         FROM generate_series(1, 120) AS i`,
      [executionId],
    );
    await ctx.app.pg.query(
      `INSERT INTO step_executions (execution_id, step_id, status, wait_kind, limit_keys)
       VALUES ($1, 'busiest', 'waiting', $2, ARRAY['many-keys:k120'])`,
      [executionId, LIMIT_WAIT_KIND],
    );
    const view = (await call('GET', '/limits/many-keys')).json<LimitView>();
    expect(view).toMatchObject({ in_use: 120, waiting: 1 });
    expect(view.keys).toHaveLength(100);
    expect(view.keys[0]).toEqual({ key: 'k120', in_use: 1, waiting: 1 });
    expect(view.keys[1]).toEqual({ key: 'k001', in_use: 1, waiting: 0 });
  });
});
