import { describe, expect, it } from 'vitest';
import { useDatabaseClient, useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  getExecution,
  startExecution,
  stepStatuses,
  waitForExecution,
} from '../helpers/workflows.js';

/**
 * Version history and upgrades of executions (README "Versions, upgrades and edits"): the
 * history with its authors and summaries, starting an older version, the compatibility gate
 * (every conflict listed, nothing changed), dry-run plans, an upgrade that then completes on
 * the new version, the 404s, 409s and 400s, and the bulk upgrade with its skips.
 */

const ctx = useTestApp();
const pg = useDatabaseClient(ctx);

const noop = (id: string, extra: Record<string, unknown> = {}) => ({
  id,
  name: id,
  step_type: 'noop',
  config: { step: id },
  ...extra,
});
const waitFor = (event: string, extra: Record<string, unknown> = {}) => ({
  id: 'wait',
  name: 'wait',
  step_type: 'wait_for_event',
  config: { event },
  ...extra,
});

async function put(workflowId: string, body: Record<string, unknown>) {
  const response = await ctx.app.inject({
    method: 'PUT',
    url: `/workflows/${workflowId}`,
    payload: body,
  });
  expect(response.statusCode, response.body).toBe(200);
  return response.json().version as number;
}

function upgrade(executionId: string, body: unknown) {
  return ctx.app.inject({
    method: 'POST',
    url: `/executions/${executionId}/upgrade`,
    payload: body as Record<string, unknown>,
  });
}

async function untilWaiting(id: string) {
  return waitForExecution(ctx.app, id, (e) => e.status === 'waiting');
}

async function runRows(executionId: string) {
  const { rows } = await pg.db.query<{ step_id: string; status: string }>(
    `SELECT step_id, status FROM step_executions
      WHERE execution_id = $1 AND item_index = -1 ORDER BY step_id`,
    [executionId],
  );
  return rows;
}

describe('version history', () => {
  it('lists versions newest first with who stored them and what changed, a page at a time', async () => {
    const id = await createWorkflow(ctx.app, {
      name: 'history',
      workflow_type: 'sequential',
      steps: [noop('a'), noop('b')],
    });
    await put(id, { steps: [noop('a', { config: { changed: true } }), noop('c')] });
    await put(id, { config: { timeout_seconds: 60 } });
    await put(id, { description: 'only the description' });

    const all = await ctx.app.inject({ method: 'GET', url: `/workflows/${id}/versions` });
    expect(all.statusCode, all.body).toBe(200);
    const items = all.json().items as Array<Record<string, unknown>>;
    expect(items.map((item) => item.version)).toEqual([4, 3, 2, 1]);
    expect(items.map((item) => item.summary)).toEqual([
      'no change to steps or config',
      'config changed',
      'steps added: c; removed: b; changed: a',
      'initial version',
    ]);
    for (const item of items) {
      expect(item.created_by).toBe('anonymous');
      expect(Number.isNaN(Date.parse(String(item.created_at)))).toBe(false);
    }
    expect(all.json().next_cursor).toBeNull();

    const first = await ctx.app.inject({ method: 'GET', url: `/workflows/${id}/versions?limit=3` });
    expect(first.json().items.map((item: { version: number }) => item.version)).toEqual([4, 3, 2]);
    const cursor = first.json().next_cursor as string;
    const second = await ctx.app.inject({
      method: 'GET',
      url: `/workflows/${id}/versions?limit=3&cursor=${cursor}`,
    });
    expect(second.json()).toEqual({ items: [items[3]], next_cursor: null });

    const one = await ctx.app.inject({ method: 'GET', url: `/workflows/${id}/versions/1` });
    expect(one.statusCode, one.body).toBe(200);
    expect(one.json().summary).toBe('initial version');
    expect(one.json().definition.steps.map((step: { id: string }) => step.id)).toEqual(['a', 'b']);
    expect(one.json().definition.workflow_type).toBe('sequential');

    for (const url of [
      `/workflows/${id}/versions/9`,
      '/workflows/wf_missing/versions',
      '/workflows/wf_missing/versions/1',
    ]) {
      const missing = await ctx.app.inject({ method: 'GET', url });
      expect(missing.statusCode, url).toBe(404);
    }
    for (const url of [
      `/workflows/${id}/versions/0`,
      `/workflows/${id}/versions/x`,
      `/workflows/${id}/versions?cursor=nope`,
      `/workflows/${id}/versions?limit=0`,
    ]) {
      const bad = await ctx.app.inject({ method: 'GET', url });
      expect(bad.statusCode, url).toBe(400);
    }
  });

  it('runs an older version when asked, and 404s for a version that does not exist', async () => {
    const id = await createWorkflow(ctx.app, {
      name: 'older',
      workflow_type: 'sequential',
      steps: [noop('a')],
    });
    await put(id, { steps: [noop('a'), noop('b')] });
    const started = await ctx.app.inject({
      method: 'POST',
      url: `/workflows/${id}/execute`,
      payload: { input_data: {}, version: 1 },
    });
    expect(started.statusCode, started.body).toBe(202);
    expect(started.json().workflow_version).toBe(1);
    const done = await waitForExecution(ctx.app, started.json().id);
    expect(done.status).toBe('completed');
    expect(Object.keys(stepStatuses(done))).toEqual(['a']);

    const head = await startExecution(ctx.app, id);
    expect((await waitForExecution(ctx.app, head)).workflow_version).toBe(2);

    for (const version of [3, 99]) {
      const missing = await ctx.app.inject({
        method: 'POST',
        url: `/workflows/${id}/execute`,
        payload: { version },
      });
      expect(missing.statusCode, missing.body).toBe(404);
      expect(missing.json().code).toBe('WF_ERR_WORKFLOW_VERSION_NOT_FOUND');
    }
    const bad = await ctx.app.inject({
      method: 'POST',
      url: `/workflows/${id}/execute`,
      payload: { version: 0 },
    });
    expect(bad.statusCode).toBe(400);
  });
});

describe('upgrades', () => {
  /** v1: a and b done, wait waiting for event `name`, later and tail pending after it. */
  async function waitingExecution(event: string) {
    const v1 = [
      noop('a'),
      noop('b'),
      waitFor(event, { dependencies: ['a'] }),
      noop('later', { dependencies: ['wait'] }),
      noop('tail', { dependencies: ['wait'], config: { v: 1 } }),
    ];
    const workflowId = await createWorkflow(ctx.app, {
      name: `upgrade ${event}`,
      workflow_type: 'parallel',
      steps: v1,
    });
    const executionId = await startExecution(ctx.app, workflowId);
    await untilWaiting(executionId);
    return { workflowId, executionId };
  }

  it('refuses an incompatible upgrade listing every conflict, dry run or not, changing nothing', async () => {
    const { workflowId, executionId } = await waitingExecution('refused');
    const v2 = await put(workflowId, {
      steps: [
        noop('b', { dependencies: ['c'] }),
        noop('c'),
        { id: 'wait', name: 'wait', step_type: 'delay', config: { seconds: 1 } },
      ],
    });
    const before = await runRows(executionId);
    for (const body of [{ to_version: v2 }, { to_version: v2, dry_run: true }]) {
      const refused = await upgrade(executionId, body);
      expect(refused.statusCode, refused.body).toBe(409);
      expect(refused.headers['content-type']).toContain('application/problem+json');
      expect(refused.json().code).toBe('WF_ERR_UPGRADE_CONFLICT');
      const conflicts = refused.json().errors as Array<{ path: string; message: string }>;
      expect(conflicts.map((conflict) => conflict.path)).toEqual([
        'steps.a',
        'steps.b',
        'steps.wait',
      ]);
      expect(conflicts[0]?.message).toContain('removes it');
      expect(conflicts[1]?.message).toContain('depend on c');
      expect(conflicts[2]?.message).toContain('delay');
    }
    const after = await getExecution(ctx.app, executionId);
    expect(after.workflow_version).toBe(1);
    expect(after.status).toBe('waiting');
    expect(await runRows(executionId)).toEqual(before);
    await ctx.app.inject({ method: 'POST', url: `/executions/${executionId}/cancel` });
  });

  it('plans with a dry run, then upgrades and completes on the new version', async () => {
    const { workflowId, executionId } = await waitingExecution('upgrade.go');
    const v2 = await put(workflowId, {
      steps: [
        noop('a'),
        noop('b'),
        waitFor('upgrade.go', { dependencies: ['a'] }),
        noop('tail', { dependencies: ['wait'], config: { v: 2 } }),
        noop('after', { dependencies: ['wait'], config: { added: true } }),
      ],
    });
    const before = await runRows(executionId);
    const plan = await upgrade(executionId, { dry_run: true });
    expect(plan.statusCode, plan.body).toBe(200);
    expect(plan.json()).toEqual({
      execution_id: executionId,
      dry_run: true,
      from_version: 1,
      to_version: v2,
      kept: ['a', 'b', 'wait'],
      added: ['after'],
      removed: ['later'],
      replanned: ['tail'],
    });
    expect(await runRows(executionId)).toEqual(before);
    expect((await getExecution(ctx.app, executionId)).workflow_version).toBe(1);

    const applied = await upgrade(executionId, { to_version: v2, reason: 'add the after step' });
    expect(applied.statusCode, applied.body).toBe(200);
    expect(applied.json().id).toBe(executionId);
    expect(applied.json().workflow_version).toBe(v2);
    expect(await runRows(executionId)).toEqual([
      { step_id: 'a', status: 'completed' },
      { step_id: 'after', status: 'pending' },
      { step_id: 'b', status: 'completed' },
      { step_id: 'tail', status: 'pending' },
      { step_id: 'wait', status: 'waiting' },
    ]);

    const event = await ctx.app.inject({
      method: 'POST',
      url: '/events',
      payload: { type: 'upgrade.go', data: { ok: true } },
    });
    expect([200, 202], event.body).toContain(event.statusCode);
    const done = await waitForExecution(ctx.app, executionId);
    expect(done.status).toBe('completed');
    expect(done.workflow_version).toBe(v2);
    expect(stepStatuses(done)).toEqual({
      a: 'completed',
      b: 'completed',
      wait: 'completed',
      tail: 'completed',
      after: 'completed',
    });
    expect(done.step_results.after).toEqual({ added: true });
    expect(done.step_results.tail).toEqual({ v: 2 });
    // The upgrade is in the history with why and what it changed; the dry run is not.
    const history = await ctx.app.inject({
      method: 'GET',
      url: `/executions/${executionId}/history`,
    });
    const actions = (
      history.json().items as Array<{
        kind: string;
        action?: string;
        reason?: string;
        detail?: object;
      }>
    ).filter((entry) => entry.kind === 'action');
    expect(actions).toHaveLength(1);
    expect(actions[0]).toMatchObject({
      action: 'upgrade',
      actor: 'anonymous',
      reason: 'add the after step',
      detail: { from_version: 1, to_version: v2, added: ['after'], removed: ['later'] },
    });
  });

  it('upgrades a failed execution, whose never-started steps may go, and a retry then completes', async () => {
    const check = {
      id: 'check',
      name: 'check',
      step_type: 'transform',
      config: { expression: '$number(input.n)' },
      retry_count: 0,
    };
    const workflowId = await createWorkflow(ctx.app, {
      name: 'fix and retry',
      workflow_type: 'sequential',
      steps: [check, noop('later')],
    });
    const executionId = await startExecution(ctx.app, workflowId, { n: 'x' });
    expect((await waitForExecution(ctx.app, executionId)).status).toBe('failed');
    const v2 = await put(workflowId, {
      steps: [{ ...check, config: { expression: '42' } }, noop('done')],
    });
    const applied = await upgrade(executionId, { to_version: v2 });
    expect(applied.statusCode, applied.body).toBe(200);
    expect(applied.json().status).toBe('failed');
    expect(await runRows(executionId)).toEqual([
      { step_id: 'check', status: 'failed' },
      { step_id: 'done', status: 'pending' },
    ]);
    const retried = await ctx.app.inject({
      method: 'POST',
      url: `/executions/${executionId}/retry`,
    });
    expect(retried.statusCode, retried.body).toBe(200);
    const done = await waitForExecution(ctx.app, executionId);
    expect(done.status).toBe('completed');
    expect(stepStatuses(done)).toEqual({ check: 'completed', done: 'completed' });
    expect(done.step_results.check).toBe(42);
  });

  it('answers 409 for a finished execution, 404 for what is missing, 400 for bad bodies', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'upgrade refusals',
      workflow_type: 'sequential',
      steps: [noop('a')],
    });
    const finished = await startExecution(ctx.app, workflowId);
    await waitForExecution(ctx.app, finished);
    await put(workflowId, { steps: [noop('a'), noop('b')] });
    const completed = await upgrade(finished, {});
    expect(completed.statusCode, completed.body).toBe(409);
    expect(completed.json().code).toBe('WF_ERR_EXECUTION_STATE');
    const noBody = await ctx.app.inject({ method: 'POST', url: `/executions/${finished}/upgrade` });
    expect(noBody.statusCode, noBody.body).toBe(409);

    const { executionId } = await waitingExecution('refusals');
    const missingVersion = await upgrade(executionId, { to_version: 99 });
    expect(missingVersion.statusCode, missingVersion.body).toBe(404);
    expect(missingVersion.json().code).toBe('WF_ERR_WORKFLOW_VERSION_NOT_FOUND');
    const missingExecution = await upgrade('ex_missing', {});
    expect(missingExecution.statusCode).toBe(404);
    for (const body of [
      { to_version: 1, colour: 'red' },
      { to_version: 0 },
      { to_version: 1.5 },
      { dry_run: 'yes' },
    ]) {
      const bad = await upgrade(executionId, body);
      expect(bad.statusCode, JSON.stringify(body)).toBe(400);
    }
    expect((await getExecution(ctx.app, executionId)).workflow_version).toBe(1);
    await ctx.app.inject({ method: 'POST', url: `/executions/${executionId}/cancel` });
  });
});

describe('bulk upgrade', () => {
  async function operation(id: string) {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const response = await ctx.app.inject({ method: 'GET', url: `/operations/${id}` });
      expect(response.statusCode, response.body).toBe(200);
      if (response.json().status !== 'running') return response.json();
      if (Date.now() > deadline) throw new Error(`operation ${id}: ${response.body}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  it('upgrades what the gate allows and skips the rest with their reasons', async () => {
    const labels = { batch: 'bulk-upgrade' };
    const start = async (workflowId: string) => {
      const response = await ctx.app.inject({
        method: 'POST',
        url: `/workflows/${workflowId}/execute`,
        payload: { labels },
      });
      expect(response.statusCode, response.body).toBe(202);
      return response.json().id as string;
    };
    const compatible = await createWorkflow(ctx.app, {
      name: 'bulk compatible',
      workflow_type: 'sequential',
      steps: [waitFor('never.comes')],
    });
    const incompatible = await createWorkflow(ctx.app, {
      name: 'bulk incompatible',
      workflow_type: 'sequential',
      steps: [noop('a'), waitFor('never.comes')],
    });
    const upgraded = [await start(compatible), await start(compatible), await start(compatible)];
    const cancelled = await start(compatible);
    const refused = await start(incompatible);
    for (const id of [...upgraded, cancelled, refused]) await untilWaiting(id);
    await ctx.app.inject({ method: 'POST', url: `/executions/${cancelled}/cancel` });
    await put(compatible, { steps: [waitFor('never.comes'), noop('after')] });
    await put(incompatible, { steps: [waitFor('never.comes')] });

    for (const body of [
      { action: 'upgrade', filter: { 'label.batch': 'bulk-upgrade' } },
      { action: 'upgrade', to_version: 0, filter: { 'label.batch': 'bulk-upgrade' } },
      { action: 'upgrade', to_version: '2', filter: { 'label.batch': 'bulk-upgrade' } },
      { action: 'cancel', to_version: 2, filter: { 'label.batch': 'bulk-upgrade' } },
    ]) {
      const bad = await ctx.app.inject({ method: 'POST', url: '/executions/bulk', payload: body });
      expect(bad.statusCode, JSON.stringify(body)).toBe(400);
    }

    const asked = await ctx.app.inject({
      method: 'POST',
      url: '/executions/bulk',
      payload: { action: 'upgrade', to_version: 2, filter: { 'label.batch': 'bulk-upgrade' } },
    });
    expect(asked.statusCode, asked.body).toBe(202);
    expect(asked.json().to_version).toBe(2);
    const op = await operation(asked.json().id);
    expect(op).toMatchObject({
      status: 'completed',
      matched: 5,
      done: 3,
      skipped: 2,
      skipped_by_reason: { not_upgradable: 1, incompatible: 1 },
      failed: 0,
      to_version: 2,
    });
    for (const id of upgraded) {
      const execution = await getExecution(ctx.app, id);
      expect(execution.workflow_version).toBe(2);
      expect(stepStatuses(execution)).toEqual({ wait: 'waiting', after: 'pending' });
    }
    expect((await getExecution(ctx.app, refused)).workflow_version).toBe(1);
    expect((await getExecution(ctx.app, cancelled)).workflow_version).toBe(1);
    for (const id of [...upgraded, refused]) {
      await ctx.app.inject({ method: 'POST', url: `/executions/${id}/cancel` });
    }
  });
});
