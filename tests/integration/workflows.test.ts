import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/test-app.js';
import { SEED_EXAMPLE } from '../helpers/workflows.js';

const ctx = useTestApp();

interface StepBody {
  id: string;
  name: string;
  step_type: string;
  dependencies: string[];
  config: Record<string, unknown>;
  timeout_seconds: number;
  retry_count: number;
}

interface WorkflowBody {
  id: string;
  name: string;
  description: string | null;
  workflow_type: string;
  status: string;
  tags: string[];
  version: number;
  created_at: string;
  updated_at: string;
  execution_count: number;
  steps: StepBody[];
}

async function create(body: Record<string, unknown>): Promise<WorkflowBody> {
  const response = await ctx.app.inject({ method: 'POST', url: '/workflows', payload: body });
  expect(response.statusCode, response.body).toBe(201);
  return response.json<WorkflowBody>();
}

describe('workflow CRUD over HTTP', () => {
  it('accepts the seed README example as-is and derives step ids from names', async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: '/workflows',
      payload: SEED_EXAMPLE,
    });
    expect(response.statusCode).toBe(201);
    const created = response.json<WorkflowBody>();
    expect(created.id).toMatch(/^wf_/);
    expect(response.headers.location).toBe(`/workflows/${created.id}`);

    const got = await ctx.app.inject({ method: 'GET', url: `/workflows/${created.id}` });
    expect(got.statusCode).toBe(200);
    const body = got.json<WorkflowBody>();
    expect(body).toMatchObject({
      id: created.id,
      name: 'Data Processing Workflow',
      description: 'Process data through multiple steps',
      workflow_type: 'sequential',
      status: 'draft',
      version: 1,
      execution_count: 0,
      tags: [],
    });
    expect(body.steps.map((step) => step.id)).toEqual([
      'data_validation',
      'data_transformation',
      'data_storage',
    ]);
    // Sequential order is implicit: nothing was declared, so nothing is shown as declared.
    expect(body.steps.map((step) => step.dependencies)).toEqual([[], [], []]);
    expect(body.steps[0]).toMatchObject({
      name: 'Data Validation',
      step_type: 'validation',
      config: { schema: 'data_schema.json' },
      timeout_seconds: 300,
      retry_count: 3,
    });
  });

  it('stores the seed columns of workflow_steps and pins version 1', async () => {
    const created = await create(SEED_EXAMPLE);
    const steps = await ctx.app.pg.query(
      `SELECT step_key, name, step_type, config, dependencies, timeout_seconds, retry_count,
              position, definition
         FROM workflow_steps WHERE workflow_id = $1 ORDER BY position`,
      [created.id],
    );
    expect(steps.rows.map((row) => row.step_key)).toEqual([
      'data_validation',
      'data_transformation',
      'data_storage',
    ]);
    expect(steps.rows[1]).toMatchObject({
      name: 'Data Transformation',
      step_type: 'transformation',
      config: { rules: 'transform_rules.json' },
      dependencies: [],
      timeout_seconds: 300,
      retry_count: 3,
      position: 1,
    });
    expect(steps.rows[1].definition.depends_on).toEqual(['data_validation']);
    const versions = await ctx.app.pg.query(
      'SELECT version, definition FROM workflow_versions WHERE workflow_id = $1',
      [created.id],
    );
    expect(versions.rows).toHaveLength(1);
    expect(versions.rows[0].version).toBe(1);
    expect(versions.rows[0].definition.steps).toHaveLength(3);
  });

  it('accepts `event` as an alias of event_driven and shows declared dependencies', async () => {
    const created = await create({
      name: 'On order',
      workflow_type: 'event',
      config: { trigger: { event: 'order.created' } },
      steps: [
        { id: 'a', name: 'A', step_type: 'noop' },
        { id: 'b', name: 'B', step_type: 'noop', dependencies: ['A'] },
      ],
    });
    expect(created.workflow_type).toBe('event_driven');
    expect(created.steps.map((step) => step.dependencies)).toEqual([[], ['a']]);
  });

  it('updates given fields, bumps the version and keeps steps when not given', async () => {
    const created = await create({ ...SEED_EXAMPLE, tags: ['etl'] });
    const response = await ctx.app.inject({
      method: 'PUT',
      url: `/workflows/${created.id}`,
      payload: { name: 'Renamed', status: 'active', tags: ['etl', 'nightly'] },
    });
    expect(response.statusCode, response.body).toBe(200);
    const updated = response.json<WorkflowBody>();
    expect(updated).toMatchObject({
      id: created.id,
      name: 'Renamed',
      status: 'active',
      tags: ['etl', 'nightly'],
      version: 2,
      description: 'Process data through multiple steps',
      created_at: created.created_at,
    });
    expect(updated.steps).toEqual(created.steps);
    expect(Date.parse(updated.updated_at)).toBeGreaterThanOrEqual(Date.parse(created.updated_at));

    const versions = await ctx.app.pg.query(
      'SELECT version, definition FROM workflow_versions WHERE workflow_id = $1 ORDER BY version',
      [created.id],
    );
    expect(versions.rows.map((row) => row.version)).toEqual([1, 2]);
    expect(versions.rows[1].definition.steps).toEqual(versions.rows[0].definition.steps);
  });

  it('keeps implicit dependencies implicit when steps are kept but the type changes', async () => {
    const created = await create(SEED_EXAMPLE);
    const response = await ctx.app.inject({
      method: 'PUT',
      url: `/workflows/${created.id}`,
      payload: { workflow_type: 'parallel' },
    });
    expect(response.statusCode, response.body).toBe(200);
    const version = await ctx.app.pg.query(
      'SELECT definition FROM workflow_versions WHERE workflow_id = $1 AND version = 2',
      [created.id],
    );
    const steps = version.rows[0].definition.steps as Array<{ depends_on: string[] }>;
    expect(steps.map((step) => step.depends_on)).toEqual([[], [], []]);
    const stored = await ctx.app.pg.query(
      `SELECT definition->'depends_on' AS depends_on FROM workflow_steps
        WHERE workflow_id = $1 ORDER BY position`,
      [created.id],
    );
    expect(stored.rows.map((row) => row.depends_on)).toEqual([[], [], []]);
  });

  it('applies concurrent updates one after the other, losing none', async () => {
    const created = await create(SEED_EXAMPLE);
    const updates = [
      { name: 'Concurrent name' },
      { tags: ['concurrent'] },
      { metadata: { owner: 'team-a' } },
      { steps: [{ id: 'only', name: 'Only', step_type: 'noop' }] },
      { description: 'Concurrent description' },
      { status: 'active' },
    ];
    const responses = await Promise.all(
      updates.map((payload) =>
        ctx.app.inject({ method: 'PUT', url: `/workflows/${created.id}`, payload }),
      ),
    );
    expect(responses.map((response) => response.statusCode)).toEqual(updates.map(() => 200));
    expect(responses.map((response) => response.json<WorkflowBody>().version).sort()).toEqual([
      2, 3, 4, 5, 6, 7,
    ]);
    const got = await ctx.app.inject({ method: 'GET', url: `/workflows/${created.id}` });
    expect(got.json()).toMatchObject({
      name: 'Concurrent name',
      tags: ['concurrent'],
      metadata: { owner: 'team-a' },
      description: 'Concurrent description',
      status: 'active',
      version: 7,
      steps: [{ id: 'only' }],
    });
    const versions = await ctx.app.pg.query(
      `SELECT version, jsonb_array_length(definition->'steps') AS steps
         FROM workflow_versions WHERE workflow_id = $1 ORDER BY version`,
      [created.id],
    );
    expect(versions.rows.map((row) => row.version)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(versions.rows[6].steps).toBe(1);
  });

  it('replaces steps as a whole when given', async () => {
    const created = await create(SEED_EXAMPLE);
    const response = await ctx.app.inject({
      method: 'PUT',
      url: `/workflows/${created.id}`,
      payload: {
        steps: [
          { id: 'fetch', name: 'Fetch', step_type: 'noop' },
          { id: 'data_storage', name: 'Data Storage', step_type: 'storage' },
        ],
      },
    });
    expect(response.statusCode, response.body).toBe(200);
    const updated = response.json<WorkflowBody>();
    expect(updated.version).toBe(2);
    expect(updated.steps.map((step) => step.id)).toEqual(['fetch', 'data_storage']);
    const rows = await ctx.app.pg.query(
      'SELECT step_key, position FROM workflow_steps WHERE workflow_id = $1 ORDER BY position',
      [created.id],
    );
    expect(rows.rows).toEqual([
      { step_key: 'fetch', position: 0 },
      { step_key: 'data_storage', position: 1 },
    ]);
  });

  it('clears the description with an explicit null', async () => {
    const created = await create(SEED_EXAMPLE);
    const response = await ctx.app.inject({
      method: 'PUT',
      url: `/workflows/${created.id}`,
      payload: { description: null },
    });
    expect(response.json<WorkflowBody>().description).toBeNull();
  });

  it('rejects an invalid update and changes nothing', async () => {
    const created = await create(SEED_EXAMPLE);
    const response = await ctx.app.inject({
      method: 'PUT',
      url: `/workflows/${created.id}`,
      payload: { workflow_type: 'loop' },
    });
    expect(response.statusCode).toBe(400);
    expect(response.json().errors).toContainEqual(
      expect.objectContaining({ path: expect.stringContaining('config.loop') }),
    );
    const got = await ctx.app.inject({ method: 'GET', url: `/workflows/${created.id}` });
    expect(got.json<WorkflowBody>()).toMatchObject({ workflow_type: 'sequential', version: 1 });
  });

  it('deletes a workflow with everything it owns', async () => {
    const created = await create(SEED_EXAMPLE);
    const deleted = await ctx.app.inject({ method: 'DELETE', url: `/workflows/${created.id}` });
    expect(deleted.statusCode).toBe(204);
    expect(deleted.body).toBe('');
    const got = await ctx.app.inject({ method: 'GET', url: `/workflows/${created.id}` });
    expect(got.statusCode).toBe(404);
    const again = await ctx.app.inject({ method: 'DELETE', url: `/workflows/${created.id}` });
    expect(again.statusCode).toBe(404);
    const steps = await ctx.app.pg.query('SELECT 1 FROM workflow_steps WHERE workflow_id = $1', [
      created.id,
    ]);
    expect(steps.rowCount).toBe(0);
  });

  it('refuses to delete a workflow with unfinished executions (409), allows finished ones', async () => {
    const created = await create(SEED_EXAMPLE);
    const insertExecution = (id: string, status: string) =>
      ctx.app.pg.query(
        `INSERT INTO workflow_executions (id, workflow_id, status, workflow_version)
         VALUES ($1, $2, $3, 1)`,
        [id, created.id, status],
      );
    await insertExecution(`ex_done_${created.id}`, 'completed');
    await insertExecution(`ex_run_${created.id}`, 'running');
    const refused = await ctx.app.inject({ method: 'DELETE', url: `/workflows/${created.id}` });
    expect(refused.statusCode).toBe(409);
    expect(refused.headers['content-type']).toContain('application/problem+json');
    expect(refused.json()).toMatchObject({
      status: 409,
      code: 'WF_ERR_WORKFLOW_HAS_ACTIVE_EXECUTIONS',
    });
    expect(
      (await ctx.app.inject({ method: 'GET', url: `/workflows/${created.id}` })).statusCode,
    ).toBe(200);

    await ctx.app.pg.query(`UPDATE workflow_executions SET status = 'cancelled' WHERE id = $1`, [
      `ex_run_${created.id}`,
    ]);
    const deleted = await ctx.app.inject({ method: 'DELETE', url: `/workflows/${created.id}` });
    expect(deleted.statusCode).toBe(204);
    const executions = await ctx.app.pg.query(
      'SELECT 1 FROM workflow_executions WHERE workflow_id = $1',
      [created.id],
    );
    expect(executions.rowCount).toBe(0);
  });

  it('lists with filters: status, workflow_type (alias event), tag, search', async () => {
    const marker = `m${Date.now().toString(36)}`;
    const a = await create({
      name: `${marker} Alpha 100%_done`,
      workflow_type: 'parallel',
      status: 'active',
      tags: [marker, 'x'],
    });
    const b = await create({
      name: `${marker} Beta`,
      workflow_type: 'event_driven',
      tags: [marker, 'y'],
    });
    const list = async (query: string) => {
      const response = await ctx.app.inject({ method: 'GET', url: `/workflows?${query}` });
      expect(response.statusCode, response.body).toBe(200);
      return response.json<{ items: Array<{ id: string; steps_count: number }> }>().items;
    };
    const ids = (items: Array<{ id: string }>) => items.map((item) => item.id);

    expect(ids(await list(`tag=${marker}`))).toEqual([b.id, a.id]);
    expect(ids(await list(`tag=${marker}&tag=x`))).toEqual([a.id]);
    expect(ids(await list(`tag=${marker}&status=active`))).toEqual([a.id]);
    expect(ids(await list(`tag=${marker}&workflow_type=event`))).toEqual([b.id]);
    expect(ids(await list(`tag=${marker}&workflow_type=parallel`))).toEqual([a.id]);
    expect(ids(await list(`search=${marker.toUpperCase()}%20beta`))).toEqual([b.id]);
    // LIKE wildcards are literal: "%_" matches only the name that contains them.
    expect(ids(await list(`search=${encodeURIComponent('100%_')}`))).toEqual([a.id]);
    expect(ids(await list(`search=${encodeURIComponent(`${marker} %`)}`))).toEqual([]);
    const [item] = await list(`tag=${marker}&tag=y`);
    expect(item).toMatchObject({ id: b.id, steps_count: 0 });
    expect(item).not.toHaveProperty('steps');
  });

  it('lists steps_count for workflows with steps', async () => {
    const created = await create({ ...SEED_EXAMPLE, tags: ['counted'] });
    const response = await ctx.app.inject({ method: 'GET', url: '/workflows?tag=counted' });
    expect(response.json().items[0]).toMatchObject({ id: created.id, steps_count: 3 });
  });

  it('serves the routes in the OpenAPI document', async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/docs/json' });
    expect(response.statusCode).toBe(200);
    const document = response.json<{ paths: Record<string, Record<string, unknown>> }>();
    expect(Object.keys(document.paths)).toEqual(
      expect.arrayContaining(['/workflows', '/workflows/{id}']),
    );
    expect(Object.keys(document.paths['/workflows'] ?? {})).toEqual(
      expect.arrayContaining(['get', 'post']),
    );
    expect(Object.keys(document.paths['/workflows/{id}'] ?? {})).toEqual(
      expect.arrayContaining(['get', 'put', 'delete']),
    );
  });
});
