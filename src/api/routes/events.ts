import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { problemResponse } from '../schemas.js';

const eventSchema = z
  .object({
    id: z.string(),
    type: z.string(),
    data: z.record(z.string(), z.unknown()),
    correlation_key: z.string().nullable(),
    received_at: z.string(),
    started_executions: z
      .array(z.string())
      .describe('Executions of event_driven workflows it started'),
    resumed_steps: z
      .array(z.object({ execution_id: z.string(), step_id: z.string() }))
      .describe('wait_for_event steps it resumed'),
  })
  .meta({
    example: {
      id: 'order-4711-paid',
      type: 'order.paid',
      data: { order_id: 4711, amount: 120 },
      correlation_key: '4711',
      received_at: '2026-11-25T18:00:00.000Z',
      started_executions: ['ex_3q2Jd9aQ0bXc1nVt'],
      resumed_steps: [{ execution_id: 'ex_9f8e7d6c5b4a3210', step_id: 'await_payment' }],
    },
  });

const errors = {
  400: problemResponse('The request is invalid'),
  503: problemResponse('Postgres or Redis is unavailable; retry later'),
};

/** Events: start event_driven workflows and resume wait_for_event steps. */
export const eventRoutes: FastifyPluginAsyncZod = async (app) => {
  app.post(
    '/events',
    {
      schema: {
        tags: ['events'],
        summary: 'Deliver an event',
        description:
          'Starts every active event_driven workflow whose config.trigger.event is this type and whose config.trigger.filter holds, and resumes the wait_for_event steps it matches. The same id twice is delivered once (200 with the first outcome).',
        body: z
          .object({
            type: z.string().min(1).max(255),
            data: z.record(z.string(), z.unknown()).default({}),
            correlation_key: z.string().min(1).max(255).optional(),
            id: z
              .string()
              .min(1)
              .max(255)
              .optional()
              .describe('Delivery id: the same id is delivered once'),
          })
          .strict()
          .meta({
            example: {
              type: 'order.paid',
              data: { order_id: 4711 },
              correlation_key: '4711',
              id: 'order-4711-paid',
            },
          }),
        response: { 200: eventSchema, 202: eventSchema, ...errors },
      },
    },
    async (request, reply) => {
      const { event, duplicate } = await app.events.publish(request.body);
      if (duplicate) reply.header('idempotent-replayed', 'true');
      return reply.code(duplicate ? 200 : 202).send(event);
    },
  );

  app.get(
    '/events',
    {
      schema: {
        tags: ['events'],
        summary: 'List events, newest first, with what each did',
        querystring: z
          .object({
            type: z.string().min(1).max(255).optional(),
            correlation_key: z.string().min(1).max(255).optional(),
            received_after: z.iso.datetime({ offset: true }).optional(),
            received_before: z.iso.datetime({ offset: true }).optional(),
            limit: z.coerce.number().int().min(1).max(100).default(20),
            cursor: z.string().min(1).max(1000).optional(),
          })
          .strict(),
        response: {
          200: z.object({ items: z.array(eventSchema), next_cursor: z.string().nullable() }),
          ...errors,
        },
      },
    },
    async (request) => app.events.list(request.query),
  );
};
