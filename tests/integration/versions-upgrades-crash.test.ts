import { describe, expect, it } from 'vitest';
import { useBulkCrashFixture } from '../helpers/bulk-crash.js';
import { NUMBER_CHECK_STEP, waitUntil } from '../helpers/workflows.js';

/**
 * A bulk upgrade survives the worker doing it being killed (README "Versions, upgrades and
 * edits"): each execution's upgrade applies once or not at all. 300 failed executions are
 * upgraded to a version that adds a step; a slow worker is killed partway, another takes the
 * operation over, and in the end every execution is on the new version with exactly one run of
 * the added step, and at no point an execution is on one version with the other's runs.
 */

const EXECUTIONS = 300;
const { ctx, worker, count, operation, failedExecutions } = useBulkCrashFixture();

// An execution half upgraded: on version 2 without the added run, or on 1 with it, or twice.
const HALF_APPLIED = `SELECT count(*)::int AS n FROM workflow_executions e
   WHERE e.workflow_id = $1
     AND (SELECT count(*) FROM step_executions s
           WHERE s.execution_id = e.id AND s.step_id = 'after')
         <> CASE WHEN e.workflow_version = 2 THEN 1 ELSE 0 END`;

describe('bulk upgrade under a process kill', () => {
  it(`upgrades each of ${EXECUTIONS} executions once or not at all`, async () => {
    const first = await worker({ BULK_PARALLEL: '1', BULK_BATCH_SIZE: '10' });
    const workflowId = await failedExecutions('upgraded while killed', EXECUTIONS);
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

    await worker();
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
