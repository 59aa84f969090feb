import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { problemResponse } from '../../schemas/problem.js';
import {
  completeBodySchema,
  completedResponseSchema,
  failBodySchema,
  failedResponseSchema,
  heartbeatResponseSchema,
  pollBodySchema,
  pollResponseSchema,
  taskTokenParamsSchema,
} from '../../schemas/tasks.js';
import { BODY_ENVELOPE_BYTES, checkFieldSize } from '../json-body.js';

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
  // A task's output (or failure details) becomes a step result, read as input by later steps.
  const maxOutputBytes = app.config.MAX_INPUT_BYTES;
  const limited = (field: string) => ({
    bodyLimit: maxOutputBytes + BODY_ENVELOPE_BYTES,
    config: { bodyField: field },
  });

  app.post(
    '/tasks/poll',
    {
      schema: {
        operationId: 'pollTasks',
        tags: ['tasks'],
        summary: 'Claim tasks (long poll)',
        description:
          'Claims up to max_tasks open tasks of the given step types, waiting up to wait_seconds for one. Two pollers never get the same task.',
        body: pollBodySchema,
        response: {
          200: pollResponseSchema,
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
        operationId: 'heartbeatTask',
        tags: ['tasks'],
        summary: "Extend a claimed task's lease",
        params: taskTokenParamsSchema,
        response: {
          200: heartbeatResponseSchema,
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
      ...limited('output'),
      schema: {
        operationId: 'completeTask',
        tags: ['tasks'],
        summary: 'Complete a task with its output',
        description: '`output` may be at most MAX_INPUT_BYTES as JSON.',
        params: taskTokenParamsSchema,
        body: completeBodySchema,
        response: { 200: completedResponseSchema, ...errors },
      },
    },
    async (request) => {
      const output = request.body?.output;
      checkFieldSize(output, 'output', maxOutputBytes, 'MAX_INPUT_BYTES');
      return app.tasks.complete(request.params.token, output ?? null);
    },
  );

  app.post(
    '/tasks/:token/fail',
    {
      ...limited('details'),
      schema: {
        operationId: 'failTask',
        tags: ['tasks'],
        summary: 'Fail a task',
        description:
          "retryable: false fails the step at once; otherwise the step's retry policy applies. `details` may be at most MAX_INPUT_BYTES as JSON.",
        params: taskTokenParamsSchema,
        body: failBodySchema,
        response: { 200: failedResponseSchema, ...errors },
      },
    },
    async (request) => {
      checkFieldSize(request.body.details, 'details', maxOutputBytes, 'MAX_INPUT_BYTES');
      return app.tasks.fail(request.params.token, request.body);
    },
  );
};
