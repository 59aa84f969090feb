import type { ExecutionRow, StepRunRow } from '../../domain/execution.js';
import type { ExecutionStatus } from '../../domain/statuses.js';
import { isIn } from '../../domain/statuses.js';
import type { StepDefinition } from '../../domain/workflow-definition.js';
import {
  ExecutionNotFoundError,
  ExecutionStateError,
  type FieldProblem,
  ValidationFailedError,
} from '../../errors.js';
import type { Queryable } from '../../store/db.js';
import { recordAction } from '../../store/execution-actions.js';
import * as executions from '../../store/executions.js';
import { REOPENED_STEP_STATUSES } from '../../store/sql-statuses.js';
import * as stepRuns from '../../store/step-runs.js';
import { type Effects, noEffects } from './effects.js';
import { withLockedExecution } from './lock.js';
import type { Machine } from './machine.js';
import { type ActionRequest, reopen, runBefore } from './operator-actions.js';

/**
 * A retry with edits (README "Edit and resume"): re-run from named steps, with a corrected
 * input or corrected outputs of finished steps. Checked and applied in one transaction under
 * the execution's row lock, with its record (README "History"), so a crash applies all of it
 * or none; a dry run answers the plan and changes nothing.
 */

export interface RetryEdits {
  from_steps?: string[] | undefined;
  input_data?: Record<string, unknown> | undefined;
  step_outputs?: Record<string, unknown> | undefined;
  dry_run?: boolean | undefined;
}

export interface RetryPlan {
  dry_run: boolean;
  /** Steps that run again, in definition order. */
  rerun: string[];
  /** Steps that keep what they ended with. */
  kept: string[];
  input_data?: { before: unknown; after: unknown };
  step_outputs?: Record<string, { before: unknown; after: unknown }>;
}

/** A retry that edits nothing resumes a failed or timed-out execution, as it always did. */
export const RETRYABLE_STATUSES: readonly ExecutionStatus[] = ['failed', 'timed_out'];
/** An edited retry may also run a completed execution again from the named steps. */
export const EDITABLE_STATUSES: readonly ExecutionStatus[] = ['failed', 'timed_out', 'completed'];

export function hasEdits(edits: RetryEdits): boolean {
  return (
    edits.from_steps !== undefined ||
    edits.input_data !== undefined ||
    edits.step_outputs !== undefined
  );
}

/** The named steps (default: the failed ones) and every step that depends on them. */
function stepsToRerun(steps: StepDefinition[], runs: StepRunRow[], from: string[] | undefined) {
  const rerun = new Set(
    from ?? runs.filter((run) => isIn(REOPENED_STEP_STATUSES, run.status)).map((r) => r.step_id),
  );
  // Failed runs have no output to keep: they run again whichever steps are named.
  for (const run of runs) if (isIn(REOPENED_STEP_STATUSES, run.status)) rerun.add(run.step_id);
  for (let grew = true; grew; ) {
    grew = false;
    for (const step of steps) {
      if (!rerun.has(step.id) && step.depends_on.some((dep) => rerun.has(dep))) {
        rerun.add(step.id);
        grew = true;
      }
    }
  }
  return rerun;
}

/** Why a step's output may not be corrected, or null when it may. */
function outputProblem(
  step: StepDefinition | undefined,
  run: StepRunRow | undefined,
  rerun: Set<string>,
  version: string,
): string | null {
  if (!step) return `no such step in ${version}`;
  if (step.for_each) return "a for_each step's output is its items'; re-run it instead";
  if (rerun.has(step.id)) return `step "${step.id}" runs again, so its output would be replaced`;
  if (run?.status !== 'completed') {
    return `step "${step.id}" has not finished (${run?.status ?? 'not started'})`;
  }
  return null;
}

/** What the edits would do, or the 400 that names every step they get wrong. */
function planOf(
  execution: ExecutionRow,
  steps: StepDefinition[],
  runs: StepRunRow[],
  edits: RetryEdits,
): RetryPlan {
  const known = new Set(steps.map((step) => step.id));
  const problems: FieldProblem[] = [];
  const version = `version ${execution.workflow_version}`;
  for (const id of edits.from_steps ?? []) {
    if (!known.has(id))
      problems.push({ path: 'from_steps', message: `no step "${id}" in ${version}` });
  }
  const rerun = stepsToRerun(steps, runs, edits.from_steps);
  const runOf = new Map(runs.map((run) => [run.step_id, run]));
  const outputs: Record<string, { before: unknown; after: unknown }> = {};
  for (const [id, after] of Object.entries(edits.step_outputs ?? {})) {
    const run = runOf.get(id);
    const message = outputProblem(
      steps.find((step) => step.id === id),
      run,
      rerun,
      version,
    );
    if (message) problems.push({ path: `step_outputs.${id}`, message });
    else outputs[id] = { before: run?.output, after };
  }
  // A completed execution has no failed step to default to: re-running nothing would end it
  // again at once, with outputs no step computed from the corrected values.
  if (rerun.size === 0) {
    problems.push({ path: 'from_steps', message: 'no step would run again: name the steps' });
  }
  if (problems.length > 0) throw new ValidationFailedError(problems);
  return {
    dry_run: edits.dry_run === true,
    rerun: steps.filter((step) => rerun.has(step.id)).map((step) => step.id),
    kept: steps.filter((step) => !rerun.has(step.id)).map((step) => step.id),
    ...(edits.input_data !== undefined
      ? { input_data: { before: execution.input_data, after: edits.input_data } }
      : {}),
    ...(edits.step_outputs !== undefined ? { step_outputs: outputs } : {}),
  };
}

/** Applies a plan in the transaction that holds the execution's lock, and records it. */
async function apply(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
  plan: RetryPlan,
  replaced: StepRunRow[],
  request: ActionRequest,
  effects: Effects,
): Promise<void> {
  if (plan.input_data) await executions.replaceInput(tx, execution.id, plan.input_data.after);
  for (const [id, output] of Object.entries(plan.step_outputs ?? {})) {
    await executions.replaceStepOutput(tx, execution, id, output.after);
  }
  await reopen(m, tx, execution, effects, plan.rerun);
  const { dry_run: _dry, ...detail } = plan;
  await recordAction(tx, {
    executionId: execution.id,
    action: plan.input_data || plan.step_outputs ? 'edit' : 'retry',
    actor: request.actor,
    reason: request.reason,
    detail: { ...detail, before: { runs: replaced.map(runBefore) } },
  });
}

/** A retry with edits or a dry run: 404, 409 (its status forbids it), 400 (bad edits). */
export async function retryWithEdits(
  m: Machine,
  id: string,
  edits: RetryEdits,
  request: ActionRequest,
): Promise<{ plan: RetryPlan; effects: Effects }> {
  const effects = noEffects();
  const allowed = hasEdits(edits) ? EDITABLE_STATUSES : RETRYABLE_STATUSES;
  const plan = await withLockedExecution(
    m.options.pool,
    id,
    allowed,
    async (tx, execution) => {
      const { steps } = await m.definition(tx, execution.workflow_id, execution.workflow_version);
      const runs = await stepRuns.loadIterationRuns(tx, execution.id, execution.current_iteration);
      const planned = planOf(execution, steps, runs, edits);
      if (planned.dry_run) return planned;
      const rerun = new Set(planned.rerun);
      const replaced = runs.filter((run) => rerun.has(run.step_id) && run.status !== 'pending');
      await apply(m, tx, execution, planned, replaced, request, effects);
      return planned;
    },
    (found) =>
      found
        ? new ExecutionStateError(
            id,
            found.status,
            hasEdits(edits)
              ? 'only a failed, timed-out or completed execution can be edited and retried (an execution still running cannot be edited)'
              : 'only a failed or timed-out execution can be retried',
          )
        : new ExecutionNotFoundError(id),
  );
  if (!plan) throw new ExecutionNotFoundError(id);
  return { plan, effects };
}
