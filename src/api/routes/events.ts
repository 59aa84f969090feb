import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { newExecutionTrace } from '../../monitoring/tracing.js';
import {
  eventListQuerySchema,
  eventPageSchema,
  eventViewSchema,
  publishEventBodySchema,
} from '../../schemas/events.js';
import { problemResponse } from '../../schemas/problem.js';
import { BODY_ENVELOPE_BYTES, checkFieldSize } from '../json-body.js';

const errors = {
  400: problemResponse('The request is invalid'),
  503: problemResponse('Postgres or Redis is unavailable; retry later'),
};

/** Events: start event_driven workflows and resume wait_for_event steps. */
export const eventRoutes: FastifyPluginAsyncZod = async (app) => {
  const maxDataBytes = app.config.MAX_INPUT_BYTES;

  app.post(
    '/events',
    {
      // Event data becomes execution input, so it has the input's limit.
      bodyLimit: maxDataBytes + BODY_ENVELOPE_BYTES,
      config: { bodyField: 'data' },
      schema: {
        operationId: 'publishEvent',
        tags: ['events'],
        summary: 'Deliver an event',
        description:
          'Starts every active event_driven workflow whose config.trigger.event is this type and whose config.trigger.filter holds, and resumes the wait_for_event steps it matches. The same id twice is delivered once (200 with the first outcome). `data` may be at most MAX_INPUT_BYTES as JSON.',
        body: publishEventBodySchema,
        response: {
          200: eventViewSchema,
          202: eventViewSchema,
          413: problemResponse('The body is larger than the limit of `data`'),
          ...errors,
        },
      },
    },
    async (request, reply) => {
      checkFieldSize(request.body.data, 'data', maxDataBytes, 'MAX_INPUT_BYTES');
      // The raw headers: the route's schema keeps only the ones it declares.
      const { event, duplicate } = await app.events.publish(request.body, request.caller?.id, () =>
        newExecutionTrace(request.raw.headers),
      );
      if (duplicate) reply.header('idempotent-replayed', 'true');
      return reply.code(duplicate ? 200 : 202).send(event);
    },
  );

  app.get(
    '/events',
    {
      schema: {
        operationId: 'listEvents',
        tags: ['events'],
        summary: 'List events, newest first, with what each did',
        querystring: eventListQuerySchema,
        response: { 200: eventPageSchema, ...errors },
      },
    },
    async (request) => app.events.list(request.query),
  );
};
