import type { ClaimedRun, ExecutionRow, RunSnapshot, StepRunRow } from '../../domain/execution.js';
import type { WorkflowDefinition } from '../../domain/workflow-definition.js';
import { hasChanges, schedule } from '../scheduler.js';
import type { ExpressionContext } from '../steps/types.js';

/**
 * The runs of an execution's iteration as the engine holds them in memory between reading
 * and writing them: what expressions see of them, how changes merge in, how a run claimed for
 * a worker carries them.
 */

/** What expressions see of an execution besides its runs. */
export type ExecutionIdentity = Pick<
  ExecutionRow,
  'id' | 'workflow_id' | 'workflow_version' | 'input_data'
>;

/**
 * The expression context of an execution at `iteration`: its input, identity and each step's
 * own run (but `except`, the run whose expressions these are), by step id.
 */
export function expressionContext(
  execution: ExecutionIdentity,
  iteration: number,
  runs: readonly RunSnapshot[],
  except?: number,
): ExpressionContext {
  const steps: ExpressionContext['steps'] = {};
  for (const run of runs) {
    if (run.item_index < 0 && run.id !== except) {
      steps[run.step_id] = { output: run.output, status: run.status };
    }
  }
  return {
    input: execution.input_data,
    steps,
    iteration,
    execution: {
      id: execution.id,
      workflow_id: execution.workflow_id,
      workflow_version: execution.workflow_version,
    },
  };
}

/** The execution of a claimed run, as expressionContext reads it. */
export function claimedExecution(claim: ClaimedRun): ExecutionIdentity {
  return {
    id: claim.execution_id,
    workflow_id: claim.workflow_id,
    workflow_version: claim.workflow_version,
    input_data: claim.input_data,
  };
}

/** What a claim carries of one of its iteration's own runs. */
function snapshot(run: RunSnapshot): RunSnapshot {
  const { id, step_id, item_index, status, output } = run;
  const { item_count, items_active, items_waiting, items_done, items_failed } = run;
  return {
    ...{ id, step_id, item_index, status, output },
    ...{ item_count, items_active, items_waiting, items_done, items_failed },
  };
}

/**
 * A run claimed for the worker that made it ready, as claimRun would return it: with its
 * execution's identity and input, and the iteration's own runs (`runs`, the claimed one
 * included when it is one).
 */
export function claimedRun(
  execution: Pick<
    ExecutionRow,
    'workflow_id' | 'workflow_version' | 'input_data' | 'priority' | 'concurrency_key'
  >,
  claimed: StepRunRow,
  runs: readonly RunSnapshot[],
): ClaimedRun {
  return {
    ...claimed,
    workflow_id: execution.workflow_id,
    workflow_version: execution.workflow_version,
    input_data: execution.input_data,
    priority: execution.priority,
    concurrency_key: execution.concurrency_key,
    iteration_runs: runs
      .filter((run) => run.item_index < 0)
      .map((run) => snapshot(run.id === claimed.id ? claimed : run)),
  };
}

/** `runs` with each changed row put in place of its old version (new rows appended), by id. */
export function withChanges<Run extends { id: number }>(
  runs: readonly Run[],
  changed: readonly Run[],
): Run[] {
  const latest = new Map(changed.map((row) => [row.id, row]));
  const merged = runs.map((run) => {
    const row = latest.get(run.id);
    latest.delete(run.id);
    return row ?? run;
  });
  return [...merged, ...latest.values()].sort((a, b) => a.id - b.id);
}

/**
 * How an iteration's runs are inserted: the steps the scheduler starts at once whose start
 * takes no decision (no condition, no for_each) are inserted queued, as its first pass would
 * leave them; the rest pending, for that pass. `settled`: that pass has nothing left to do.
 */
export function firstIteration(
  definition: WorkflowDefinition,
  paused = false,
): { stepIds: string[]; queued: string[]; settled: boolean } {
  const pending = definition.steps.map((step) => ({
    step_id: step.id,
    item_index: -1,
    status: 'pending' as StepRunRow['status'],
  }));
  const first = schedule({ definition, runs: pending, paused });
  const queued = definition.steps
    .filter((step) => first.ready.includes(step.id))
    .filter((step) => step.condition === null && step.for_each === null)
    .map((step) => step.id);
  const started = pending.map((run) =>
    queued.includes(run.step_id) ? { ...run, status: 'queued' as const } : run,
  );
  const next = schedule({ definition, runs: started, paused });
  return {
    stepIds: definition.steps.map((step) => step.id),
    queued,
    settled: queued.length > 0 && !hasChanges(next) && next.outcome.kind === 'running',
  };
}
