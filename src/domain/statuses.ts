/**
 * Every status the service knows, and the sets built from them: the one definition that
 * routes, core, engine, stores and SQL (as `= ANY($n)` parameters) share. See
 * docs/ARCHITECTURE.md, "Domain".
 */

export const WORKFLOW_STATUSES = ['draft', 'active', 'paused', 'archived'] as const;
export type WorkflowStatus = (typeof WORKFLOW_STATUSES)[number];

/** Workflows whose steps' named limits must exist: all but archived ones. */
export const LIMIT_BINDING_WORKFLOW_STATUSES: readonly WorkflowStatus[] = WORKFLOW_STATUSES.filter(
  (status) => status !== 'archived',
);

export const EXECUTION_STATUSES = [
  'pending',
  'queued',
  'running',
  'waiting',
  'paused',
  'completed',
  'failed',
  'cancelled',
  'timed_out',
] as const;
export type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];

export const STEP_STATUSES = [
  'pending',
  'queued',
  'running',
  'waiting',
  'completed',
  'failed',
  'skipped',
  'cancelled',
] as const;
export type StepStatus = (typeof STEP_STATUSES)[number];

/** Executions that have not ended: they hold their workflow's version and count as active. */
export const UNFINISHED_EXECUTION_STATUSES: readonly ExecutionStatus[] = [
  'pending',
  'queued',
  'running',
  'waiting',
  'paused',
];

/** Unfinished executions that hold a slot of their workflow's `config.concurrency`: all but
 * those still queued for one. */
export const SLOT_HOLDING_EXECUTION_STATUSES: readonly ExecutionStatus[] = [
  'pending',
  'running',
  'waiting',
  'paused',
];

/** Executions the scheduler advances and attempts may be recorded in. */
export const ADVANCING_EXECUTION_STATUSES: readonly ExecutionStatus[] = [
  'running',
  'waiting',
  'paused',
];

/** Executions that have ended, whatever the outcome. */
export const FINISHED_EXECUTION_STATUSES: readonly ExecutionStatus[] = [
  'completed',
  'failed',
  'cancelled',
  'timed_out',
];

/** Runs that have ended. */
export const TERMINAL_STEP_STATUSES: readonly StepStatus[] = [
  'completed',
  'failed',
  'skipped',
  'cancelled',
];

/** Runs that have not ended. */
export const UNFINISHED_STEP_STATUSES: readonly StepStatus[] = [
  'pending',
  'queued',
  'running',
  'waiting',
];

/** Runs in flight: they count against concurrency limits. */
export const ACTIVE_STEP_STATUSES: readonly StepStatus[] = ['queued', 'running', 'waiting'];

/** Membership test over one of the lists above, typed for any status string. */
export function isIn<S extends string>(statuses: readonly S[], status: string): status is S {
  return (statuses as readonly string[]).includes(status);
}

/** A bulk operation: running until every item is acted on, or cancelled, or failed. */
export const BULK_OPERATION_STATUSES = ['running', 'completed', 'cancelled', 'failed'] as const;
export type BulkOperationStatus = (typeof BULK_OPERATION_STATUSES)[number];
