import { z } from 'zod';
import { limitNameSchema } from '../domain/workflow-definition.js';
import { dateTime } from './common.js';

/** Named limits shared across workflows: the requests that set them and what the API shows. */

export const MAX_CONCURRENT_MAX = 100_000;
export const RATE_LIMIT_MAX = 1_000_000;
export const RATE_PERIOD_MAX_SECONDS = 86_400;
/** Keys a limit's view lists, busiest first. */
export const MAX_LISTED_KEYS = 100;

export const limitNameParamsSchema = z
  .object({
    name: limitNameSchema.describe('The limit\'s name, e.g. "payments-api" (no ":")'),
  })
  .strict();

const rateSchema = z
  .object({
    limit: z
      .number()
      .int()
      .min(1)
      .max(RATE_LIMIT_MAX)
      .describe(`Runs that may start per period, 1 to ${RATE_LIMIT_MAX}`),
    period_seconds: z
      .number()
      .int()
      .min(1)
      .max(RATE_PERIOD_MAX_SECONDS)
      .describe(`The period in seconds, 1 to ${RATE_PERIOD_MAX_SECONDS}`),
  })
  .strict();

export const limitPutBodySchema = z
  .object({
    max_concurrent: z
      .number()
      .int()
      .min(1)
      .max(MAX_CONCURRENT_MAX)
      .optional()
      .describe(`Runs that may hold a slot at once, per key, 1 to ${MAX_CONCURRENT_MAX}`),
    rate: rateSchema.optional().describe('Runs that may start per period, per key'),
  })
  .strict()
  .refine((body) => body.max_concurrent !== undefined || body.rate !== undefined, {
    message: 'give max_concurrent, rate or both',
  })
  .describe(
    'The whole limit: what is left out is removed. At least one of max_concurrent and rate; unknown fields are refused',
  )
  .meta({ example: { max_concurrent: 5, rate: { limit: 100, period_seconds: 60 } } });
export type LimitPutBody = z.infer<typeof limitPutBodySchema>;

const counts = {
  in_use: z.number().int().describe('Runs running now that hold a slot'),
  waiting: z.number().int().describe('Runs waiting for a slot or a token'),
};

export const limitViewSchema = z
  .object({
    name: z.string(),
    max_concurrent: z.number().int().nullable(),
    rate: z.object({ limit: z.number().int(), period_seconds: z.number().int() }).nullable(),
    created_at: dateTime,
    updated_at: dateTime,
    ...counts,
    keys: z
      .array(
        z.object({
          key: z
            .string()
            .nullable()
            .describe('The evaluated key; null for steps that name the limit without a key'),
          ...counts,
        }),
      )
      .describe(
        `Keys with runs in use or waiting, busiest (in_use + waiting) first, at most ${MAX_LISTED_KEYS}; the totals count every key`,
      ),
    used_by: z
      .array(z.string())
      .describe('Ids of the workflows, not archived, whose steps name the limit'),
  })
  .describe('A named limit: its settings and what is in use and waiting now')
  .meta({
    example: {
      name: 'payments-api',
      max_concurrent: 5,
      rate: { limit: 100, period_seconds: 60 },
      created_at: '2026-11-25T18:00:00.000Z',
      updated_at: '2026-11-25T18:00:00.000Z',
      in_use: 7,
      waiting: 2,
      keys: [
        { key: 'acct_42', in_use: 5, waiting: 2 },
        { key: 'acct_7', in_use: 2, waiting: 0 },
      ],
      used_by: ['wf_3f6d0c9e8b7a4f1e9c2d5b8a7e6f4c3d'],
    },
  });
export type LimitView = z.infer<typeof limitViewSchema>;

export const limitListSchema = z
  .object({ items: z.array(limitViewSchema).describe('Every limit, by name') })
  .describe('Every named limit with its usage');
export type LimitList = z.infer<typeof limitListSchema>;
