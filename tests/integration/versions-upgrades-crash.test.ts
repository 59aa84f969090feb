import { afterAll, describe, expect, it } from 'vitest';
import { runPool } from '../../bench/lib/util.js';
import { type ServiceProcess, startServiceProcess } from '../helpers/service-process.js';
import { testEnvironment, useDatabaseClient, useTestApp } from '../helpers/test-app.js';
import { createWorkflow, NUMBER_CHECK_STEP, waitUntil } from '../helpers/workflows.js';

/**
 * A bulk upgrade survives the worker doing it being killed (README "Versions, upgrades and
 * edits"): each execution's upgrade applies once or not at all. 300 failed executions are
 * upgraded to a version that adds a step; a slow worker is killed partway, another takes the
 * operation over, and in the end every execution is on the new version with exactly one run of
 * the added step, and at no point an execution is on one version with the other's runs.
 */

const EXECUTIONS = 300;
const ctx = useTestApp({ SERVICE_ROLE: 'api' });
const pg = useDatabaseClient(ctx);
const workers: ServiceProcess[] = [];

afterAll(async () => {
  await Promise.all(workers.map((worker) => worker.kill('SIGTERM')));
});

function worker(overrides: Record<string, string> = {}) {
  return startServiceProcess(
    testEnvironment(ctx.database, ctx.prefix, {
      SERVICE_ROLE: 'worker',
      JOB_LOCK_MS: '2000',
      ...overrides,
    }),
  );
}

async function count(sql: string, values: unknown[]): Promise<number> {
  const { rows } = await pg.db.query<{ n: number }>(sql, values);
  return rows[0]?.n ?? 0;
}

async function operation(id: string) {
  const response = await ctx.app.inject({ method: 'GET', url: `/operations/${id}` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as { status: string; matched: number; done: number; skipped: number };
}

// An execution half upgraded: on version 2 without the added run, or on 1 with it, or twice.
const HALF_APPLIED = `SELECT count(*)::int AS n FROM workflow_executions e
   WHERE e.workflow_id = $1
     AND (SELECT count(*) FROM step_executions s
           WHERE s.execution_id = e.id AND s.step_id = 'after')
         <> CASE WHEN e.workflow_version = 2 THEN 1 ELSE 0 END`;

describe('bulk upgrade under a process kill', () => {
  it(`upgrades each of ${EXECUTIONS} executions once or not at all`, async () => {
    const first = await worker({ BULK_PARALLEL: '1', BULK_BATCH_SIZE: '10' });
    workers.push(first);
    const workflowId = await createWorkflow(ctx.app, {
      name: 'upgraded while killed',
      workflow_type: 'sequential',
      steps: [NUMBER_CHECK_STEP],
    });
    await runPool(EXECUTIONS, 10, async () => {
      const response = await ctx.app.inject({
        method: 'POST',
        url: `/workflows/${workflowId}/execute`,
        payload: { input_data: { n: 'x' } },
      });
      expect(response.statusCode).toBe(202);
    });
    const failedSql = `SELECT count(*)::int AS n FROM workflow_executions
                        WHERE workflow_id = $1 AND status = 'failed'`;
    await waitUntil(
      async () => (await count(failedSql, [workflowId])) === EXECUTIONS,
      'all failed',
      60_000,
    );
    const put = await ctx.app.inject({
      method: 'PUT',
      url: `/workflows/${workflowId}`,
      payload: {
        steps: [NUMBER_CHECK_STEP, { id: 'after', name: 'after', step_type: 'noop' }],
      },
    });
    expect(put.statusCode, put.body).toBe(200);

    const started = await ctx.app.inject({
      method: 'POST',
      url: '/executions/bulk',
      payload: { action: 'upgrade', to_version: 2, filter: { workflow_id: workflowId } },
    });
    expect(started.statusCode, started.body).toBe(202);
    const id = started.json().id as string;
    await waitUntil(async () => (await operation(id)).done >= 40, 'part of the upgrades', 60_000);
    await first.kill('SIGKILL');
    const partway = await operation(id);
    expect(partway.status).toBe('running');
    expect(partway.done).toBeLessThan(EXECUTIONS);
    expect(await count(HALF_APPLIED, [workflowId])).toBe(0);

    workers.push(await worker());
    await waitUntil(async () => (await operation(id)).status === 'completed', 'resumed', 90_000);
    expect(await operation(id)).toMatchObject({
      matched: EXECUTIONS,
      done: EXECUTIONS,
      skipped: 0,
    });
    expect(await count(HALF_APPLIED, [workflowId])).toBe(0);
    const upgraded = `SELECT count(*)::int AS n FROM workflow_executions
                       WHERE workflow_id = $1 AND workflow_version = 2 AND status = 'failed'`;
    expect(await count(upgraded, [workflowId])).toBe(EXECUTIONS);
  }, 240_000);
});
