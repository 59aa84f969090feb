import type { FastifyInstance } from 'fastify';
import { expect } from 'vitest';

/** Polling helpers for tests: bounded in time, never a timing assertion. */

export async function createWorkflow(
  app: FastifyInstance,
  body: Record<string, unknown>,
): Promise<string> {
  const response = await app.inject({ method: 'POST', url: '/workflows', payload: body });
  expect(response.statusCode, response.body).toBe(201);
  return response.json().id as string;
}

export async function startExecution(
  app: FastifyInstance,
  workflowId: string,
  input: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<string> {
  const response = await app.inject({
    method: 'POST',
    url: `/workflows/${workflowId}/execute`,
    payload: { input_data: input },
    headers,
  });
  expect(response.statusCode, response.body).toBe(202);
  return response.json().id as string;
}

export interface ExecutionBody {
  id: string;
  status: string;
  output_data: unknown;
  error: string | null;
  started_at: string | null;
  completed_at: string | null;
  step_results: Record<string, unknown>;
  workflow_version: number;
  current_iteration: number;
  concurrency_key?: string | null;
  steps: Array<{
    step_id: string;
    status: string;
    attempts: number;
    output: unknown;
    error: { message: string; type: string } | null;
    started_at: string | null;
    completed_at: string | null;
    iteration: number;
    item_index: number | null;
    wait_reason: string | null;
  }>;
}

export async function getExecution(app: FastifyInstance, id: string): Promise<ExecutionBody> {
  const response = await app.inject({ method: 'GET', url: `/executions/${id}` });
  expect(response.statusCode, response.body).toBe(200);
  return response.json() as ExecutionBody;
}

/** Waits until the execution satisfies `done` (default: it ended), polling up to `timeoutMs`. */
export async function waitForExecution(
  app: FastifyInstance,
  id: string,
  done: (execution: ExecutionBody) => boolean = (execution) =>
    ['completed', 'failed', 'cancelled', 'timed_out'].includes(execution.status),
  timeoutMs = 20_000,
): Promise<ExecutionBody> {
  const deadline = Date.now() + timeoutMs;
  let execution = await getExecution(app, id);
  while (!done(execution)) {
    if (Date.now() > deadline) {
      throw new Error(
        `execution ${id} did not reach the expected state: ${JSON.stringify(execution, null, 2)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    execution = await getExecution(app, id);
  }
  return execution;
}

export function stepStatuses(execution: ExecutionBody): Record<string, string> {
  return Object.fromEntries(
    execution.steps
      .filter((step) => step.item_index === null)
      .map((step) => [step.step_id, step.status]),
  );
}

/** A step run's time span, as GET /executions/{id} records it. */
export interface RunSpan {
  started_at: string | null;
  completed_at: string | null;
}

/**
 * The largest number of runs whose [started_at, completed_at) intervals overlap at one instant.
 * An ordering fact over recorded timestamps, not a duration: a run that ended exactly when
 * another started does not overlap it.
 */
export function maxOverlap(runs: readonly RunSpan[]): number {
  const events: Array<{ at: number; delta: number }> = [];
  for (const run of runs) {
    if (run.started_at === null || run.completed_at === null) {
      throw new Error(`run has no recorded interval: ${JSON.stringify(run)}`);
    }
    events.push({ at: Date.parse(run.started_at), delta: 1 });
    events.push({ at: Date.parse(run.completed_at), delta: -1 });
  }
  // Ends before starts at the same instant.
  events.sort((a, b) => a.at - b.at || a.delta - b.delta);
  let current = 0;
  let max = 0;
  for (const event of events) {
    current += event.delta;
    max = Math.max(max, current);
  }
  return max;
}

/** Whether two recorded run intervals intersect. */
export function overlaps(a: RunSpan, b: RunSpan): boolean {
  return maxOverlap([a, b]) === 2;
}

/** Polls `predicate` until it holds, up to `timeoutMs`; for conditions outside an execution. */
export async function waitUntil(
  predicate: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** The seed README's "Create a Sequential Workflow" example, verbatim. */
export const SEED_EXAMPLE = {
  name: 'Data Processing Workflow',
  workflow_type: 'sequential',
  description: 'Process data through multiple steps',
  steps: [
    {
      name: 'Data Validation',
      step_type: 'validation',
      config: { schema: 'data_schema.json' },
    },
    {
      name: 'Data Transformation',
      step_type: 'transformation',
      config: { rules: 'transform_rules.json' },
    },
    {
      name: 'Data Storage',
      step_type: 'storage',
      config: { destination: 'database' },
    },
  ],
};

/** A step that fails, without retries, when `input.n` is not a number (and passes when it is). */
export const NUMBER_CHECK_STEP = {
  id: 'check',
  name: 'Check',
  step_type: 'transform',
  config: { expression: '$number(input.n)' },
  retry_count: 0,
};
