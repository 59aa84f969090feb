import { z } from 'zod';
import { EXECUTION_STATUSES, STEP_STATUSES } from '../domain/statuses.js';
import { jsonObject, pageOf, timestamp } from './common.js';

/**
 * Operator actions' bodies, the edited retry's plan and an execution's history (README "Edit
 * and resume", "History").
 */

const MAX_REASON = 1000;
const MAX_STEPS = 1000;

const reason = z.string().max(MAX_REASON).optional().describe('Why: kept in the history');

/** `{reason?}` of cancel, pause and resume; no body is no reason. */
export const actionBodySchema = z
  .object({ reason })
  .strict()
  .nullable()
  .optional()
  .meta({ example: { reason: 'the customer withdrew the order' } });

/** The retry's optional body; no body (or `{}`) re-runs the failed steps as before. */
export const retryBodySchema = z
  .object({
    from_steps: z
      .array(z.string().min(1).max(255))
      .min(1)
      .max(MAX_STEPS)
      .optional()
      .describe(
        'Re-run these steps and every step that depends on them (default: the failed ones); the others keep their outputs',
      ),
    input_data: jsonObject.optional().describe("Replaces the execution's input"),
    step_outputs: jsonObject
      .optional()
      .describe(
        'Corrected outputs of completed steps that do not run again, by step id; the steps that run again read them',
      ),
    reason,
    dry_run: z.boolean().optional().describe('Answer the plan and change nothing'),
  })
  .strict()
  .nullable()
  .optional()
  .meta({
    example: { from_steps: ['transform'], input_data: { n: '3' }, reason: 'fixed the input' },
  });

const change = z.object({ before: z.unknown(), after: z.unknown() });

/** What an edited retry does (its dry run answers it). */
export const retryPlanSchema = z.object({
  dry_run: z.boolean().describe('True: nothing was changed'),
  rerun: z.array(z.string()).describe('Steps that run again, in definition order'),
  kept: z.array(z.string()).describe('Steps that keep their outputs'),
  input_data: change.optional(),
  step_outputs: z.record(z.string(), change).optional(),
});

export const HISTORY_ENTRY_KINDS = [
  'started',
  'step_started',
  'step_waiting',
  'step_ended',
  'action',
  'ended',
] as const;

export const historyEntrySchema = z.object({
  at: timestamp,
  kind: z.enum(HISTORY_ENTRY_KINDS),
  // started
  trigger: z.string().optional().describe('api, event, schedule or subworkflow'),
  caller: z
    .string()
    .nullable()
    .optional()
    .describe('Who started it: the key id or token subject of the API call or published event'),
  trigger_detail: z
    .record(z.string(), z.unknown())
    .optional()
    .describe('The trigger as recorded: event_id and event_type, schedule tick, parent step_id'),
  parent_execution_id: z.string().nullable().optional(),
  // step entries
  step_id: z.string().optional(),
  iteration: z.number().int().optional(),
  attempt: z.number().int().optional(),
  step_status: z.enum(STEP_STATUSES).optional(),
  error: z.unknown().optional(),
  wait_kind: z.string().nullable().optional(),
  wait_reason: z.string().nullable().optional(),
  items: z
    .object({ total: z.number().int(), done: z.number().int(), failed: z.number().int() })
    .optional()
    .describe('A for_each step: its items, counted (GET /executions/{id}/steps lists them)'),
  // action
  action: z.string().optional().describe('cancel, pause, resume, retry, edit, upgrade'),
  actor: z.string().nullable().optional().describe("The credential's key id or token subject"),
  reason: z.string().nullable().optional(),
  detail: z.record(z.string(), z.unknown()).optional().describe('For edits: before and after'),
  // ended
  status: z.enum(EXECUTION_STATUSES).optional(),
});
export type HistoryEntry = z.infer<typeof historyEntrySchema>;

export const MAX_HISTORY_PAGE = 500;

export const historyQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(MAX_HISTORY_PAGE).default(100),
    cursor: z.string().max(100).optional(),
  })
  .strict();

export const historyPageSchema = pageOf(historyEntrySchema);
