import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { WORKFLOW_STATUSES } from '../../domain/statuses.js';
import {
  workflowCreateSchema,
  workflowTypeSchema,
  workflowUpdateSchema,
} from '../../domain/workflow-definition.js';
import { problemResponse, workflowPageSchema, workflowViewSchema } from '../schemas.js';

/** Workflow definitions CRUD: parse, call the manager, shape the reply. */

const noNul = (value: string) => !value.includes('\u0000');

const idParamsSchema = z
  .object({
    id: z.string().min(1).describe('Workflow id, e.g. wf_3f6d0c9e8b7a4f1e9c2d5b8a7e6f4c3d'),
  })
  .strict();

const listQuerySchema = z
  .object({
    status: z.enum(WORKFLOW_STATUSES).optional().describe('Only workflows with this status'),
    workflow_type: workflowTypeSchema.optional(),
    tag: z
      .union([
        z.string().min(1).max(100).refine(noNul),
        z.array(z.string().min(1).max(100).refine(noNul)),
      ])
      .optional()
      .describe('Only workflows carrying this tag (repeat for all of several tags)'),
    search: z
      .string()
      .max(255)
      .refine(noNul, 'must not contain U+0000')
      .optional()
      .describe('Case-insensitive substring of the name'),
    limit: z.coerce
      .number()
      .int()
      .min(1)
      .max(100)
      .default(20)
      .describe('Page size, 1 to 100 (default 20)'),
    cursor: z.string().max(2048).optional().describe('`next_cursor` of the previous page'),
  })
  .strict();

const createExample = {
  name: 'Data Processing Workflow',
  workflow_type: 'sequential',
  description: 'Process data through multiple steps',
  steps: [
    { name: 'Data Validation', step_type: 'validation', config: { schema: 'data_schema.json' } },
    {
      name: 'Data Transformation',
      step_type: 'transformation',
      config: { rules: 'transform_rules.json' },
    },
    { name: 'Data Storage', step_type: 'storage', config: { destination: 'database' } },
  ],
};

const createBodySchema = workflowCreateSchema
  .describe('A new workflow; unknown fields are refused')
  .meta({ example: createExample });

const updateBodySchema = workflowUpdateSchema
  .describe(
    'Fields to replace; `steps`, when given, replaces all steps. Unknown fields are refused',
  )
  .meta({ example: { status: 'active', tags: ['etl', 'nightly'] } });

const invalid = problemResponse('The request is invalid; `errors` lists every problem');
const notFound = problemResponse('No workflow has this id');

export const workflowRoutes: FastifyPluginAsyncZod = async (app) => {
  // Bodies here are JSON only: Fastify's built-in text/plain parser would turn a wrongly
  // labelled body into a string and a confusing 400; without it the answer is 415.
  // Removed in this plugin's own context, so other routes keep their parsers.
  app.removeContentTypeParser('text/plain');

  app.get(
    '/workflows',
    {
      schema: {
        tags: ['workflows'],
        summary: 'List workflows',
        description:
          'Newest first, filtered by status, workflow_type, tag and name search; keyset-paginated with `limit` and `cursor`.',
        querystring: listQuerySchema,
        response: { 200: workflowPageSchema, 400: invalid },
      },
    },
    async (request) => {
      const { tag, ...query } = request.query;
      return app.workflows.list({
        ...query,
        tags: tag === undefined ? undefined : Array.isArray(tag) ? tag : [tag],
      });
    },
  );

  app.post(
    '/workflows',
    {
      schema: {
        tags: ['workflows'],
        summary: 'Create a workflow',
        description:
          'Validates the whole definition (limits, step ids, dependencies, cycles, expressions) and stores it as version 1.',
        body: createBodySchema,
        response: {
          201: workflowViewSchema.describe('Created; Location names the new workflow'),
          400: invalid,
        },
      },
    },
    async (request, reply) => {
      const view = await app.workflows.create(request.body);
      return reply
        .code(201)
        .header('location', `/workflows/${encodeURIComponent(view.id)}`)
        .send(view);
    },
  );

  app.get(
    '/workflows/:id',
    {
      schema: {
        tags: ['workflows'],
        summary: 'Get a workflow with its steps',
        params: idParamsSchema,
        response: { 200: workflowViewSchema, 400: invalid, 404: notFound },
      },
    },
    // The view's JSON text (as cached) is sent as it is: Fastify serialises only what is not
    // a string, so the typed reply is told it gets the view it describes.
    async (request, reply) =>
      reply
        .type('application/json; charset=utf-8')
        .send((await app.workflows.getJson(request.params.id)) as never),
  );

  app.put(
    '/workflows/:id',
    {
      schema: {
        tags: ['workflows'],
        summary: 'Update a workflow',
        description:
          'Replaces the given fields, validates the result and stores it as a new version. Running executions keep the version they started with.',
        params: idParamsSchema,
        body: updateBodySchema,
        response: { 200: workflowViewSchema, 400: invalid, 404: notFound },
      },
    },
    async (request) => app.workflows.update(request.params.id, request.body),
  );

  app.delete(
    '/workflows/:id',
    {
      schema: {
        tags: ['workflows'],
        summary: 'Delete a workflow',
        description:
          'Deletes the workflow, its versions and its finished executions. Refused (409) while executions are unfinished.',
        params: idParamsSchema,
        response: {
          204: z.null().describe('Deleted'),
          400: invalid,
          404: notFound,
          409: problemResponse('The workflow has unfinished executions'),
        },
      },
    },
    async (request, reply) => {
      await app.workflows.delete(request.params.id);
      return reply.code(204).send(null);
    },
  );
};
