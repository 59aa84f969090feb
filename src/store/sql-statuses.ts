import {
  ACTIVE_STEP_STATUSES,
  ADVANCING_EXECUTION_STATUSES,
  type ExecutionStatus,
  FINISHED_EXECUTION_STATUSES,
  type StepStatus,
  TERMINAL_STEP_STATUSES,
  UNFINISHED_EXECUTION_STATUSES,
} from '../domain/statuses.js';

/**
 * Status lists as SQL sees them, all built from src/domain/statuses.ts so that no list is
 * typed twice. Statements pass a list as a parameter (`status = ANY($n::text[])`); they
 * splice in the literal (`status IN ${...}`) only where the planner needs the text: a partial
 * index whose predicate lists the statuses (migrations: workflow_executions_unfinished_idx,
 * workflow_executions_unfinished_workflow_idx) is matched only by a predicate it can prove
 * from the query's text, and a prepared statement's generic plan does not see a parameter's
 * value. The hot prepared statements keep literals for the same reason.
 */

/** `('a', 'b')`: a list as an SQL literal, each value quoted and its quotes doubled. */
export function sqlList(statuses: readonly string[]): string {
  return `(${statuses.map((status) => `'${status.replaceAll("'", "''")}'`).join(', ')})`;
}

/** Executions whose runs may be claimed and advanced: those that run and are not paused. */
export const RUNNING_EXECUTION_STATUSES: readonly ExecutionStatus[] =
  ADVANCING_EXECUTION_STATUSES.filter((status) => status !== 'paused');

/** Ended executions that the seed's failure_count counts. */
export const FAILURE_COUNTED_STATUSES: readonly ExecutionStatus[] =
  FINISHED_EXECUTION_STATUSES.filter((status) => status === 'failed' || status === 'timed_out');

/** Runs an attempt may hold a lease on: in flight and past their queue. */
export const LEASED_STEP_STATUSES: readonly StepStatus[] = ACTIVE_STEP_STATUSES.filter(
  (status) => status !== 'queued',
);

/** Runs a worker's job may claim (a sleeping run too, when it has a wake time). */
export const CLAIMABLE_STEP_STATUSES: readonly StepStatus[] = ACTIVE_STEP_STATUSES.filter(
  (status) => status !== 'waiting',
);

/** Ended runs that reopening an execution runs again (completed and skipped ones stay). */
export const REOPENED_STEP_STATUSES: readonly StepStatus[] = TERMINAL_STEP_STATUSES.filter(
  (status) => status === 'failed' || status === 'cancelled',
);

/** The predicate of the partial indexes on unfinished executions, as they spell it. */
export const SQL_UNFINISHED_EXECUTIONS = sqlList(UNFINISHED_EXECUTION_STATUSES);
/** For the claim, a prepared statement on the per-step path. */
export const SQL_RUNNING_EXECUTIONS = sqlList(RUNNING_EXECUTION_STATUSES);
export const SQL_CLAIMABLE_RUNS = sqlList(CLAIMABLE_STEP_STATUSES);
/**
 * Runs a named limit counts (running: in use; waiting for a slot or token), as the partial
 * index step_executions_limit_keys_idx spells them (migration named-limits).
 */
export const SQL_LIMIT_COUNTED_RUNS = sqlList(LEASED_STEP_STATUSES);
/** Runs in flight, as the partial index step_executions_active_idx spells them: the usage of
 * named limits reads them all (runs waiting for a token are queued again). */
export const SQL_ACTIVE_RUNS = sqlList(ACTIVE_STEP_STATUSES);
