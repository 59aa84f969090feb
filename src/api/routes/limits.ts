import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import {
  limitListSchema,
  limitNameParamsSchema,
  limitPutBodySchema,
  limitViewSchema,
} from '../../schemas/limits.js';
import { invalidRequestResponse, problemResponse } from '../../schemas/problem.js';
import { judgeParamsWithBody } from '../request-parts.js';

/** Named limits shared across workflows (README "Flow control"). Thin: parse, call, reply. */

const invalid = invalidRequestResponse;
const notFound = problemResponse('No limit has this name');

export const limitRoutes: FastifyPluginAsyncZod = async (app) => {
  // JSON bodies only, as for workflows: a wrongly labelled body is a 415, not a confusing 400.
  app.removeContentTypeParser('text/plain');

  app.put(
    '/limits/:name',
    {
      schema: {
        operationId: 'putLimit',
        tags: ['limits'],
        summary: 'Create or replace a named limit',
        description:
          'Sets the whole limit (what is left out is removed): `max_concurrent` runs at once and/or `rate.limit` starts per `rate.period_seconds`, per key. Answers 201 with Location when the limit is new, 200 when it replaced one. Steps take it with `limits: [{name, key?}]`.',
        params: limitNameParamsSchema,
        body: limitPutBodySchema,
        response: {
          200: limitViewSchema.describe('Replaced'),
          201: limitViewSchema.describe('Created; Location names the limit'),
          400: invalid,
        },
      },
      preValidation: judgeParamsWithBody(limitNameParamsSchema, limitPutBodySchema),
    },
    async (request, reply) => {
      const { limit, created } = await app.limits.put(request.params.name, request.body);
      if (created) reply.header('location', `/limits/${encodeURIComponent(limit.name)}`);
      return reply.code(created ? 201 : 200).send(limit);
    },
  );

  app.get(
    '/limits',
    {
      schema: {
        operationId: 'listLimits',
        tags: ['limits'],
        summary: 'List every named limit with its usage',
        description:
          'Every limit by name, each as GET /limits/{name} shows it: settings, runs in use and waiting per key, and the workflows that name it.',
        response: { 200: limitListSchema },
      },
    },
    async () => app.limits.list(),
  );

  app.get(
    '/limits/:name',
    {
      schema: {
        operationId: 'getLimit',
        tags: ['limits'],
        summary: 'Get a named limit with what is in use and waiting now',
        description:
          'The settings; the runs running with a slot (`in_use`) and waiting for a slot or token (`waiting`), in total and for the busiest 100 keys (key null: steps that name the limit without a key); the workflows, not archived, whose steps name it.',
        params: limitNameParamsSchema,
        response: { 200: limitViewSchema, 400: invalid, 404: notFound },
      },
    },
    async (request) => app.limits.get(request.params.name),
  );

  app.delete(
    '/limits/:name',
    {
      schema: {
        operationId: 'deleteLimit',
        tags: ['limits'],
        summary: 'Delete a named limit',
        description:
          'Refused (409, naming them) while the steps of a workflow that is not archived name the limit; archived workflows do not hold it.',
        params: limitNameParamsSchema,
        response: {
          204: z.null().describe('Deleted'),
          400: invalid,
          404: notFound,
          409: problemResponse('Workflows that are not archived name the limit'),
        },
      },
    },
    async (request, reply) => {
      await app.limits.delete(request.params.name);
      return reply.code(204).send(null);
    },
  );
};
