import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { problemResponse } from '../schemas.js';

const taskSchema = z
  .object({
    task_token: z.string().describe('Unguessable; use it to heartbeat, complete or fail the task'),
    execution_id: z.string(),
    step_id: z.string(),
    step_type: z.string(),
    agent_id: z.string().nullable(),
    config: z.record(z.string(), z.unknown()).describe('The step config, expressions resolved'),
    input: z.unknown().describe("The execution's input_data"),
    attempt: z.number().int(),
    deadline: z.string().nullable().describe('The step timeout: finish before it'),
    lease_expires_at: z
      .string()
      .describe('Heartbeat before this or the task goes back to the pool'),
  })
  .meta({
    example: {
      task_token: '1f0c8f5e-6d1a-4a53-9a53-0a3b5b6c7d8e',
      execution_id: 'ex_3q2Jd9aQ0bXc1nVt',
      step_id: 'data_validation',
      step_type: 'validation',
      agent_id: null,
      config: { schema: 'data_schema.json' },
      input: { source_file: 'data.csv' },
      attempt: 1,
      deadline: '2026-11-25T18:05:00.000Z',
      lease_expires_at: '2026-11-25T18:01:00.000Z',
    },
  });

const tokenParams = z.object({ token: z.string().min(1).max(100) }).strict();
const errors = {
  400: problemResponse('The request is invalid'),
  404: problemResponse('No task was ever issued with this token'),
  409: problemResponse(
    'The token is stale: the task was completed, failed, timed out, retried or cancelled',
  ),
  503: problemResponse('Postgres or Redis is unavailable; retry later'),
};

/** The tasks API: how other services' workers do the steps of non-built-in types. */
export const taskRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/tasks/poll',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Claim tasks (long poll)',
        description:
          'Claims up to max_tasks open tasks of the given step types, waiting up to wait_seconds for one. Two pollers never get the same task.',
        body: z
          .object({
            step_types: z.array(z.string().min(1).max(100)).max(100).optional(),
            agent_id: z.string().min(1).max(255).optional(),
            worker_id: z.string().min(1).max(255),
            max_tasks: z.number().int().min(1).max(100).default(1),
            wait_seconds: z.number().min(0).max(30).default(0),
          })
          .strict()
          .meta({
            example: {
              step_types: ['validation'],
              worker_id: 'validator-1',
              max_tasks: 1,
              wait_seconds: 20,
            },
          }),
        response: {
          200: z.object({ tasks: z.array(taskSchema) }),
          400: errors[400],
          503: errors[503],
        },
      },
    },
    async (request) => {
      // A caller that hangs up stops the long poll; tasks claimed in its last pass expire by lease.
      const stop = new AbortController();
      request.raw.once('close', () => stop.abort());
      return { tasks: await app.tasks.poll(request.body, stop.signal) };
    },
  );

  app.post(
    '/tasks/:token/heartbeat',
    {
      schema: {
        tags: ['tasks'],
        summary: "Extend a claimed task's lease",
        params: tokenParams,
        response: {
          200: z.object({ task_token: z.string(), lease_expires_at: z.string() }),
          404: errors[404],
          409: errors[409],
          503: errors[503],
        },
      },
    },
    async (request) => app.tasks.heartbeat(request.params.token),
  );

  app.post(
    '/tasks/:token/complete',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Complete a task with its output',
        params: tokenParams,
        body: z
          .object({ output: z.unknown().optional() })
          .strict()
          .default({})
          .meta({ example: { output: { valid: true, rows: 1200 } } }),
        response: { 200: z.object({ status: z.literal('completed') }), ...errors },
      },
    },
    async (request) => app.tasks.complete(request.params.token, request.body?.output ?? null),
  );

  app.post(
    '/tasks/:token/fail',
    {
      schema: {
        tags: ['tasks'],
        summary: 'Fail a task',
        description:
          "retryable: false fails the step at once; otherwise the step's retry policy applies.",
        params: tokenParams,
        body: z
          .object({
            error: z.string().min(1).max(10_000),
            retryable: z.boolean().default(true),
            details: z.unknown().optional(),
          })
          .strict()
          .meta({ example: { error: 'schema data_schema.json not found', retryable: false } }),
        response: { 200: z.object({ status: z.literal('failed') }), ...errors },
      },
    },
    async (request) => app.tasks.fail(request.params.token, request.body),
  );
};
