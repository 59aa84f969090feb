import { z } from 'zod';
import type { ConcurrencyConfig, DebounceConfig } from './flow-control.js';
import { WORKFLOW_STATUSES } from './statuses.js';

/**
 * The shape of workflows as users write them (request schemas, also the OpenAPI source) and
 * as the engine reads them (normalised definitions pinned per version).
 */

export const WORKFLOW_TYPES = [
  'sequential',
  'parallel',
  'conditional',
  'event_driven',
  'loop',
] as const;
export type WorkflowType = (typeof WORKFLOW_TYPES)[number];

/** `event` is accepted as an alias of `event_driven` (docs/ARCHITECTURE.md, "Workflows and expressions"). */
export const workflowTypeSchema = z
  .enum([...WORKFLOW_TYPES, 'event'])
  .transform((type): WorkflowType => (type === 'event' ? 'event_driven' : type))
  .describe('sequential | parallel | conditional | event_driven (alias: event) | loop');

const jsonObject = z.record(z.string(), z.unknown());

export const retryBackoffSchema = z
  .object({
    type: z.enum(['exponential', 'fixed']).default('exponential'),
    delay_ms: z.number().int().min(0).max(3_600_000).default(1000),
    max_delay_ms: z.number().int().min(0).max(86_400_000).default(60_000),
  })
  .strict();
export type RetryBackoff = z.infer<typeof retryBackoffSchema>;

export const STEP_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/**
 * A named limit's name (README "Flow control"): lower-case letters, digits, `_`, `.` and `-`;
 * no `:`, which separates name and key in a run's `limit_keys` (src/domain/limits.ts).
 */
export const LIMIT_NAME_PATTERN = /^[a-z0-9][a-z0-9_.-]{0,62}$/;
export const LIMIT_NAME_RULE =
  'must be 1 to 63 characters: lower-case letters, digits, "_", "." and "-", starting with a letter or digit';

/** How many limits one step may name. */
export const MAX_LIMITS_PER_STEP = 5;

/** A limit's name, as a path parameter and as a step names it. */
export const limitNameSchema = z.string().regex(LIMIT_NAME_PATTERN, LIMIT_NAME_RULE);

/** A named limit a step takes a slot or token of (src/domain/limits.ts). */
export const stepLimitInputSchema = z
  .object({
    name: limitNameSchema.describe('A limit defined with PUT /limits/{name}'),
    key: z
      .string()
      .min(1)
      .nullable()
      .optional()
      .describe(
        'JSONata over the step context (e.g. `input.account_id`): each value has a budget of its own; absent, one budget for the limit',
      ),
  })
  .strict();

export const stepInputSchema = z
  .object({
    id: z
      .string()
      .max(255)
      .regex(STEP_ID_PATTERN, 'letters, digits, "_", "." and "-", starting with a letter or digit')
      .optional()
      .describe('Stable key, unique in the workflow; derived from the name when absent'),
    name: z.string().trim().min(1),
    step_type: z
      .string()
      .min(1)
      .max(100)
      .describe(
        'Built-in: noop, delay, transform, validate, http; anything else is an external task',
      ),
    agent_id: z.string().max(255).nullable().optional(),
    config: jsonObject.default({}),
    dependencies: z
      .array(z.string().min(1))
      .max(100)
      .optional()
      .describe("Ids or names of steps this one waits for; absent = the type's implicit order"),
    condition: z.string().min(1).nullable().optional().describe('JSONata; false skips the step'),
    for_each: z
      .string()
      .min(1)
      .nullable()
      .optional()
      .describe('JSONata yielding an array; the step runs once per item'),
    for_each_concurrency: z.number().int().min(1).max(1000).optional(),
    timeout_seconds: z.number().int().min(1).max(604_800).default(300),
    retry_count: z.number().int().min(0).max(100).default(3),
    retry_backoff: retryBackoffSchema.optional(),
    continue_on_error: z.boolean().default(false),
    limits: z
      .array(stepLimitInputSchema)
      .max(MAX_LIMITS_PER_STEP)
      .optional()
      .describe(
        `Named limits each run takes a slot or token of before it starts, at most ${MAX_LIMITS_PER_STEP}, each name once`,
      ),
  })
  .strict();
export type StepInput = z.infer<typeof stepInputSchema>;

const workflowFields = {
  name: z.string().trim().min(1),
  description: z.string().nullable().optional(),
  workflow_type: workflowTypeSchema,
  status: z.enum(WORKFLOW_STATUSES).default('draft'),
  config: jsonObject.default({}),
  metadata: jsonObject.default({}),
  tags: z.array(z.string().trim().min(1).max(100)).default([]),
  steps: z.array(stepInputSchema).default([]),
};

export const workflowCreateSchema = z.object(workflowFields).strict();
export type WorkflowCreateInput = z.infer<typeof workflowCreateSchema>;

/** PUT: the fields given replace the stored ones; `steps` is replaced as a whole. */
export const workflowUpdateSchema = z
  .object({
    name: workflowFields.name.optional(),
    description: workflowFields.description,
    workflow_type: workflowTypeSchema.optional(),
    status: z.enum(WORKFLOW_STATUSES).optional(),
    config: jsonObject.optional(),
    metadata: jsonObject.optional(),
    tags: z.array(z.string().trim().min(1).max(100)).optional(),
    steps: z.array(stepInputSchema).optional(),
  })
  .strict();
export type WorkflowUpdateInput = z.infer<typeof workflowUpdateSchema>;

/** Longest `config.retention_days` (a century): longer is keeping forever, which 0 says. */
export const MAX_RETENTION_DAYS = 36_500;

/** `config.retention_days`, judged by the validator and read again by the retention pass
 * (which falls back to RETENTION_DAYS for a value stored before it was validated). */
export const retentionDaysSchema = z.number().int().min(0).max(MAX_RETENTION_DAYS);

/** Days a workflow's finished executions are kept (0: forever): its own setting when valid,
 * else the service's RETENTION_DAYS. */
export function effectiveRetentionDays(stored: unknown, serviceDays: number): number {
  const own = retentionDaysSchema.safeParse(stored);
  return own.success ? own.data : serviceDays;
}

/** The keys of `config` the engine reads; any other keys are kept and ignored. */
export interface WorkflowEngineConfig {
  max_concurrency?: number;
  /** Executions per key that may run at once; the rest wait `queued` (or are cancelled). */
  concurrency?: ConcurrencyConfig;
  /** Starts with the same key within the window collapse into one execution. */
  debounce?: DebounceConfig;
  /** JSONata over {input, labels}: the fairness group of its executions' steps, where no
   * concurrency limit is wanted (config.concurrency.key serves when there is one). */
  fairness_key?: string;
  /** Its executions' default priority: 1 (first) to 10 (last). */
  priority?: number;
  timeout_seconds?: number;
  /** Days its finished executions are kept; 0 keeps them forever. Overrides RETENTION_DAYS. */
  retention_days?: number;
  loop?: { condition?: string; max_iterations: number };
  output?: string;
  /** `labels`: given to every execution a schedule tick or an event starts. */
  trigger?: {
    event?: string;
    filter?: string;
    schedule?: unknown;
    labels?: Record<string, string>;
  };
}

/** A step as the engine runs it: every default applied, dependencies resolved to ids. */
export interface StepDefinition {
  id: string;
  name: string;
  step_type: string;
  agent_id: string | null;
  config: Record<string, unknown>;
  /** The dependencies the user declared (resolved to ids), or null when none were declared. */
  dependencies: string[] | null;
  /** What the scheduler waits for: declared dependencies, or the type's implicit order. */
  depends_on: string[];
  /** True when depends_on came from the workflow type (a skipped predecessor never skips). */
  implicit_dependencies: boolean;
  condition: string | null;
  for_each: string | null;
  for_each_concurrency: number;
  timeout_seconds: number;
  retry_count: number;
  retry_backoff: RetryBackoff;
  continue_on_error: boolean;
  /** The named limits each run takes a slot or token of, in the order given; [] for none. */
  limits: StepLimit[];
}

/** A limit as a step names it: `key` is the JSONata source of its key, null for none. */
export interface StepLimit {
  name: string;
  key: string | null;
}

/** What a workflow version pins: everything the engine needs to run it. */
export interface WorkflowDefinition {
  workflow_type: WorkflowType;
  config: WorkflowEngineConfig & Record<string, unknown>;
  steps: StepDefinition[];
}

export const DEFAULT_FOR_EACH_CONCURRENCY = 10;
export const DEFAULT_RETRY_BACKOFF: RetryBackoff = {
  type: 'exponential',
  delay_ms: 1000,
  max_delay_ms: 60_000,
};
