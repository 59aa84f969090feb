import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { invalidRequestResponse, problemResponse } from '../../schemas/problem.js';
import {
  workflowCreateBodySchema,
  workflowIdParamsSchema,
  workflowListQuerySchema,
  workflowPageSchema,
  workflowUpdateBodySchema,
  workflowViewSchema,
} from '../../schemas/workflows.js';

/** Workflow definitions CRUD: parse, call the manager, shape the reply. */

const invalid = invalidRequestResponse;
const notFound = problemResponse('No workflow has this id');

export const workflowRoutes: FastifyPluginAsyncZod = async (app) => {
  // Bodies here are JSON only: Fastify's built-in text/plain parser would turn a wrongly
  // labelled body into a string and a confusing 400; without it the answer is 415.
  // Removed in this plugin's own context, so other routes keep their parsers.
  app.removeContentTypeParser('text/plain');

  readRoutes(app);
  writeRoutes(app);
};

type ZodApp = Parameters<FastifyPluginAsyncZod>[0];

/** GET /workflows and GET /workflows/{id}. */
function readRoutes(app: ZodApp): void {
  app.get(
    '/workflows',
    {
      schema: {
        operationId: 'listWorkflows',
        tags: ['workflows'],
        summary: 'List workflows',
        description:
          'Newest first, filtered by status, workflow_type, tag and name search; keyset-paginated with `limit` and `cursor`.',
        querystring: workflowListQuerySchema,
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

  app.get(
    '/workflows/:id',
    {
      schema: {
        operationId: 'getWorkflow',
        tags: ['workflows'],
        summary: 'Get a workflow with its steps',
        params: workflowIdParamsSchema,
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
}

/** POST, PUT and DELETE of workflow definitions. */
function writeRoutes(app: ZodApp): void {
  app.post(
    '/workflows',
    {
      schema: {
        operationId: 'createWorkflow',
        tags: ['workflows'],
        summary: 'Create a workflow',
        description:
          'Validates the whole definition (limits, step ids, dependencies, cycles, expressions) and stores it as version 1.',
        body: workflowCreateBodySchema,
        response: {
          201: workflowViewSchema.describe('Created; Location names the new workflow'),
          400: invalid,
        },
      },
    },
    async (request, reply) => {
      const view = await app.workflows.create(request.body, request.caller?.id ?? null);
      return reply
        .code(201)
        .header('location', `/workflows/${encodeURIComponent(view.id)}`)
        .send(view);
    },
  );

  app.put(
    '/workflows/:id',
    {
      schema: {
        operationId: 'updateWorkflow',
        tags: ['workflows'],
        summary: 'Update a workflow',
        description:
          'Replaces the given fields, validates the result and stores it as a new version. Running executions keep the version they started with.',
        params: workflowIdParamsSchema,
        body: workflowUpdateBodySchema,
        response: { 200: workflowViewSchema, 400: invalid, 404: notFound },
      },
    },
    async (request) =>
      app.workflows.update(request.params.id, request.body, request.caller?.id ?? null),
  );

  app.delete(
    '/workflows/:id',
    {
      schema: {
        operationId: 'deleteWorkflow',
        tags: ['workflows'],
        summary: 'Delete a workflow',
        description:
          'Deletes the workflow, its versions and its finished executions. Refused (409) while executions are unfinished.',
        params: workflowIdParamsSchema,
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
}
