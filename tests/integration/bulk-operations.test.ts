import { describe, expect, it } from 'vitest';
import { useDatabaseClient, useTestApp } from '../helpers/test-app.js';
import { createWorkflow, NUMBER_CHECK_STEP, waitForExecution } from '../helpers/workflows.js';

/**
 * Bulk actions (README "Operations"): dry runs, operations in the background, skips counted
 * by reason, cancelling an operation halfway, and the 400s that change nothing.
 */

const ctx = useTestApp();
const pg = useDatabaseClient(ctx);

interface Operation {
  id: string;
  status: string;
  matched: number;
  counting: boolean;
  done: number;
  skipped: number;
  skipped_by_reason: Record<string, number>;
  failed: number;
  started_at: string | null;
  ended_at: string | null;
}

async function bulk(body: Record<string, unknown>) {
  return ctx.app.inject({ method: 'POST', url: '/executions/bulk', payload: body });
}

async function execute(workflowId: string, labels: Record<string, string>, input = {}) {
  const response = await ctx.app.inject({
    method: 'POST',
    url: `/workflows/${workflowId}/execute`,
    payload: { input_data: input, labels },
  });
  expect(response.statusCode, response.body).toBe(202);
  return response.json().id as string;
}

async function operation(id: string): Promise<Operation> {
  const response = await ctx.app.inject({ method: 'GET', url: `/operations/${id}` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Operation;
}

/** Polls the operation until `done` holds (bounded). */
async function untilOperation(id: string, done: (op: Operation) => boolean, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let op = await operation(id);
  while (!done(op)) {
    if (Date.now() > deadline) throw new Error(`operation ${id}: ${JSON.stringify(op)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    op = await operation(id);
  }
  return op;
}

async function statusesOf(ids: string[]): Promise<Record<string, number>> {
  const { rows } = await pg.db.query<{ status: string; n: number }>(
    'SELECT status, count(*)::int AS n FROM workflow_executions WHERE id = ANY($1) GROUP BY status',
    [ids],
  );
  return Object.fromEntries(rows.map((row) => [row.status, row.n]));
}

const waits = {
  id: 'wait',
  name: 'Wait',
  step_type: 'wait_for_event',
  config: { event: 'never.comes' },
};

async function waitingWorkflow(name: string) {
  return createWorkflow(ctx.app, { name, workflow_type: 'sequential', steps: [waits] });
}

async function untilWaiting(ids: string[]) {
  for (const id of ids) await waitForExecution(ctx.app, id, (e) => e.status === 'waiting');
}

describe('bulk actions', () => {
  it('refuses bad requests with a 400 that changes nothing', async () => {
    const before = await ctx.app.inject({ method: 'GET', url: '/operations' });
    for (const body of [
      { action: 'cancel' },
      { action: 'cancel', filter: {} },
      { action: 'cancel', filter: { status: undefined } },
      { action: 'explode', filter: { status: 'failed' } },
      { action: 'cancel', filter: { colour: 'red' } },
      { action: 'cancel', filter: { all: true, status: 'failed' } },
      { action: 'cancel', filter: { all: false } },
      { action: 'cancel', filter: { 'label.bad key': 'x' } },
      { action: 'cancel', filter: { labels: { order: 'v'.repeat(257) } } },
      { action: 'cancel', filter: { status: 'sleeping' } },
      { action: 'cancel', filter: { created_after: 'yesterday' } },
      { action: 'cancel', filter: { status: 'failed' }, extra: 1 },
      { action: 'cancel', filter: { status: 'failed' }, dry_run: 'yes' },
    ]) {
      const response = await bulk(body);
      expect(response.statusCode, JSON.stringify(body)).toBe(400);
      expect(response.headers['content-type']).toContain('application/problem+json');
    }
    const after = await ctx.app.inject({ method: 'GET', url: '/operations' });
    expect(after.json().items).toEqual(before.json().items);
    const missing = await ctx.app.inject({ method: 'GET', url: '/operations/op_nope' });
    expect(missing.statusCode).toBe(404);
    const cancelMissing = await ctx.app.inject({
      method: 'POST',
      url: '/operations/op_nope/cancel',
    });
    expect(cancelMissing.statusCode).toBe(404);
  });

  it('previews with a dry run, then cancels exactly what it previewed', async () => {
    const workflowId = await waitingWorkflow('bulk cancel');
    const acme = [];
    for (let i = 0; i < 25; i += 1) acme.push(await execute(workflowId, { tenant: 'acme' }));
    const other = [await execute(workflowId, { tenant: 'other' })];
    await untilWaiting([...acme, ...other]);
    const filter = { workflow_id: workflowId, 'label.tenant': 'acme' };

    const dry = await bulk({ action: 'cancel', filter, dry_run: true });
    expect(dry.statusCode, dry.body).toBe(200);
    expect(dry.json()).toMatchObject({ action: 'cancel', dry_run: true, matched: 25 });
    expect(dry.json().sample).toEqual(acme.slice(5).reverse());
    expect(await statusesOf(acme)).toEqual({ waiting: 25 });
    // The same filter through the list shows the same executions.
    const listed = await ctx.app.inject({
      method: 'GET',
      url: `/executions?workflow_id=${workflowId}&label.tenant=acme&limit=20`,
    });
    expect(listed.json().items.map((item: { id: string }) => item.id)).toEqual(dry.json().sample);

    const started = await bulk({ action: 'cancel', filter, reason: 'tenant offboarded' });
    expect(started.statusCode, started.body).toBe(202);
    expect(started.headers.location).toBe(`/operations/${started.json().id}`);
    const done = await untilOperation(started.json().id, (op) => op.status !== 'running');
    expect(done).toMatchObject({ status: 'completed', matched: 25, done: 25, skipped: 0 });
    expect(done.ended_at).not.toBeNull();
    expect(await statusesOf(acme)).toEqual({ cancelled: 25 });
    expect(await statusesOf(other)).toEqual({ waiting: 1 });

    // Again: all of them are finished now, so each is skipped with the reason counted.
    const again = await bulk({ action: 'cancel', filter });
    const skipped = await untilOperation(again.json().id, (op) => op.status !== 'running');
    expect(skipped).toMatchObject({
      status: 'completed',
      matched: 25,
      done: 0,
      skipped: 25,
      skipped_by_reason: { already_finished: 25 },
    });
    const ended = await ctx.app.inject({
      method: 'POST',
      url: `/operations/${again.json().id}/cancel`,
    });
    expect(ended.statusCode).toBe(409);
  });

  it('pauses and resumes by filter, skipping what the state does not allow', async () => {
    const workflowId = await waitingWorkflow('bulk pause');
    const ids = [];
    for (let i = 0; i < 6; i += 1) ids.push(await execute(workflowId, { batch: 'p' }));
    await untilWaiting(ids);
    const cancelled = await ctx.app.inject({
      method: 'POST',
      url: `/executions/${ids[0]}/cancel`,
    });
    expect(cancelled.statusCode).toBe(200);
    const filter = { labels: { batch: 'p' } };
    const paused = await bulk({ action: 'pause', filter });
    const pauseOp = await untilOperation(paused.json().id, (op) => op.status !== 'running');
    expect(pauseOp).toMatchObject({ done: 5, skipped: 1, skipped_by_reason: { not_running: 1 } });
    expect(await statusesOf(ids)).toEqual({ paused: 5, cancelled: 1 });
    const resumed = await bulk({ action: 'resume', filter });
    const resumeOp = await untilOperation(resumed.json().id, (op) => op.status !== 'running');
    expect(resumeOp).toMatchObject({ done: 5, skipped: 1, skipped_by_reason: { not_paused: 1 } });
    // Resumed, each runs again until it waits for its event once more.
    await untilWaiting(ids.slice(1));
    expect(await statusesOf(ids)).toEqual({ waiting: 5, cancelled: 1 });
  });

  it('retries failed executions once each and deletes finished ones', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'bulk retry',
      workflow_type: 'sequential',
      steps: [NUMBER_CHECK_STEP],
    });
    const failed = [];
    for (let i = 0; i < 10; i += 1) failed.push(await execute(workflowId, {}, { n: 'x' }));
    const good = await execute(workflowId, {}, { n: '1' });
    for (const id of [...failed, good]) await waitForExecution(ctx.app, id);
    const retry = await bulk({
      action: 'retry',
      filter: { workflow_id: workflowId, status: 'failed' },
    });
    const retried = await untilOperation(retry.json().id, (op) => op.status !== 'running');
    expect(retried).toMatchObject({ status: 'completed', matched: 10, done: 10, skipped: 0 });
    for (const id of failed) await waitForExecution(ctx.app, id, (e) => e.status === 'failed');
    const { rows } = await pg.db.query<{ first_attempt: number }>(
      `SELECT first_attempt FROM step_executions WHERE execution_id = ANY($1)`,
      [failed],
    );
    expect(rows.map((row) => row.first_attempt)).toEqual(failed.map(() => 2));

    const counters = await ctx.app.inject({ method: 'GET', url: `/workflows/${workflowId}` });
    const deleted = await bulk({ action: 'delete', filter: { workflow_id: workflowId } });
    expect(deleted.statusCode, deleted.body).toBe(202);
    const deleteOp = await untilOperation(deleted.json().id, (op) => op.status !== 'running');
    expect(deleteOp).toMatchObject({ status: 'completed', matched: 11, done: 11 });
    expect(await statusesOf([...failed, good])).toEqual({});
    // The workflow's counters keep what the deleted executions counted.
    const after = await ctx.app.inject({ method: 'GET', url: `/workflows/${workflowId}` });
    expect(after.json().execution_count).toBe(counters.json().execution_count);
  });

  it('deletes only finished executions whose parent has finished too', async () => {
    const child = await createWorkflow(ctx.app, {
      name: 'quick child',
      workflow_type: 'sequential',
      steps: [{ id: 'n', name: 'n', step_type: 'noop' }],
    });
    const parent = await createWorkflow(ctx.app, {
      name: 'parent that waits on',
      workflow_type: 'sequential',
      steps: [
        { id: 'sub', name: 'Sub', step_type: 'subworkflow', config: { workflow_id: child } },
        { ...waits, dependencies: ['sub'] },
      ],
    });
    const parentId = await execute(parent, { family: 'f' });
    await waitForExecution(ctx.app, parentId, (e) => e.status === 'waiting');
    const deleted = await bulk({ action: 'delete', filter: { 'label.family': 'f' } });
    const op = await untilOperation(deleted.json().id, (o) => o.status !== 'running');
    // The child inherited the label and has ended; its parent still runs.
    expect(op).toMatchObject({
      matched: 2,
      done: 0,
      skipped_by_reason: { unfinished: 1, parent_unfinished: 1 },
    });
    const { rows } = await pg.db.query('SELECT id FROM workflow_executions WHERE labels @> $1', [
      JSON.stringify({ family: 'f' }),
    ]);
    expect(rows).toHaveLength(2);
  });

  it('stops halfway when the operation is cancelled, leaving the rest alone', async () => {
    await ctx.app.engine?.bulk.stop();
    const workflowId = await waitingWorkflow('bulk halfway');
    const ids = [];
    for (let i = 0; i < 60; i += 1) ids.push(await execute(workflowId, {}));
    await untilWaiting(ids);
    const started = await bulk({ action: 'cancel', filter: { workflow_id: workflowId } });
    const id = started.json().id as string;
    // A slow runner of its own: one action at a time, five a batch.
    const { BulkRunner } = await import('../../src/engine/bulk-runner.js');
    const { storedFilter } = await import('../../src/core/bulk-operation-manager.js');
    const runner = new BulkRunner({
      pool: ctx.app.pg,
      state: ctx.app.engineParts.state,
      effects: ctx.app.engineParts.effects,
      filterOf: storedFilter,
      logger: ctx.app.log,
      batchSize: 5,
      parallel: 1,
    });
    const working = runner.pass();
    await untilOperation(id, (op) => op.done >= 10);
    const cancelled = await ctx.app.inject({ method: 'POST', url: `/operations/${id}/cancel` });
    expect(cancelled.statusCode).toBe(200);
    expect(cancelled.json().status).toBe('cancelled');
    await working;
    const op = await operation(id);
    expect(op.status).toBe('cancelled');
    const statuses = await statusesOf(ids);
    expect(statuses.cancelled).toBeGreaterThanOrEqual(10);
    expect(statuses.waiting).toBeGreaterThan(0);
    // What the operation counts is what happened: no action after the cancel.
    expect(statuses.cancelled).toBe(op.done);
    const again = await ctx.app.inject({ method: 'POST', url: `/operations/${id}/cancel` });
    expect(again.json().status).toBe('cancelled');
    ctx.app.engine?.bulk.start();
  });
});
