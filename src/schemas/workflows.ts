import { z } from 'zod';
import { WORKFLOW_STATUSES } from '../domain/statuses.js';
import {
  WORKFLOW_TYPES,
  workflowCreateSchema,
  workflowTypeSchema,
  workflowUpdateSchema,
} from '../domain/workflow-definition.js';
import { dateTime, jsonObject, pageOf } from './common.js';

/** Workflow definitions as the API shows them, and the bodies and queries that change them. */

export const stepViewSchema = z.object({
  id: z.string().describe('Stable key, unique in the workflow'),
  name: z.string(),
  step_type: z.string(),
  agent_id: z.string().nullable(),
  config: jsonObject,
  dependencies: z.array(z.string()).describe('Declared dependencies (step ids); [] if none'),
  condition: z.string().nullable(),
  for_each: z.string().nullable(),
  for_each_concurrency: z.number().int(),
  timeout_seconds: z.number().int(),
  retry_count: z.number().int(),
  retry_backoff: z.object({
    type: z.enum(['exponential', 'fixed']),
    delay_ms: z.number().int(),
    max_delay_ms: z.number().int(),
  }),
  continue_on_error: z.boolean(),
  limits: z
    .array(z.object({ name: z.string(), key: z.string().nullable() }))
    .describe('Named limits each run takes a slot or token of; key null: one budget'),
});
/** A step as the API shows it: the user's fields with defaults applied. */
export type StepView = z.infer<typeof stepViewSchema>;

/** The seed's `workflows` columns plus `version` (ISO timestamps). */
export const workflowRowSchema = z.object({
  id: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  workflow_type: z.enum(WORKFLOW_TYPES),
  status: z.enum(WORKFLOW_STATUSES),
  config: jsonObject,
  metadata: jsonObject,
  tags: z.array(z.string()),
  created_at: dateTime,
  updated_at: dateTime,
  started_at: dateTime.nullable(),
  completed_at: dateTime.nullable(),
  execution_count: z.number().int(),
  success_count: z.number().int(),
  failure_count: z.number().int(),
  average_duration_seconds: z.number(),
  version: z.number().int().describe('Incremented by every update; executions pin one'),
});
export type WorkflowRow = z.infer<typeof workflowRowSchema>;

const exampleRow = {
  id: 'wf_3f6d0c9e8b7a4f1e9c2d5b8a7e6f4c3d',
  name: 'Data Processing Workflow',
  description: 'Process data through multiple steps',
  workflow_type: 'sequential',
  status: 'draft',
  config: {},
  metadata: {},
  tags: [],
  created_at: '2025-11-25T18:00:00.000Z',
  updated_at: '2025-11-25T18:00:00.000Z',
  started_at: null,
  completed_at: null,
  execution_count: 0,
  success_count: 0,
  failure_count: 0,
  average_duration_seconds: 0,
  version: 1,
};

const exampleStep = {
  id: 'data_validation',
  name: 'Data Validation',
  step_type: 'validation',
  agent_id: null,
  config: { schema: 'data_schema.json' },
  dependencies: [],
  condition: null,
  for_each: null,
  for_each_concurrency: 10,
  timeout_seconds: 300,
  retry_count: 3,
  retry_backoff: { type: 'exponential', delay_ms: 1000, max_delay_ms: 60000 },
  continue_on_error: false,
  limits: [],
};

/** What GET /workflows/{id} returns, and what the cache holds. */
export const workflowViewSchema = workflowRowSchema
  .extend({ steps: z.array(stepViewSchema).describe('In definition order') })
  .describe('A workflow with its steps')
  .meta({ example: { ...exampleRow, steps: [exampleStep] } });
export type WorkflowView = z.infer<typeof workflowViewSchema>;

/** A list item: the row without its steps, which would make pages heavy. */
export const workflowSummarySchema = workflowRowSchema
  .extend({ steps_count: z.number().int() })
  .describe('A workflow without its steps');
export type WorkflowSummary = z.infer<typeof workflowSummarySchema>;

export const workflowPageSchema = pageOf(workflowSummarySchema)
  .describe('A page of workflows, newest first')
  .meta({ example: { items: [{ ...exampleRow, steps_count: 3 }], next_cursor: null } });
export type WorkflowPage = z.infer<typeof workflowPageSchema>;

const noNul = (value: string) => !value.includes('\u0000');

export const workflowIdParamsSchema = z
  .object({
    id: z.string().min(1).describe('Workflow id, e.g. wf_3f6d0c9e8b7a4f1e9c2d5b8a7e6f4c3d'),
  })
  .strict();

export const workflowListQuerySchema = z
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

export const workflowCreateBodySchema = workflowCreateSchema
  .describe('A new workflow; unknown fields are refused')
  .meta({ example: createExample });

export const workflowUpdateBodySchema = workflowUpdateSchema
  .describe(
    'Fields to replace; `steps`, when given, replaces all steps. Unknown fields are refused',
  )
  .meta({ example: { status: 'active', tags: ['etl', 'nightly'] } });
