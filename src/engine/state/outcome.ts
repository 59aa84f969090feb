import type { ExecutionRow, StepRunRow } from '../../domain/execution.js';
import type { Queryable } from '../../store/db.js';
import * as completions from '../../store/run-completions.js';
import * as stepRuns from '../../store/step-runs.js';
import { retryDelayMs } from '../retry-policy.js';
import { advance } from './advance.js';
import { type Effects, jobFor, noEffects } from './effects.js';
import type { AttemptResult, InlineSlot, Machine } from './machine.js';

/**
 * The two ends of an attempt that need no wait: completed or failed. Recording an attempt
 * (record-attempt.ts) and resolving a wait from outside (waits.ts) both end here, so neither
 * module needs the other.
 */
export type AttemptOutcome = Extract<AttemptResult, { kind: 'completed' | 'failed' }>;

/** Applies a completion or failure to its run (locked with its execution), then advances. */
export async function applyOutcome(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
  run: StepRunRow,
  result: AttemptOutcome,
  inline?: InlineSlot,
): Promise<Effects> {
  if (result.kind === 'failed') return applyFailure(m, tx, execution, run, result, inline);
  await completions.completeLeasedRun(tx, run.id, result.output);
  return advance(m, tx, execution, noEffects(), { inline });
}

/** A failed attempt: retried after its backoff while the step's retry policy allows, else
 * the run fails and the scheduler decides what that means. */
async function applyFailure(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
  run: StepRunRow,
  result: Extract<AttemptResult, { kind: 'failed' }>,
  inline: InlineSlot | undefined,
): Promise<Effects> {
  const effects = noEffects();
  const definition = await m.definition(tx, execution.workflow_id, execution.workflow_version);
  const step = definition.steps.find((s) => s.id === run.step_id);
  const attemptsMade = run.attempt - run.first_attempt + 1;
  if (step && result.error.retryable && attemptsMade <= step.retry_count) {
    const delay = result.retryAfterMs ?? retryDelayMs(step.retry_backoff, attemptsMade);
    const runAt = new Date(Date.now() + delay);
    const { attempt } = await stepRuns.scheduleRetry(tx, run.id, result.error, runAt);
    effects.jobs.push({ ...jobFor(execution, run.id, run.step_id, attempt), runAt });
    return effects;
  }
  await stepRuns.failRun(tx, run.id, result.error);
  return advance(m, tx, execution, effects, { inline });
}
