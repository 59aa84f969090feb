import { z } from 'zod';
import { MAX_PRIORITY } from '../domain/execution.js';
import {
  LABEL_KEY_PATTERN,
  labelsSchema,
  MAX_LABEL_KEY_LENGTH,
  MAX_LABEL_VALUE_LENGTH,
} from '../domain/labels.js';
import { EXECUTION_STATUSES, STEP_STATUSES } from '../domain/statuses.js';
import { jsonObject, pageOf, timestamp } from './common.js';

/** Executions and their step runs as the API shows them, and the requests that drive them. */

/**
 * A for_each step with more item runs than this is summarised in GET /executions/{id}: its
 * own run carries `items` (counts by status) instead of one entry per item, and its output
 * (every item's output), in that run and in `step_results`, is replaced by a
 * `summarisedOutput` note. GET /executions/{id}/steps pages through every run.
 */
export const SUMMARISED_FAN_OUT_ITEMS = 100;

/** Largest page of GET /executions/{id}/steps, and its default. */
export const MAX_STEP_PAGE = 100;
const DEFAULT_STEP_PAGE = 50;

/** What stands for the output of a fan-out larger than SUMMARISED_FAN_OUT_ITEMS. */
export function summarisedOutput(executionId: string, stepId: string, items: number) {
  return {
    summarised: true,
    items,
    steps_url: `/executions/${executionId}/steps?step_id=${encodeURIComponent(stepId)}`,
  };
}

export const itemSummarySchema = z
  .object({
    total: z.number().int(),
    by_status: z.partialRecord(z.enum(STEP_STATUSES), z.number().int()),
  })
  .describe(
    `Item runs of a for_each step with more than ${SUMMARISED_FAN_OUT_ITEMS} items, counted by status (they are listed by GET /executions/{id}/steps)`,
  );

export const stepRunViewSchema = z.object({
  step_id: z.string(),
  name: z.string(),
  step_type: z.string(),
  status: z.enum(STEP_STATUSES),
  attempts: z.number().int().describe('Attempts made so far'),
  output: z.unknown(),
  error: z
    .unknown()
    .describe('{message, type, retryable, attempt, details?} of the last failed attempt'),
  started_at: timestamp.nullable(),
  completed_at: timestamp.nullable(),
  iteration: z.number().int().describe('Loop iteration (0 for other workflow types)'),
  item_index: z.number().int().nullable().describe('for_each item, null for the step itself'),
  wait_reason: z.string().nullable().describe('Why the run waits, was skipped or will retry'),
  next_attempt_at: timestamp.nullable(),
  items: itemSummarySchema.optional(),
});
/** One run of a step as GET /executions/{id} shows it. */
export type StepRunView = z.infer<typeof stepRunViewSchema>;

export const executionViewSchema = z
  .object({
    id: z.string(),
    workflow_id: z.string(),
    workflow_version: z
      .number()
      .int()
      .describe('The workflow version this execution runs (pinned)'),
    status: z.enum(EXECUTION_STATUSES),
    input_data: z.unknown(),
    output_data: z.unknown(),
    step_results: z
      .record(z.string(), z.unknown())
      .describe(
        `Latest output of each step, by step id (a for_each over more than ${SUMMARISED_FAN_OUT_ITEMS} items: a note pointing to GET /executions/{id}/steps)`,
      ),
    error: z.string().nullable(),
    error_details: z.unknown(),
    started_at: timestamp.nullable(),
    completed_at: timestamp.nullable(),
    duration_seconds: z.number().nullable(),
    created_at: timestamp,
    updated_at: timestamp,
    current_iteration: z.number().int(),
    deadline_at: timestamp.nullable(),
    idempotency_key: z.string().nullable(),
    priority: z.number().int().describe('1 (its steps go first under contention) to 10 (last)'),
    labels: z.record(z.string(), z.string()).describe('Business keys to search it by'),
    concurrency_key: z
      .string()
      .nullable()
      .describe(
        "Its key under the workflow's config.concurrency, once evaluated (`__error__` when the key expression failed)",
      ),
    debounced: z
      .boolean()
      .optional()
      .describe(
        "On a start's answer only: the workflow has config.debounce, and this is the execution that collects the starts of its key",
      ),
    steps: z
      .array(stepRunViewSchema)
      .optional()
      .describe(
        `Every step run; the items of a for_each over more than ${SUMMARISED_FAN_OUT_ITEMS} items are summarised in its own run`,
      ),
  })
  .meta({
    example: {
      id: 'ex_3q2Jd9aQ0bXc1nVt',
      workflow_id: 'wf_8f14e45fceea167a5a36dedd4bea2543',
      workflow_version: 1,
      status: 'running',
      input_data: { source_file: 'data.csv' },
      output_data: null,
      step_results: {},
      error: null,
      error_details: null,
      started_at: '2026-11-25T18:00:00.000Z',
      completed_at: null,
      duration_seconds: null,
      created_at: '2026-11-25T18:00:00.000Z',
      updated_at: '2026-11-25T18:00:00.000Z',
      current_iteration: 0,
      deadline_at: null,
      idempotency_key: null,
      priority: 5,
      labels: { order: '4711' },
      concurrency_key: null,
      steps: [],
    },
  });
export type ExecutionView = z.infer<typeof executionViewSchema>;

export const executionPageSchema = pageOf(executionViewSchema);

export const executeHeadersSchema = z.object({
  'idempotency-key': z.string().min(1).max(255).optional(),
});

/**
 * No body, an empty body and `{}` all mean "no input". Fastify validates a missing body as
 * null, hence nullable.
 */
export const executeBodySchema = z
  .object({
    input_data: jsonObject.default({}).describe('Input the steps read as `input`'),
    priority: z
      .number()
      .int()
      .min(1)
      .max(MAX_PRIORITY)
      .optional()
      .describe(
        "Under contention its ready steps go before those of executions with a larger number: 1 (first) to 10 (last); default the workflow's config.priority, else 5",
      ),
    labels: labelsSchema.optional(),
    version: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe("A stored version to run; default the workflow's current version"),
  })
  .strict()
  .default({ input_data: {} })
  .nullable()
  .meta({
    example: { input_data: { source_file: 'data.csv', processing_rules: 'rules.json' } },
  });

/** The filters of `GET /executions`, which a bulk action's `filter` takes too. */
export const executionFilterFields = {
  workflow_id: z.string().min(1).max(255).optional(),
  status: z.enum(EXECUTION_STATUSES).optional(),
  workflow_version: z.coerce.number().int().min(1).optional(),
  failed_step: z.string().min(1).max(255).optional().describe('The id of a step that failed'),
  error_type: z
    .string()
    .min(1)
    .max(100)
    .optional()
    .describe('The type of the error that ended it (its error_details.type)'),
  created_after: z.iso
    .datetime({ offset: true })
    .optional()
    .describe('Inclusive lower bound on created_at'),
  created_before: z.iso
    .datetime({ offset: true })
    .optional()
    .describe('Exclusive upper bound on created_at'),
  ended_after: z.iso
    .datetime({ offset: true })
    .optional()
    .describe('Inclusive lower bound on completed_at'),
  ended_before: z.iso
    .datetime({ offset: true })
    .optional()
    .describe('Exclusive upper bound on completed_at'),
};

const listFilters = {
  ...executionFilterFields,
  limit: z.coerce.number().int().min(1).max(100).default(20),
  cursor: z.string().min(1).max(1000).optional().describe('next_cursor of the previous page'),
};
const KNOWN_FILTERS = new Set(Object.keys(listFilters));
export const LABEL_FILTER_PREFIX = 'label.';

/** Flags every field that is neither `known` nor a well-formed `label.<key>` given once. */
export function labelFilterProblems(
  fields: Record<string, unknown>,
  known: ReadonlySet<string>,
  context: z.RefinementCtx,
): void {
  for (const [name, value] of Object.entries(fields)) {
    if (known.has(name)) continue;
    const key = name.startsWith(LABEL_FILTER_PREFIX) ? name.slice(LABEL_FILTER_PREFIX.length) : '';
    if (!LABEL_KEY_PATTERN.test(key) || key.length > MAX_LABEL_KEY_LENGTH) {
      context.addIssue({ code: 'custom', path: [name], message: 'unknown filter' });
    } else if (typeof value !== 'string') {
      context.addIssue({
        code: 'custom',
        path: [name],
        message: 'give each label once, as a string',
      });
    }
  }
}

/** `label.<key>=<value>`, repeatable for different keys (all must hold); nothing else unknown. */
export const executionListQuerySchema = z
  .object(listFilters)
  .catchall(z.union([z.string().max(MAX_LABEL_VALUE_LENGTH), z.array(z.string())]))
  .superRefine((query, context) => labelFilterProblems(query, KNOWN_FILTERS, context));

export const stepRunPageSchema = pageOf(stepRunViewSchema);

export const stepRunListQuerySchema = z
  .object({
    step_id: z.string().min(1).max(255).optional(),
    status: z.enum(STEP_STATUSES).optional(),
    limit: z.coerce.number().int().min(1).max(MAX_STEP_PAGE).default(DEFAULT_STEP_PAGE),
    cursor: z.string().min(1).max(1000).optional().describe('next_cursor of the previous page'),
  })
  .strict();
