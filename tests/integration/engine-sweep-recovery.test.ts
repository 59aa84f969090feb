import { describe, expect, it } from 'vitest';
import { deleteRedisPrefix, useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  startExecution,
  stepStatuses,
  waitForExecution,
} from '../helpers/workflows.js';

const fastSweep = { SWEEP_INTERVAL_MS: '200', SWEEP_STALE_AFTER_MS: '800' };

describe('process dies between commit and enqueue', () => {
  // Every enqueue that follows a committed state change is dropped, as if the process died
  // right after COMMIT: only the recovery sweep, reading Postgres, can move the executions.
  const ctx = useTestApp({ ...fastSweep, FAULT_INJECTION: 'drop-enqueue' });

  it('the sweep enqueues what Postgres says is due, and each step runs once', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'fan out, fan in',
      workflow_type: 'parallel',
      steps: [
        { id: 'start', name: 'start', step_type: 'noop' },
        { id: 'left', name: 'left', step_type: 'noop', dependencies: ['start'] },
        { id: 'right', name: 'right', step_type: 'noop', dependencies: ['start'] },
        { id: 'join', name: 'join', step_type: 'noop', dependencies: ['left', 'right'] },
      ],
    });
    const ids = [];
    for (let i = 0; i < 3; i += 1) ids.push(await startExecution(ctx.app, workflowId, { i }));
    for (const id of ids) {
      const execution = await waitForExecution(ctx.app, id, undefined, 30_000);
      expect(execution.status, JSON.stringify(execution)).toBe('completed');
      expect(stepStatuses(execution)).toEqual({
        start: 'completed',
        left: 'completed',
        right: 'completed',
        join: 'completed',
      });
      expect(execution.steps.every((step) => step.attempts === 1)).toBe(true);
    }
  });
});

describe('Redis loses everything mid-run', () => {
  const ctx = useTestApp(fastSweep);

  it('rebuilds the queue from Postgres and finishes the execution', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'slow chain',
      workflow_type: 'sequential',
      steps: Array.from({ length: 6 }, (_, index) => ({
        id: `s${index}`,
        name: `s${index}`,
        step_type: 'delay',
        config: { seconds: 0.4 },
      })),
    });
    const executionId = await startExecution(ctx.app, workflowId);
    await waitForExecution(
      ctx.app,
      executionId,
      (execution) => execution.steps[1]?.status === 'completed',
    );

    // Only this file's keys: other test files share the Redis server.
    await deleteRedisPrefix(ctx.prefix);

    const execution = await waitForExecution(ctx.app, executionId, undefined, 30_000);
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(Object.values(stepStatuses(execution))).toEqual(Array(6).fill('completed'));
  });
});
