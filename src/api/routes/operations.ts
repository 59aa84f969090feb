import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  bulkRequestSchema,
  dryRunSchema,
  operationListQuerySchema,
  operationListSchema,
  operationViewSchema,
} from '../../schemas/bulk-operations.js';
import { idParams } from '../../schemas/common.js';
import { invalidRequestResponse, problemResponse } from '../../schemas/problem.js';

/** Bulk actions over executions and their operations (README "Operations"). Thin. */

const notFound = problemResponse('No bulk operation has this id');
const unavailable = problemResponse('Postgres or Redis is unavailable; retry later');

export const operationRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/executions/bulk',
    {
      schema: {
        operationId: 'bulkExecutions',
        tags: ['executions'],
        summary: 'Cancel, retry, pause, resume or delete every execution a filter matches',
        description:
          'The filter is that of GET /executions (`label.<key>` or a `labels` object; `{"all": true}` alone for every execution; an empty filter is refused). With `dry_run: true` answers 200 with how many executions match and the newest 20 ids, changing nothing. Otherwise answers 202 with an operation (Location: /operations/{id}) that runs in the background in batches, survives a crash and acts on each execution at most once; executions whose state does not allow the action are skipped with the reason counted. delete (finished executions only) needs the admin role.',
        body: bulkRequestSchema,
        response: {
          200: dryRunSchema,
          202: operationViewSchema,
          400: invalidRequestResponse,
          403: problemResponse('delete needs the admin role'),
          503: unavailable,
        },
      },
    },
    async (request, reply) => {
      const answer = await app.bulkOperations.request(request.body, request.caller);
      if ('dryRun' in answer) return reply.code(200).send(answer.dryRun);
      reply.header('location', `/operations/${answer.operation.id}`);
      return reply.code(202).send(answer.operation);
    },
  );

  app.get(
    '/operations',
    {
      schema: {
        operationId: 'listOperations',
        tags: ['executions'],
        summary: 'The newest bulk operations first',
        querystring: operationListQuerySchema,
        response: { 200: operationListSchema, 400: invalidRequestResponse, 503: unavailable },
      },
    },
    async (request) => app.bulkOperations.list(request.query.limit),
  );

  app.get(
    '/operations/:id',
    {
      schema: {
        operationId: 'getOperation',
        tags: ['executions'],
        summary: 'A bulk operation: its status and how far it got',
        params: idParams(),
        response: { 200: operationViewSchema, 404: notFound, 503: unavailable },
      },
    },
    async (request) => app.bulkOperations.get(request.params.id),
  );

  app.post(
    '/operations/:id/cancel',
    {
      schema: {
        operationId: 'cancelOperation',
        tags: ['executions'],
        summary: 'Stop a running bulk operation where it is',
        description:
          'Executions already acted on stay so; the rest are left alone. Cancelling a cancelled operation answers it again; a completed or failed one is a 409.',
        params: idParams(),
        response: {
          200: operationViewSchema,
          404: notFound,
          409: problemResponse('The operation has already ended'),
          503: unavailable,
        },
      },
    },
    async (request) => app.bulkOperations.cancel(request.params.id),
  );
};
