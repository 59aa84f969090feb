import { afterAll, describe, expect, it } from 'vitest';
import { runPool } from '../../bench/lib/util.js';
import { type ServiceProcess, startServiceProcess } from '../helpers/service-process.js';
import { testEnvironment, useDatabaseClient, useTestApp } from '../helpers/test-app.js';
import { createWorkflow, NUMBER_CHECK_STEP, waitUntil } from '../helpers/workflows.js';

/**
 * A bulk retry survives the process doing it being killed (issue 15, "Proof"): 500 failed
 * executions, a worker that retries them slowly is killed partway, another worker takes the
 * operation over once its lease lapses, and every execution is retried exactly once (the
 * failed step's first_attempt moves from 1 to 2, never to 3).
 */

const EXECUTIONS = 500;
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
      // The operation's lease: a killed process loses it within seconds.
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
  return response.json() as {
    status: string;
    matched: number;
    done: number;
    skipped: number;
    failed: number;
  };
}

describe('bulk retry under a process kill', () => {
  it(`retries each of ${EXECUTIONS} failed executions exactly once`, async () => {
    // Slow on purpose (one action at a time, ten a batch), so the kill lands partway.
    const first = await worker({ BULK_PARALLEL: '1', BULK_BATCH_SIZE: '10' });
    workers.push(first);
    const workflowId = await createWorkflow(ctx.app, {
      name: 'fails until fixed',
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

    const started = await ctx.app.inject({
      method: 'POST',
      url: '/executions/bulk',
      payload: { action: 'retry', filter: { workflow_id: workflowId, status: 'failed' } },
    });
    expect(started.statusCode, started.body).toBe(202);
    const id = started.json().id as string;
    await waitUntil(async () => (await operation(id)).done >= 60, 'part of the retries', 60_000);
    await first.kill('SIGKILL');
    const partway = await operation(id);
    expect(partway.status).toBe('running');
    expect(partway.done).toBeLessThan(EXECUTIONS);

    workers.push(await worker());
    await waitUntil(async () => (await operation(id)).status === 'completed', 'resumed', 90_000);
    expect(await operation(id)).toMatchObject({
      matched: EXECUTIONS,
      done: EXECUTIONS,
      skipped: 0,
      failed: 0,
    });
    const retriedTwice = `SELECT count(*)::int AS n FROM step_executions s
      JOIN workflow_executions e ON e.id = s.execution_id
     WHERE e.workflow_id = $1 AND s.first_attempt <> 2`;
    // Every retry runs (and fails again) on the surviving worker; none is retried twice.
    await waitUntil(
      async () => (await count(failedSql, [workflowId])) === EXECUTIONS,
      'all failed again',
      90_000,
    );
    expect(await count(retriedTwice, [workflowId])).toBe(0);
  }, 240_000);
});
