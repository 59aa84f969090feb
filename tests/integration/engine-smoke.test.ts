import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  startExecution,
  stepStatuses,
  waitForExecution,
} from '../helpers/workflows.js';

const ctx = useTestApp();

describe('engine smoke', () => {
  it('runs a sequential noop workflow to completion', async () => {
    const id = await createWorkflow(ctx.app, {
      name: 'seq',
      workflow_type: 'sequential',
      steps: [
        { id: 'a', name: 'A', step_type: 'noop', config: { v: 1 } },
        {
          id: 'b',
          name: 'B',
          step_type: 'transform',
          config: { expression: 'steps.a.output.v + input.n' },
        },
      ],
    });
    const executionId = await startExecution(ctx.app, id, { n: 41 });
    const execution = await waitForExecution(ctx.app, executionId);
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(stepStatuses(execution)).toEqual({ a: 'completed', b: 'completed' });
    expect(execution.output_data).toBe(42);
  });
});
