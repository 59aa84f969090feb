import { z } from 'zod';
import { jsonObject } from './common.js';

/** Tasks as external workers receive them, and the requests they make. */

export const taskViewSchema = z
  .object({
    task_token: z.string().describe('Unguessable; use it to heartbeat, complete or fail the task'),
    execution_id: z.string(),
    step_id: z.string(),
    step_type: z.string(),
    agent_id: z.string().nullable(),
    config: jsonObject.describe('The step config, expressions resolved'),
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
/** A task as an external worker receives it. */
export type TaskView = z.infer<typeof taskViewSchema>;

export const taskTokenParamsSchema = z.object({ token: z.string().min(1).max(100) }).strict();

export const pollBodySchema = z
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
  });

export const pollResponseSchema = z.object({ tasks: z.array(taskViewSchema) });

export const heartbeatResponseSchema = z.object({
  task_token: z.string(),
  lease_expires_at: z.string(),
});

/** No body means no output; Fastify validates a missing body as null, hence nullable. */
export const completeBodySchema = z
  .object({ output: z.unknown().optional() })
  .strict()
  .default({})
  .nullable()
  .meta({ example: { output: { valid: true, rows: 1200 } } });

export const failBodySchema = z
  .object({
    error: z.string().min(1).max(10_000),
    retryable: z.boolean().default(true),
    details: z.unknown().optional(),
  })
  .strict()
  .meta({ example: { error: 'schema data_schema.json not found', retryable: false } });

export const completedResponseSchema = z.object({ status: z.literal('completed') });
export const failedResponseSchema = z.object({ status: z.literal('failed') });
