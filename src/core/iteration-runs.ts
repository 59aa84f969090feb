import type { ExpressionContext } from '../engine/steps/types.js';
import type {
  ClaimedRun,
  ExecutionRow,
  RunSnapshot,
  StepRunRow,
} from '../store/execution-store.js';

/**
 * The runs of an execution's iteration as the engine holds them in memory between reading
 * and writing them: what expressions see of them, how changes merge in, how a run claimed for
 * a worker carries them.
 */

/** Statuses of a run that has not ended. */
export const UNFINISHED_RUN_STATUSES: ReadonlySet<StepRunRow['status']> = new Set([
  'pending',
  'queued',
  'running',
  'waiting',
]);

/** `steps` of the expression context: each step's own run but `except`, by step id. */
export function stepsContext(
  runs: readonly RunSnapshot[],
  except?: number,
): ExpressionContext['steps'] {
  const steps: ExpressionContext['steps'] = {};
  for (const run of runs) {
    if (run.item_index < 0 && run.id !== except) {
      steps[run.step_id] = { output: run.output, status: run.status };
    }
  }
  return steps;
}

/**
 * A run claimed for the worker that made it ready, as claimRun would return it: with its
 * execution's identity and input, and the iteration's runs (`runs`, the claimed one included).
 */
export function claimedRun(
  execution: Pick<ExecutionRow, 'workflow_id' | 'workflow_version' | 'input_data'>,
  claimed: StepRunRow,
  runs: readonly RunSnapshot[],
): ClaimedRun {
  return {
    ...claimed,
    workflow_id: execution.workflow_id,
    workflow_version: execution.workflow_version,
    input_data: execution.input_data,
    iteration_runs: runs.map((run) => {
      const { id, step_id, item_index, status, output } = run.id === claimed.id ? claimed : run;
      return { id, step_id, item_index, status, output };
    }),
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
