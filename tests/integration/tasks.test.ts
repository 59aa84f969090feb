import { describe, expect, it } from 'vitest';
import { useTestApp } from '../helpers/test-app.js';
import { createWorkflow, startExecution, waitForExecution } from '../helpers/workflows.js';

const ctx = useTestApp({ SWEEP_INTERVAL_MS: '200', SWEEP_STALE_AFTER_MS: '1000' });

interface Task {
  task_token: string;
  execution_id: string;
  step_id: string;
  step_type: string;
  config: Record<string, unknown>;
  input: unknown;
  attempt: number;
}

async function poll(body: Record<string, unknown>): Promise<Task[]> {
  const response = await ctx.app.inject({ method: 'POST', url: '/tasks/poll', payload: body });
  expect(response.statusCode, response.body).toBe(200);
  return response.json().tasks;
}

async function taskCall(token: string, action: string, payload?: Record<string, unknown>) {
  return ctx.app.inject({
    method: 'POST',
    url: `/tasks/${token}/${action}`,
    payload: payload ?? {},
  });
}

function externalWorkflow(stepType: string, step: Record<string, unknown> = {}) {
  return {
    name: `external ${stepType}`,
    workflow_type: 'sequential',
    steps: [
      {
        id: 'work',
        name: 'work',
        step_type: stepType,
        config: { rules: '{% input.rules %}' },
        ...step,
      },
      {
        id: 'after',
        name: 'after',
        step_type: 'transform',
        config: { expression: 'steps.work.output' },
      },
    ],
  };
}

describe('external tasks', () => {
  it('a worker claims, heartbeats and completes a task; the execution moves on', async () => {
    const workflowId = await createWorkflow(ctx.app, externalWorkflow('transformation'));
    const executionId = await startExecution(ctx.app, workflowId, { rules: 'r.json' });
    const [task] = await poll({
      step_types: ['transformation'],
      worker_id: 'w1',
      wait_seconds: 10,
    });
    expect(task).toMatchObject({
      execution_id: executionId,
      step_id: 'work',
      step_type: 'transformation',
      attempt: 1,
    });
    expect(task?.config).toEqual({ rules: 'r.json' });
    expect(task?.input).toEqual({ rules: 'r.json' });

    const beat = await taskCall(task?.task_token as string, 'heartbeat');
    expect(beat.statusCode).toBe(200);
    const done = await taskCall(task?.task_token as string, 'complete', { output: { rows: 3 } });
    expect(done.statusCode, done.body).toBe(200);
    const execution = await waitForExecution(ctx.app, executionId);
    expect(execution.status).toBe('completed');
    expect(execution.output_data).toEqual({ rows: 3 });

    // The task is done: its token is stale now, and a made-up one is unknown.
    expect((await taskCall(task?.task_token as string, 'complete', { output: 1 })).statusCode).toBe(
      409,
    );
    expect((await taskCall('00000000-0000-4000-8000-000000000000', 'complete')).statusCode).toBe(
      404,
    );
    expect((await taskCall('not-a-token', 'heartbeat')).statusCode).toBe(404);
  });

  it('two workers polling at once never get the same task', async () => {
    const workflowId = await createWorkflow(ctx.app, externalWorkflow('storage'));
    const executions = [];
    for (let i = 0; i < 10; i += 1)
      executions.push(await startExecution(ctx.app, workflowId, { i }));
    const first: string[] = [];
    const second: string[] = [];
    for (let round = 0; round < 20 && first.length + second.length < 10; round += 1) {
      const [a, b] = await Promise.all([
        poll({ step_types: ['storage'], worker_id: 'wa', max_tasks: 3, wait_seconds: 1 }),
        poll({ step_types: ['storage'], worker_id: 'wb', max_tasks: 3, wait_seconds: 1 }),
      ]);
      first.push(...a.map((task) => task.execution_id));
      second.push(...b.map((task) => task.execution_id));
    }
    const all = [...first, ...second];
    expect(all).toHaveLength(10);
    expect(new Set(all)).toEqual(new Set(executions));
  });

  it('a worker that disappears loses the task to another; its late completion gets 409', async () => {
    const workflowId = await createWorkflow(
      ctx.app,
      externalWorkflow('validation', {
        config: { lease_seconds: 1 },
        retry_count: 2,
        retry_backoff: { type: 'fixed', delay_ms: 100, max_delay_ms: 100 },
      }),
    );
    const executionId = await startExecution(ctx.app, workflowId);
    const [lost] = await poll({
      step_types: ['validation'],
      worker_id: 'vanishing',
      wait_seconds: 10,
    });
    expect(lost?.attempt).toBe(1);
    // No heartbeat: after the lease the sweep hands the task back, as a new attempt.
    const [taken] = await poll({
      step_types: ['validation'],
      worker_id: 'steady',
      wait_seconds: 15,
    });
    expect(taken).toMatchObject({ execution_id: executionId, attempt: 2 });
    expect(
      (await taskCall(lost?.task_token as string, 'complete', { output: 'late' })).statusCode,
    ).toBe(409);
    expect((await taskCall(lost?.task_token as string, 'heartbeat')).statusCode).toBe(409);
    expect(
      (await taskCall(taken?.task_token as string, 'complete', { output: 'ok' })).statusCode,
    ).toBe(200);
    const execution = await waitForExecution(ctx.app, executionId);
    expect(execution.status).toBe('completed');
    expect(execution.output_data).toBe('ok');
  });

  it('fail with retryable: false fails the step at once', async () => {
    const workflowId = await createWorkflow(
      ctx.app,
      externalWorkflow('enrich', { retry_count: 5 }),
    );
    const executionId = await startExecution(ctx.app, workflowId);
    const [task] = await poll({ step_types: ['enrich'], worker_id: 'w', wait_seconds: 10 });
    const failed = await taskCall(task?.task_token as string, 'fail', {
      error: 'bad input',
      retryable: false,
    });
    expect(failed.statusCode).toBe(200);
    const execution = await waitForExecution(ctx.app, executionId);
    expect(execution.status).toBe('failed');
    expect(execution.steps[0]).toMatchObject({
      status: 'failed',
      attempts: 1,
      error: { message: 'bad input', type: 'task_failed' },
    });
  });

  it('a long poll with nothing to do returns an empty list after its wait', async () => {
    expect(
      await poll({ step_types: ['nothing-here'], worker_id: 'idle', wait_seconds: 0.3 }),
    ).toEqual([]);
  });
});
