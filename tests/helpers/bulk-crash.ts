import { afterAll, expect } from 'vitest';
import { runPool } from '../../bench/lib/util.js';
import { type ServiceProcess, startServiceProcess } from './service-process.js';
import { type TestApp, testEnvironment, useDatabaseClient, useTestApp } from './test-app.js';
import { createWorkflow, NUMBER_CHECK_STEP, waitUntil } from './workflows.js';

/**
 * What the tests of bulk operations under a process kill share: an API-only app in the test
 * process, worker processes on its database (`JOB_LOCK_MS` 2 s: a killed one loses its
 * operation's lease within seconds), killed ones stopped at the end, and readers of the rows
 * and of an operation.
 */
export interface BulkCrashFixture {
  ctx: TestApp;
  worker(overrides?: Record<string, string>): Promise<ServiceProcess>;
  count(sql: string, values: unknown[]): Promise<number>;
  operation(id: string): Promise<{
    status: string;
    matched: number;
    done: number;
    skipped: number;
    failed: number;
  }>;
  /** A workflow whose `total` executions have all failed at their one step. */
  failedExecutions(name: string, total: number): Promise<string>;
}

export function useBulkCrashFixture(): BulkCrashFixture {
  const ctx = useTestApp({ SERVICE_ROLE: 'api' });
  const pg = useDatabaseClient(ctx);
  const workers: ServiceProcess[] = [];
  afterAll(async () => {
    await Promise.all(workers.map((worker) => worker.kill('SIGTERM')));
  });
  const count = async (sql: string, values: unknown[]) => {
    const { rows } = await pg.db.query<{ n: number }>(sql, values);
    return rows[0]?.n ?? 0;
  };
  return {
    ctx,
    count,
    async worker(overrides = {}) {
      const started = await startServiceProcess(
        testEnvironment(ctx.database, ctx.prefix, {
          SERVICE_ROLE: 'worker',
          JOB_LOCK_MS: '2000',
          ...overrides,
        }),
      );
      workers.push(started);
      return started;
    },
    async operation(id) {
      const response = await ctx.app.inject({ method: 'GET', url: `/operations/${id}` });
      expect(response.statusCode, response.body).toBe(200);
      return response.json();
    },
    async failedExecutions(name, total) {
      const workflowId = await createWorkflow(ctx.app, {
        name,
        workflow_type: 'sequential',
        steps: [NUMBER_CHECK_STEP],
      });
      await runPool(total, 10, async () => {
        const response = await ctx.app.inject({
          method: 'POST',
          url: `/workflows/${workflowId}/execute`,
          payload: { input_data: { n: 'x' } },
        });
        expect(response.statusCode).toBe(202);
      });
      const failed = `SELECT count(*)::int AS n FROM workflow_executions
                       WHERE workflow_id = $1 AND status = 'failed'`;
      await waitUntil(
        async () => (await count(failed, [workflowId])) === total,
        'all failed',
        60_000,
      );
      return workflowId;
    },
  };
}
