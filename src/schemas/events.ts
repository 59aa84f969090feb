import { z } from 'zod';
import { labelsSchema } from '../domain/labels.js';
import { jsonObject, pageOf } from './common.js';

/** Events as the API shows them, and the delivery and list requests. */

export const eventViewSchema = z
  .object({
    id: z.string(),
    type: z.string(),
    data: jsonObject,
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
export type EventView = z.infer<typeof eventViewSchema>;

export const eventPageSchema = pageOf(eventViewSchema);

export const publishEventBodySchema = z
  .object({
    type: z.string().min(1).max(255),
    data: jsonObject.default({}),
    correlation_key: z.string().min(1).max(255).optional(),
    id: z
      .string()
      .min(1)
      .max(255)
      .optional()
      .describe('Delivery id: the same id is delivered once'),
    labels: labelsSchema.optional().describe('Labels of the executions it starts'),
  })
  .strict()
  .meta({
    example: {
      type: 'order.paid',
      data: { order_id: 4711 },
      correlation_key: '4711',
      id: 'order-4711-paid',
    },
  });

export const eventListQuerySchema = z
  .object({
    type: z.string().min(1).max(255).optional(),
    correlation_key: z.string().min(1).max(255).optional(),
    received_after: z.iso.datetime({ offset: true }).optional(),
    received_before: z.iso.datetime({ offset: true }).optional(),
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().min(1).max(1000).optional(),
  })
  .strict();
