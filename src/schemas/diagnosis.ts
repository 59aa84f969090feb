import { z } from 'zod';
import { ON_LIMIT_ACTIONS } from '../domain/flow-control.js';
import { EXECUTION_STATUSES, STEP_STATUSES } from '../domain/statuses.js';
import { timestamp } from './common.js';

/**
 * GET /executions/{id}/diagnosis: why an execution, and each of its unfinished step runs, is
 * not running now (README "Why is it waiting?"). Each reason is one `kind` with the details a
 * person needs to act on it.
 */

export const BLOCKED_BY_KINDS = [
  'dependency',
  'execution_concurrency',
  'concurrency',
  'rate_limit',
  'debounce',
  'timer',
  'retry_backoff',
  'event',
  'external_task',
  'sub_workflow',
  'paused',
  'priority_queue',
  'worker_capacity',
] as const;

export const blockedBySchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('dependency'),
    /** The steps it depends on that have not ended. */
    dependencies: z.array(z.string()),
  }),
  z.object({
    kind: z.literal('execution_concurrency'),
    /** Its key (`""` for the workflow's one budget), null until a worker evaluated it. */
    key: z.string().nullable(),
    /** Why the key is `__error__`: the key expression's failure. */
    key_error: z.string().nullable(),
    in_use: z.number().int(),
    max: z.number().int(),
    /** 1 for the next execution of its key to start; null until keyed. */
    position: z.number().int().nullable(),
    on_limit: z.enum(ON_LIMIT_ACTIONS),
  }),
  z.object({
    kind: z.literal('concurrency'),
    /** `for_each_concurrency` of a fan-out, the workflow's `max_concurrency`, or a named
     * limit's `max_concurrent` (then `name` and `key` say which budget). */
    limit: z.enum(['for_each_concurrency', 'max_concurrency', 'named_limit']),
    name: z.string().optional(),
    /** The evaluated key; null for a limit named without a key. */
    key: z.string().nullable().optional(),
    /** Why the key is `__error__`: the key expression's failure. */
    key_error: z.string().optional(),
    in_use: z.number().int(),
    max: z.number().int(),
    /** Items (of a fan-out) or steps waiting for a slot. */
    waiting: z.number().int(),
  }),
  z.object({
    kind: z.literal('rate_limit'),
    name: z.string(),
    key: z.string().nullable(),
    key_error: z.string().optional(),
    limit: z.number().int(),
    period_seconds: z.number().int(),
    /** When the run tries for a token again. */
    eta: timestamp,
  }),
  z.object({
    kind: z.literal('debounce'),
    /** The debounce key (`""` for the workflow's one window). */
    key: z.string(),
    /** When its window closes unless another start comes. */
    eta: timestamp,
    /** The latest it closes (max_wait_seconds after its first start). */
    deadline: timestamp,
  }),
  z.object({ kind: z.literal('timer'), eta: timestamp }),
  z.object({
    kind: z.literal('retry_backoff'),
    attempt: z.number().int(),
    eta: timestamp.nullable(),
    last_error: z.string().nullable(),
  }),
  z.object({
    kind: z.literal('event'),
    event: z.string(),
    correlation_key: z.string().nullable(),
  }),
  z.object({
    kind: z.literal('external_task'),
    step_type: z.string(),
    last_poll_at: timestamp.nullable(),
    /** No worker polled for this step type in the last NO_WORKER_SECONDS. */
    no_worker: z.boolean(),
  }),
  z.object({ kind: z.literal('sub_workflow'), execution_id: z.string() }),
  z.object({ kind: z.literal('paused') }),
  z.object({
    kind: z.literal('priority_queue'),
    /** Its execution's priority. */
    priority: z.number().int(),
    /** Steps queued now for executions of a higher priority (a smaller number). */
    ahead: z.number().int(),
  }),
  z.object({
    kind: z.literal('worker_capacity'),
    /** When it became ready: it waits for a free worker slot (or, pending, for a worker to
     * decide its condition or for_each). */
    since: timestamp.nullable(),
  }),
]);
export type BlockedBy = z.infer<typeof blockedBySchema>;

export const stepDiagnosisSchema = z.object({
  step_id: z.string(),
  iteration: z.number().int(),
  status: z.enum(STEP_STATUSES),
  /** Null while it runs on a worker. */
  blocked_by: blockedBySchema.nullable(),
  summary: z.string(),
});
export type StepDiagnosis = z.infer<typeof stepDiagnosisSchema>;

export const diagnosisSchema = z.object({
  execution_id: z.string(),
  status: z.enum(EXECUTION_STATUSES),
  /** What holds the whole execution (paused), else null: see its steps. */
  blocked_by: blockedBySchema.nullable(),
  summary: z.string(),
  /** The current iteration's unfinished step runs (a fan-out's items as one entry). */
  steps: z.array(stepDiagnosisSchema),
});
export type Diagnosis = z.infer<typeof diagnosisSchema>;
