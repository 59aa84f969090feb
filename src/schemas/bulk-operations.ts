import { z } from 'zod';
import { BULK_ACTIONS, DRY_RUN_SAMPLE, SKIP_REASONS } from '../domain/bulk-actions.js';
import { labelsSchema, MAX_LABEL_VALUE_LENGTH } from '../domain/labels.js';
import { BULK_OPERATION_STATUSES } from '../domain/statuses.js';
import { jsonObject, timestamp } from './common.js';
import { executionFilterFields, labelFilterProblems } from './executions.js';

/**
 * Bulk actions (README "Operations"): the request, the dry run's answer and the operation.
 * The filter is the list's filter, field for field.
 */

const filterFields = {
  ...executionFilterFields,
  labels: labelsSchema.optional().describe('Every label must hold (as label.<key> in the list)'),
  all: z
    .literal(true)
    .optional()
    .describe('Every execution: must be given, alone, to act on all of them'),
};
const KNOWN_FILTER_FIELDS = new Set(Object.keys(filterFields));

export const bulkFilterSchema = z
  .object(filterFields)
  .catchall(z.string().max(MAX_LABEL_VALUE_LENGTH))
  .superRefine((filter, context) => {
    labelFilterProblems(filter, KNOWN_FILTER_FIELDS, context);
    const given = Object.entries(filter).filter(([, value]) => value !== undefined);
    if (given.length === 0) {
      context.addIssue({
        code: 'custom',
        path: [],
        message: 'an empty filter would act on every execution; give {"all": true} to mean that',
      });
    } else if (filter.all && given.length > 1) {
      context.addIssue({
        code: 'custom',
        path: ['all'],
        message: '"all" stands alone: it cannot be combined with other filters',
      });
    }
  })
  .describe('The filters of GET /executions; {"all": true} for every execution')
  .meta({ example: { workflow_id: 'wf_123', status: 'failed', 'label.tenant': 'acme' } });

export const bulkRequestSchema = z
  .object({
    action: z.enum(BULK_ACTIONS).describe('delete needs the admin role; the others operator'),
    filter: bulkFilterSchema,
    dry_run: z
      .boolean()
      .default(false)
      .describe(`Only count what would be touched and list the newest ${DRY_RUN_SAMPLE}`),
    reason: z.string().trim().min(1).max(1000).optional().describe('Kept with the operation'),
    to_version: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe(
        "upgrade only, and required there: the version of each execution's workflow to move it to",
      ),
  })
  .strict()
  .superRefine((body, context) => {
    if (body.action === 'upgrade' && body.to_version === undefined) {
      context.addIssue({
        code: 'custom',
        path: ['to_version'],
        message: 'is required with upgrade',
      });
    } else if (body.action !== 'upgrade' && body.to_version !== undefined) {
      context.addIssue({ code: 'custom', path: ['to_version'], message: 'only upgrade takes it' });
    }
  })
  .meta({
    example: {
      action: 'retry',
      filter: { workflow_id: 'wf_123', status: 'failed' },
      dry_run: true,
      reason: 'payments API is back',
    },
  });

export const dryRunSchema = z.object({
  action: z.enum(BULK_ACTIONS),
  dry_run: z.literal(true),
  matched: z.number().int().describe('Executions the filter matches now'),
  sample: z.array(z.string()).describe(`The newest ${DRY_RUN_SAMPLE} of them`),
});

export const operationViewSchema = z.object({
  id: z.string(),
  action: z.enum(BULK_ACTIONS),
  filter: jsonObject,
  to_version: z.number().int().nullable().describe('upgrade: the version asked for'),
  reason: z.string().nullable(),
  requested_by: z.string().nullable(),
  status: z.enum(BULK_OPERATION_STATUSES),
  matched: z
    .number()
    .int()
    .describe('Executions the filter matched (still growing while counting)'),
  counting: z.boolean().describe('True while the matching executions are still being listed'),
  done: z.number().int(),
  skipped: z.number().int().describe('Executions whose state did not allow the action'),
  skipped_by_reason: z.partialRecord(z.enum(SKIP_REASONS), z.number().int()),
  failed: z.number().int(),
  error: z.string().nullable(),
  created_at: timestamp,
  started_at: timestamp.nullable(),
  ended_at: timestamp.nullable(),
});
export type OperationView = z.infer<typeof operationViewSchema>;

export const operationListQuerySchema = z
  .object({ limit: z.coerce.number().int().min(1).max(100).default(20) })
  .strict();
export const operationListSchema = z.object({ items: z.array(operationViewSchema) });
