import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { EXECUTION_STATUSES } from '../../domain/statuses.js';
import { problemResponse } from '../schemas.js';

const timestamp = z.string().describe('ISO 8601 timestamp (UTC)');

const stepRunSchema = z.object({
  step_id: z.string(),
  name: z.string(),
  step_type: z.string(),
  status: z.enum([
    'pending',
    'queued',
    'running',
    'waiting',
    'completed',
    'failed',
    'skipped',
    'cancelled',
  ]),
  attempts: z.number().int().describe('Attempts made so far'),
  output: z.unknown(),
  error: z
    .unknown()
    .describe('{message, type, retryable, attempt, details?} of the last failed attempt'),
  started_at: timestamp.nullable(),
  completed_at: timestamp.nullable(),
  iteration: z.number().int().describe('Loop iteration (0 for other workflow types)'),
  item_index: z.number().int().nullable().describe('for_each item, null for the step itself'),
  wait_reason: z.string().nullable().describe('Why the run waits, was skipped or will retry'),
  next_attempt_at: timestamp.nullable(),
});

const executionSchema = z
  .object({
    id: z.string(),
    workflow_id: z.string(),
    workflow_version: z
      .number()
      .int()
      .describe('The workflow version this execution runs (pinned)'),
    status: z.enum(EXECUTION_STATUSES),
    input_data: z.unknown(),
    output_data: z.unknown(),
    step_results: z
      .record(z.string(), z.unknown())
      .describe('Latest output of each step, by step id'),
    error: z.string().nullable(),
    error_details: z.unknown(),
    started_at: timestamp.nullable(),
    completed_at: timestamp.nullable(),
    duration_seconds: z.number().nullable(),
    created_at: timestamp,
    updated_at: timestamp,
    current_iteration: z.number().int(),
    deadline_at: timestamp.nullable(),
    idempotency_key: z.string().nullable(),
    steps: z.array(stepRunSchema).optional(),
  })
  .meta({
    example: {
      id: 'ex_3q2Jd9aQ0bXc1nVt',
      workflow_id: 'wf_8f14e45fceea167a5a36dedd4bea2543',
      workflow_version: 1,
      status: 'running',
      input_data: { source_file: 'data.csv' },
      output_data: null,
      step_results: {},
      error: null,
      error_details: null,
      started_at: '2026-11-25T18:00:00.000Z',
      completed_at: null,
      duration_seconds: null,
      created_at: '2026-11-25T18:00:00.000Z',
      updated_at: '2026-11-25T18:00:00.000Z',
      current_iteration: 0,
      deadline_at: null,
      idempotency_key: null,
      steps: [],
    },
  });

const idParams = z.object({ id: z.string().min(1).max(255) }).strict();
const errors = {
  400: problemResponse('The request is invalid'),
  404: problemResponse('No such workflow or execution'),
  409: problemResponse('The execution or workflow is not in a state that allows this'),
  503: problemResponse('Postgres or Redis is unavailable; retry later'),
};

const listQuery = z
  .object({
    workflow_id: z.string().min(1).max(255).optional(),
    status: z.enum(EXECUTION_STATUSES).optional(),
    created_after: z.iso
      .datetime({ offset: true })
      .optional()
      .describe('Inclusive lower bound on created_at'),
    created_before: z.iso
      .datetime({ offset: true })
      .optional()
      .describe('Exclusive upper bound on created_at'),
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().min(1).max(1000).optional().describe('next_cursor of the previous page'),
  })
  .strict();

/** Executions: start, list, inspect, cancel, retry, pause, resume. Thin: parse, call, reply. */
export const executionRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/workflows/:id/execute',
    {
      schema: {
        tags: ['executions'],
        summary: 'Start an execution of the workflow (its current version)',
        description:
          'Answers 202 with the new execution. With an Idempotency-Key header, repeating the request returns the same execution (200).',
        params: idParams,
        headers: z.object({ 'idempotency-key': z.string().min(1).max(255).optional() }),
        body: z
          .object({
            input_data: z
              .record(z.string(), z.unknown())
              .default({})
              .describe('Input the steps read as `input`'),
          })
          .strict()
          .default({ input_data: {} })
          .meta({
            example: { input_data: { source_file: 'data.csv', processing_rules: 'rules.json' } },
          }),
        response: { 200: executionSchema, 202: executionSchema, ...errors },
      },
    },
    async (request, reply) => {
      const { execution, created } = await app.executions.execute(
        request.params.id,
        request.body?.input_data ?? {},
        request.headers['idempotency-key'],
      );
      if (!created) reply.header('idempotent-replayed', 'true');
      reply.header('location', `/executions/${execution.id}`);
      return reply.code(created ? 202 : 200).send(execution);
    },
  );

  app.get(
    '/executions',
    {
      schema: {
        tags: ['executions'],
        summary: 'List executions, newest first',
        querystring: listQuery,
        response: {
          200: z.object({ items: z.array(executionSchema), next_cursor: z.string().nullable() }),
          400: errors[400],
          503: errors[503],
        },
      },
    },
    async (request) => app.executions.list(request.query),
  );

  app.get(
    '/executions/:id',
    {
      schema: {
        tags: ['executions'],
        summary: 'One execution with the state of every step run',
        params: idParams,
        response: { 200: executionSchema, 404: errors[404], 503: errors[503] },
      },
    },
    async (request) => app.executions.get(request.params.id),
  );

  const actions = [
    ['cancel', 'Cancel an unfinished execution; running attempts are aborted'],
    ['retry', 'Resume a failed or timed-out execution from its failed steps'],
    ['pause', 'Pause: running attempts finish, no new step starts'],
    ['resume', 'Resume a paused execution'],
  ] as const;
  for (const [action, summary] of actions) {
    app.post(
      `/executions/:id/${action}`,
      {
        schema: {
          tags: ['executions'],
          summary,
          params: idParams,
          response: { 200: executionSchema, 404: errors[404], 409: errors[409], 503: errors[503] },
        },
      },
      async (request) => app.executions[action](request.params.id),
    );
  }
};
