import { z } from 'zod';
import { jsonObject, pageOf, timestamp } from './common.js';

/**
 * Version history of a workflow and upgrades of executions to another version (README
 * "Versions, upgrades and edits").
 */

export const versionParamsSchema = z
  .object({
    id: z.string().min(1).max(255).describe('Workflow id'),
    version: z.coerce.number().int().min(1).max(2_147_483_647).describe('Version number'),
  })
  .strict();

export const versionListQuerySchema = z
  .object({
    limit: z.coerce.number().int().min(1).max(100).default(20),
    cursor: z.string().min(1).max(100).optional().describe('next_cursor of the previous page'),
  })
  .strict();

export const versionSummarySchema = z.object({
  version: z.number().int(),
  created_at: timestamp,
  created_by: z
    .string()
    .nullable()
    .describe('Who stored it: API key id, JWT subject or `anonymous`; null before it was recorded'),
  summary: z
    .string()
    .nullable()
    .describe('What changed against the version before, e.g. "steps added: x; removed: y"'),
});

export const versionPageSchema = pageOf(versionSummarySchema).describe('Newest version first');

export const versionViewSchema = versionSummarySchema.extend({
  definition: jsonObject.describe('The definition as stored: workflow_type, config, steps'),
});

export const upgradeBodySchema = z
  .object({
    to_version: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe("The version to move to; default the workflow's current version"),
    dry_run: z.boolean().default(false).describe('Only check and plan; change nothing'),
    reason: z
      .string()
      .trim()
      .min(1)
      .max(1000)
      .optional()
      .describe("Kept in the execution's history with the upgrade"),
  })
  .strict()
  .default({ dry_run: false })
  .nullable()
  .meta({ example: { to_version: 3, dry_run: true, reason: 'ship the fixed charge step' } });

export const upgradePlanSchema = z.object({
  execution_id: z.string(),
  dry_run: z.literal(true),
  from_version: z.number().int(),
  to_version: z.number().int(),
  kept: z.array(z.string()).describe('Steps in both versions, run as before'),
  added: z.array(z.string()).describe('Steps only the target has: pending runs are added'),
  removed: z.array(z.string()).describe('Steps the target drops, never started: runs deleted'),
  replanned: z
    .array(z.string())
    .describe('Steps not started yet whose definition changed: planned from the target'),
});
