import { z } from 'zod';

/**
 * The flow-control settings of a workflow's `config` (docs/ARCHITECTURE.md, "Flow control"):
 * their shapes, bounds and defaults, shared by the validator (which judges them) and the
 * engine (which reads them from a pinned definition, where they are already valid).
 */

export const ON_LIMIT_ACTIONS = ['queue', 'cancel_new', 'cancel_oldest'] as const;
export type OnLimitAction = (typeof ON_LIMIT_ACTIONS)[number];

/** Bound on executions per key of one workflow that may run at once. */
export const MAX_EXECUTION_CONCURRENCY = 10_000;
/** Longest key (characters) a key expression may give; longer fails as `__error__`. */
export const MAX_FLOW_KEY_LENGTH = 256;
/** The key of executions whose key expression failed: they share one budget, never stall. */
export const ERROR_FLOW_KEY = '__error__';

const keyExpression = z
  .string()
  .min(1)
  .max(2000)
  .describe('JSONata over {input, labels}: executions with the same value share the budget');

/** `config.fairness_key`: the fairness group of its executions' steps, with no limit. */
export const fairnessKeySchema = keyExpression;

export const concurrencyConfigSchema = z
  .object({
    limit: z.number().int().min(1).max(MAX_EXECUTION_CONCURRENCY),
    key: keyExpression.optional(),
    on_limit: z.enum(ON_LIMIT_ACTIONS).optional(),
  })
  .strict();
export type ConcurrencyConfig = z.infer<typeof concurrencyConfigSchema>;

/** Longest debounce window, and longest wait from a debounced execution's first start. */
export const MAX_DEBOUNCE_SECONDS = 86_400;

export const debounceConfigSchema = z
  .object({
    period_seconds: z.number().int().min(1).max(MAX_DEBOUNCE_SECONDS),
    key: keyExpression.optional(),
    max_wait_seconds: z.number().int().min(1).max(MAX_DEBOUNCE_SECONDS).optional(),
  })
  .strict()
  .refine(
    (debounce) =>
      debounce.max_wait_seconds === undefined ||
      debounce.max_wait_seconds >= debounce.period_seconds,
    { path: ['max_wait_seconds'], message: 'must be at least period_seconds' },
  );
export type DebounceConfig = z.infer<typeof debounceConfigSchema>;
