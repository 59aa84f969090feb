import { z } from 'zod';
import { WORKFLOW_STATUSES } from '../domain/statuses.js';
import { WORKFLOW_TYPES } from '../domain/workflow-definition.js';

/**
 * Response schemas shared by the routes. They serialise replies and document them in OpenAPI,
 * so they describe exactly what the service sends.
 */

const timestamp = z.iso.datetime().describe('ISO 8601 timestamp (UTC)');
const jsonObject = z.record(z.string(), z.unknown());

/** RFC 9457 problem details: the body of every error response. */
export const problemSchema = z
  .looseObject({
    type: z.string().describe('URI naming the kind of problem'),
    title: z.string().describe('Short summary of the HTTP status'),
    status: z.number().int().describe('HTTP status code'),
    detail: z.string().describe('What went wrong in this request'),
    instance: z.string().optional().describe('The request path'),
    code: z.string().describe('Stable error code, e.g. WF_ERR_VALIDATION'),
    request_id: z.string().describe('Quote it when reporting a problem'),
    errors: z
      .array(z.object({ path: z.string(), message: z.string() }))
      .optional()
      .describe('Every problem found, for validation errors'),
  })
  .describe('Problem details (RFC 9457), sent as application/problem+json')
  .meta({
    example: {
      type: 'urn:workflow-service:problem:validation',
      title: 'Bad Request',
      status: 400,
      detail: 'The request is invalid: steps[1].dependencies[0]: no step has the id or name "x"',
      instance: '/workflows',
      code: 'WF_ERR_VALIDATION',
      request_id: '6f1c2a0e-4d1b-4bde-9a43-7f0f8e2b1c55',
      errors: [{ path: 'steps[1].dependencies[0]', message: 'no step has the id or name "x"' }],
    },
  });
export type ProblemBody = z.infer<typeof problemSchema>;

/** The same problem schema, described for one status code in the OpenAPI document. */
export function problemResponse(description: string) {
  return problemSchema.describe(description);
}

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
});

const workflowRowFields = {
  id: z.string(),
  name: z.string(),
  description: z.string().nullable(),
  workflow_type: z.enum(WORKFLOW_TYPES),
  status: z.enum(WORKFLOW_STATUSES),
  config: jsonObject,
  metadata: jsonObject,
  tags: z.array(z.string()),
  created_at: timestamp,
  updated_at: timestamp,
  started_at: timestamp.nullable(),
  completed_at: timestamp.nullable(),
  execution_count: z.number().int(),
  success_count: z.number().int(),
  failure_count: z.number().int(),
  average_duration_seconds: z.number(),
  version: z.number().int().describe('Incremented by every update; executions pin one'),
};

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
};

export const workflowViewSchema = z
  .object({
    ...workflowRowFields,
    steps: z.array(stepViewSchema).describe('In definition order'),
  })
  .describe('A workflow with its steps')
  .meta({ example: { ...exampleRow, steps: [exampleStep] } });

export const workflowSummarySchema = z
  .object({
    ...workflowRowFields,
    steps_count: z.number().int(),
  })
  .describe('A workflow without its steps');

export const workflowPageSchema = z
  .object({
    items: z.array(workflowSummarySchema),
    next_cursor: z
      .string()
      .nullable()
      .describe('Pass as `cursor` for the next page; null on the last page'),
  })
  .describe('A page of workflows, newest first')
  .meta({ example: { items: [{ ...exampleRow, steps_count: 3 }], next_cursor: null } });
