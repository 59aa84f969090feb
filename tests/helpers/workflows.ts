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
  step_results: Record<string, unknown>;
  workflow_version: number;
  current_iteration: number;
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
