import { beforeAll, describe, expect, it } from 'vitest';
import { createKey, TEST_JWT_SECRET, tokenFor } from '../helpers/security.js';
import { useDatabaseClient, useTestApp } from '../helpers/test-app.js';
import { type ExecutionBody, NUMBER_CHECK_STEP, waitUntil } from '../helpers/workflows.js';

/**
 * Edit and resume, and an execution's history (README "Edit and resume", "History"), through
 * HTTP with named callers: an API key and a JWT subject.
 */

const ctx = useTestApp({ AUTH_MODE: 'both', JWT_SECRET: TEST_JWT_SECRET });
const pg = useDatabaseClient(ctx);
let admin: { id: string; key: string };

beforeAll(async () => {
  admin = await createKey(ctx.app, 'admin', 'edit-history-admin');
});

interface HistoryEntry {
  at: string;
  kind: string;
  trigger?: string;
  caller?: string | null;
  trigger_detail?: Record<string, unknown>;
  step_id?: string;
  step_status?: string;
  attempt?: number;
  error?: { message: string };
  action?: string;
  actor?: string | null;
  reason?: string | null;
  detail?: Record<string, unknown>;
  status?: string;
}

type Headers = Record<string, string>;
const asAdmin = (): Headers => ({ 'x-api-key': admin.key });
const asOperatorJwt = (): Headers => ({ authorization: `Bearer ${tokenFor('operator')}` });

async function call(method: 'GET' | 'POST', url: string, payload?: unknown, headers = asAdmin()) {
  return ctx.app.inject({
    method,
    url,
    headers,
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });
}

async function workflow(name: string, steps: unknown[]): Promise<string> {
  const response = await call('POST', '/workflows', { name, workflow_type: 'sequential', steps });
  expect(response.statusCode, response.body).toBe(201);
  return response.json().id as string;
}

async function start(workflowId: string, input: Record<string, unknown>): Promise<string> {
  const response = await call('POST', `/workflows/${workflowId}/execute`, { input_data: input });
  expect(response.statusCode, response.body).toBe(202);
  return response.json().id as string;
}

type Execution = ExecutionBody & { updated_at: string; input_data: unknown };

async function execution(id: string): Promise<Execution> {
  const response = await call('GET', `/executions/${id}`);
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as Execution;
}

/** Polls until the execution's status is one of `statuses` (bounded). */
async function until(id: string, ...statuses: string[]): Promise<Execution> {
  let last: Execution | undefined;
  await waitUntil(
    async () => {
      last = await execution(id);
      return statuses.includes(last.status);
    },
    `${id} is ${statuses.join(' or ')}`,
  );
  return last as Execution;
}

async function history(id: string, query = ''): Promise<HistoryEntry[]> {
  const response = await call('GET', `/executions/${id}/history${query}`);
  expect(response.statusCode, response.body).toBe(200);
  return response.json().items as HistoryEntry[];
}

const double = {
  id: 'double',
  name: 'Double',
  step_type: 'transform',
  config: { expression: 'steps.check.output * 2' },
  retry_count: 0,
};

const chain = [
  { id: 'a', name: 'A', step_type: 'transform', config: { expression: 'input.v' } },
  { id: 'b', name: 'B', step_type: 'transform', config: { expression: 'steps.a.output + 1' } },
  { id: 'c', name: 'C', step_type: 'transform', config: { expression: 'steps.b.output * 10' } },
];

const waits = { id: 'wait', name: 'Wait', step_type: 'wait_for_event', config: { event: 'never' } };

describe('edit and resume', () => {
  it('a corrected input makes the failed step pass, and the edit is in the history', async () => {
    const workflowId = await workflow('edit-input', [NUMBER_CHECK_STEP, double]);
    const id = await start(workflowId, { n: 'x' });
    await until(id, 'failed');

    const response = await call('POST', `/executions/${id}/retry`, {
      input_data: { n: '3' },
      reason: 'typo in n',
    });
    expect(response.statusCode, response.body).toBe(200);
    const done = await until(id, 'completed', 'failed');
    expect(done.status).toBe('completed');
    expect(done.step_results).toMatchObject({ check: 3, double: 6 });

    const entries = await history(id);
    expect(entries[0]).toMatchObject({ kind: 'started', trigger: 'api', caller: admin.id });
    const edit = entries.find((entry) => entry.kind === 'action');
    expect(edit).toMatchObject({ action: 'edit', actor: admin.id, reason: 'typo in n' });
    expect(edit?.detail).toMatchObject({
      input_data: { before: { n: 'x' }, after: { n: '3' } },
      rerun: ['check', 'double'],
      kept: [],
    });
    // The failed attempt it replaced lives on in the edit's record.
    const before = edit?.detail?.before as { runs: Array<Record<string, unknown>> } | undefined;
    const replaced = before?.runs ?? [];
    expect(replaced.find((run) => run.step_id === 'check')).toMatchObject({ status: 'failed' });
    expect(entries.at(-1)).toMatchObject({ kind: 'ended', status: 'completed' });
    const ends = entries.filter((entry) => entry.kind === 'step_ended');
    expect(ends.map((entry) => [entry.step_id, entry.step_status])).toEqual([
      ['check', 'completed'],
      ['double', 'completed'],
    ]);
    const times = entries.map((entry) => entry.at);
    expect([...times].sort()).toEqual(times);
  });

  it('corrected outputs flow into the steps that run again from from_steps', async () => {
    const workflowId = await workflow('edit-outputs', chain);
    const id = await start(workflowId, { v: 1 });
    expect((await until(id, 'completed')).step_results).toMatchObject({ a: 1, b: 2, c: 20 });

    // A completed execution has no failed step to default to.
    const nothing = await call('POST', `/executions/${id}/retry`, { step_outputs: { a: 5 } });
    expect(nothing.statusCode, nothing.body).toBe(400);
    expect(nothing.body).toContain('from_steps');

    const response = await call('POST', `/executions/${id}/retry`, {
      from_steps: ['b'],
      step_outputs: { a: 5 },
      reason: 'a was wrong',
    });
    expect(response.statusCode, response.body).toBe(200);
    await waitUntil(async () => (await execution(id)).step_results.c === 60, 'c is 60');
    const done = await until(id, 'completed');
    expect(done.step_results).toMatchObject({ a: 5, b: 6, c: 60 });
    const runOf = (step: string) => done.steps.find((run) => run.step_id === step);
    expect(runOf('a')?.attempts).toBe(1);

    const edit = (await history(id)).find((entry) => entry.kind === 'action');
    expect(edit).toMatchObject({ action: 'edit', actor: admin.id, reason: 'a was wrong' });
    expect(edit?.detail).toMatchObject({
      rerun: ['b', 'c'],
      kept: ['a'],
      step_outputs: { a: { before: 1, after: 5 } },
    });
  });

  it('a dry run answers the plan and changes nothing', async () => {
    const workflowId = await workflow('edit-dry-run', [NUMBER_CHECK_STEP, double]);
    const id = await start(workflowId, { n: 'x' });
    const before = await until(id, 'failed');

    const response = await call('POST', `/executions/${id}/retry`, {
      input_data: { n: '4' },
      dry_run: true,
    });
    expect(response.statusCode, response.body).toBe(200);
    expect(response.json()).toEqual({
      dry_run: true,
      rerun: ['check', 'double'],
      kept: [],
      input_data: { before: { n: 'x' }, after: { n: '4' } },
    });
    // A plain dry run (no edits) plans the failed steps.
    const plain = await call('POST', `/executions/${id}/retry`, { dry_run: true });
    expect(plain.json()).toMatchObject({ dry_run: true, rerun: ['check', 'double'] });

    const after = await execution(id);
    expect(after.status).toBe('failed');
    expect(after.updated_at).toBe(before.updated_at);
    expect(after.input_data).toEqual({ n: 'x' });
    expect((await history(id)).some((entry) => entry.kind === 'action')).toBe(false);
  });

  it('refuses edits of a running execution, unknown steps, unfinished outputs, unknown fields', async () => {
    const waiting = await start(await workflow('edit-running', [waits]), {});
    await until(waiting, 'waiting');
    const running = await call('POST', `/executions/${waiting}/retry`, { input_data: { a: 1 } });
    expect(running.statusCode, running.body).toBe(409);
    expect(running.json().code).toBe('WF_ERR_EXECUTION_STATE');
    const dry = await call('POST', `/executions/${waiting}/retry`, { dry_run: true });
    expect(dry.statusCode).toBe(409);

    const failed = await start(await workflow('edit-bad', [NUMBER_CHECK_STEP, double]), { n: 'x' });
    await until(failed, 'failed');
    const unknownStep = await call('POST', `/executions/${failed}/retry`, { from_steps: ['nope'] });
    expect(unknownStep.statusCode, unknownStep.body).toBe(400);
    expect(unknownStep.body).toContain('nope');
    const unfinished = await call('POST', `/executions/${failed}/retry`, {
      step_outputs: { double: 1 },
    });
    expect(unfinished.statusCode, unfinished.body).toBe(400);
    expect(unfinished.body).toContain('double');
    for (const [action, body] of [
      ['retry', { colour: 'red' }],
      ['retry', { dry_run: 'yes' }],
      ['cancel', { reason: 'x', colour: 'red' }],
    ] as const) {
      const response = await call('POST', `/executions/${failed}/${action}`, body);
      expect(response.statusCode, `${action} ${response.body}`).toBe(400);
    }
    expect((await execution(failed)).status).toBe('failed');
    expect((await history(failed)).some((entry) => entry.kind === 'action')).toBe(false);
  });

  it('a retry without a body re-runs the failed steps as before', async () => {
    const workflowId = await workflow('plain-retry', [NUMBER_CHECK_STEP, double]);
    const id = await start(workflowId, { n: 'x' });
    await until(id, 'failed');
    const response = await call('POST', `/executions/${id}/retry`);
    expect(response.statusCode, response.body).toBe(200);
    await until(id, 'failed');
    const [retry] = (await history(id)).filter((entry) => entry.kind === 'action');
    expect(retry).toMatchObject({ action: 'retry', actor: admin.id, reason: null });
  });
});

describe('history', () => {
  it('records pause, resume and cancel with who and why, and pages through', async () => {
    const id = await start(await workflow('history-actions', [waits]), {});
    await until(id, 'waiting');
    const jwt = asOperatorJwt();
    for (const [action, reason] of [
      ['pause', 'maintenance'],
      ['resume', undefined],
      ['cancel', 'not needed'],
    ] as const) {
      const body = reason ? { reason } : undefined;
      const response = await call('POST', `/executions/${id}/${action}`, body, jwt);
      expect(response.statusCode, response.body).toBe(200);
    }
    const entries = await history(id);
    const actions = entries.filter((entry) => entry.kind === 'action');
    expect(actions.map((a) => [a.action, a.actor, a.reason])).toEqual([
      ['pause', 'user-operator', 'maintenance'],
      ['resume', 'user-operator', null],
      ['cancel', 'user-operator', 'not needed'],
    ]);
    expect(entries.some((entry) => entry.kind === 'step_started' && entry.step_id === 'wait')).toBe(
      true,
    );
    expect(entries.at(-1)).toMatchObject({ kind: 'ended', status: 'cancelled' });

    // Pages of two add up to the whole, in order.
    const paged: HistoryEntry[] = [];
    let cursor: string | null = null;
    do {
      const query: string = `?limit=2${cursor ? `&cursor=${cursor}` : ''}`;
      const response = await call('GET', `/executions/${id}/history${query}`);
      expect(response.statusCode, response.body).toBe(200);
      const page = response.json() as { items: HistoryEntry[]; next_cursor: string | null };
      expect(page.items.length).toBeLessThanOrEqual(2);
      paged.push(...page.items);
      cursor = page.next_cursor;
    } while (cursor);
    expect(paged).toEqual(entries);
    expect((await call('GET', `/executions/${id}/history?cursor=bogus`)).statusCode).toBe(400);
    expect((await call('GET', '/executions/nope/history')).statusCode).toBe(404);
  });

  it('says who published the event that started an execution', async () => {
    const created = await call('POST', '/workflows', {
      name: 'history-event',
      workflow_type: 'event_driven',
      status: 'active',
      config: { trigger: { event: 'history.tested' } },
      steps: [
        { id: 'echo', name: 'Echo', step_type: 'transform', config: { expression: 'input' } },
      ],
    });
    expect(created.statusCode, created.body).toBe(201);
    const published = await call(
      'POST',
      '/events',
      { id: 'history-event-1', type: 'history.tested', data: {} },
      asOperatorJwt(),
    );
    expect(published.statusCode, published.body).toBe(202);
    const [id] = published.json().started_executions as string[];
    expect(id).toBeDefined();
    const [start] = await history(id as string);
    expect(start).toMatchObject({
      kind: 'started',
      trigger: 'event',
      caller: 'user-operator',
      trigger_detail: { event_id: 'history-event-1', event_type: 'history.tested' },
    });
  });

  it('records bulk actions with the operation, and a purge deletes the records', async () => {
    const workflowId = await workflow('history-bulk', [waits]);
    const id = await start(workflowId, {});
    await until(id, 'waiting');
    const bulk = await call('POST', '/executions/bulk', {
      action: 'cancel',
      filter: { workflow_id: workflowId },
      reason: 'clean up',
    });
    expect(bulk.statusCode, bulk.body).toBe(202);
    await until(id, 'cancelled');
    await waitUntil(async () => (await history(id)).some((e) => e.kind === 'action'), 'recorded');
    const [cancel] = (await history(id)).filter((entry) => entry.kind === 'action');
    expect(cancel).toMatchObject({ action: 'cancel', actor: admin.id, reason: 'clean up' });
    expect(cancel?.detail).toMatchObject({ operation_id: bulk.json().id });

    const purge = await call('POST', '/executions/bulk', {
      action: 'delete',
      filter: { workflow_id: workflowId },
    });
    expect(purge.statusCode, purge.body).toBe(202);
    await waitUntil(
      async () => (await call('GET', `/executions/${id}`)).statusCode === 404,
      'deleted',
    );
    const { rows } = await pg.db.query(
      'SELECT count(*)::int AS n FROM execution_actions WHERE execution_id = $1',
      [id],
    );
    expect(rows[0]).toEqual({ n: 0 });
  });
});
