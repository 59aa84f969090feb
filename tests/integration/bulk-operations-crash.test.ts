import { describe, expect, it } from 'vitest';
import { useBulkCrashFixture } from '../helpers/bulk-crash.js';
import { waitUntil } from '../helpers/workflows.js';

/**
 * A bulk retry survives the process doing it being killed (issue 15, "Proof"): 500 failed
 * executions, a worker that retries them slowly is killed partway, another worker takes the
 * operation over once its lease lapses, and every execution is retried exactly once (the
 * failed step's first_attempt moves from 1 to 2, never to 3).
 */

const EXECUTIONS = 500;
const { ctx, worker, count, operation, failedExecutions } = useBulkCrashFixture();

describe('bulk retry under a process kill', () => {
  it(`retries each of ${EXECUTIONS} failed executions exactly once`, async () => {
    // Slow on purpose (one action at a time, ten a batch), so the kill lands partway.
    const first = await worker({ BULK_PARALLEL: '1', BULK_BATCH_SIZE: '10' });
    const workflowId = await failedExecutions('fails until fixed', EXECUTIONS);
    const failedSql = `SELECT count(*)::int AS n FROM workflow_executions
                        WHERE workflow_id = $1 AND status = 'failed'`;

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

    await worker();
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
