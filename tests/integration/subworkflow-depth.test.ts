import { describe, expect, it } from 'vitest';
import { useDatabaseClient, useTestApp } from '../helpers/test-app.js';
import { createWorkflow, startExecution, waitForExecution } from '../helpers/workflows.js';

const ctx = useTestApp();
const database = useDatabaseClient(ctx);

describe('sub-workflow depth', () => {
  it('a workflow that starts itself ends after MAX_SUBWORKFLOW_DEPTH levels, clearly', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'recursive',
      workflow_type: 'sequential',
      steps: [{ id: 'start', name: 'start', step_type: 'noop', config: {} }],
    });
    const update = await ctx.app.inject({
      method: 'PUT',
      url: `/workflows/${workflowId}`,
      payload: {
        steps: [
          {
            id: 'again',
            name: 'again',
            step_type: 'subworkflow',
            config: { workflow_id: workflowId, input: {} },
            // Retries would each hit the limit again: they must not happen.
            retry_count: 2,
          },
        ],
      },
    });
    expect(update.statusCode, update.body).toBe(200);
    const rootId = await startExecution(ctx.app, workflowId);
    const root = await waitForExecution(ctx.app, rootId, undefined, 60_000);
    expect(root.status).toBe('failed');
    expect(root.steps[0]?.error).toMatchObject({ type: 'subworkflow_depth' });

    const chain = await database.db.query<{
      id: string;
      status: string;
      depth: number;
      error: unknown;
    }>(
      `WITH RECURSIVE chain (id, status, depth) AS (
         SELECT id, status, 0 FROM workflow_executions WHERE id = $1
         UNION ALL
         SELECT e.id, e.status, c.depth + 1
           FROM chain c JOIN workflow_executions e ON e.parent_execution_id = c.id
       )
       SELECT c.id, c.status, c.depth, s.error
         FROM chain c JOIN step_executions s ON s.execution_id = c.id
        ORDER BY c.depth, s.id`,
      [rootId],
    );
    // The root and ten levels below it: one execution each, one attempt each, all failed.
    expect(chain.rows.map((row) => row.depth)).toEqual(Array.from({ length: 11 }, (_, i) => i));
    expect(chain.rows.every((row) => row.status === 'failed')).toBe(true);
    const deepest = chain.rows[10]?.error as { type: string; message: string; retryable: boolean };
    expect(deepest).toMatchObject({ type: 'subworkflow_depth', retryable: false });
    expect(deepest.message).toContain('MAX_SUBWORKFLOW_DEPTH=10');
    const total = await database.db.query(
      'SELECT 1 FROM workflow_executions WHERE workflow_id = $1',
      [workflowId],
    );
    expect(total.rowCount).toBe(11);
    // Nothing goes on: no execution of it is left unfinished.
    const unfinished = await database.db.query(
      `SELECT 1 FROM workflow_executions WHERE workflow_id = $1 AND status <> 'failed'`,
      [workflowId],
    );
    expect(unfinished.rowCount).toBe(0);
  }, 120_000);
});
