import { afterAll, describe, expect, it } from 'vitest';
import { runPool } from '../../bench/lib/util.js';
import { type ServiceProcess, startServiceProcess } from '../helpers/service-process.js';
import { testEnvironment, useDatabaseClient, useTestApp } from '../helpers/test-app.js';
import { createWorkflow, waitUntil } from '../helpers/workflows.js';

/**
 * Fair scheduling (issue 14, "Fair scheduling"): tenant A's backlog is queued before tenant B
 * starts anything, with no worker running (this file's app serves the API only); then one
 * worker with one slot serves them. The groups take turns, so B's steps start among the first
 * few dozen, not after A's whole backlog.
 */

const FLOOD = 400;
const LATE = 20;
const ctx = useTestApp({ SERVICE_ROLE: 'api' });
const database = useDatabaseClient(ctx);
let worker: ServiceProcess | undefined;

afterAll(async () => {
  await worker?.kill('SIGTERM');
});

async function startAll(workflowId: string, tenant: string, count: number): Promise<string[]> {
  const ids: string[] = [];
  await runPool(count, 8, async () => {
    const response = await ctx.app.inject({
      method: 'POST',
      url: `/workflows/${workflowId}/execute`,
      payload: { input_data: { tenant } },
    });
    expect(response.statusCode, response.body).toBe(202);
    ids.push(response.json().id);
  });
  return ids;
}

describe('fair scheduling', () => {
  it(`starts a late tenant's ${LATE} executions among the first, not after ${FLOOD} queued before them`, async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'per tenant',
      workflow_type: 'sequential',
      config: { fairness_key: 'input.tenant' },
      steps: [{ id: 'only', name: 'Only', step_type: 'noop' }],
    });
    await startAll(workflowId, 'a', FLOOD);
    const late = await startAll(workflowId, 'b', LATE);
    worker = await startServiceProcess(
      testEnvironment(ctx.database, ctx.prefix, {
        SERVICE_ROLE: 'worker',
        WORKER_CONCURRENCY: '1',
      }),
    );
    const completed = async () =>
      (
        await database.db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM workflow_executions WHERE status = 'completed'`,
        )
      ).rows[0]?.n ?? 0;
    await waitUntil(
      async () => (await completed()) === FLOOD + LATE,
      'every execution completed',
      120_000,
    );
    const { rows } = await database.db.query<{ execution_id: string }>(
      'SELECT execution_id FROM step_executions ORDER BY started_at, id',
    );
    const ranks = rows
      .map((row, rank) => (late.includes(row.execution_id) ? rank : -1))
      .filter((rank) => rank >= 0);
    expect(ranks).toHaveLength(LATE);
    // Turns of one step each: B's last step comes about 2 x LATE steps in, with room for the
    // few steps in flight when B's jobs arrived.
    expect(Math.max(...ranks)).toBeLessThan(3 * LATE);
    const keys = await database.db.query<{ key: string; n: number }>(
      'SELECT concurrency_key AS key, count(*)::int AS n FROM workflow_executions GROUP BY 1 ORDER BY 1',
    );
    expect(keys.rows).toEqual([
      { key: 'a', n: FLOOD },
      { key: 'b', n: LATE },
    ]);
  }, 180_000);
});
