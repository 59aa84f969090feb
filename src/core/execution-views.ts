import type { ExecutionRow, StepRunRow } from '../domain/execution.js';
import type { WorkflowDefinition } from '../domain/workflow-definition.js';
import type { ExecutionView, StepRunView } from '../schemas/executions.js';

/** Execution rows shaped as the API shows them (src/schemas/executions.ts). */

const iso = (value: Date | null): string | null => (value ? value.toISOString() : null);

export function executionView(row: ExecutionRow): ExecutionView {
  return {
    id: row.id,
    workflow_id: row.workflow_id,
    workflow_version: row.workflow_version,
    status: row.status,
    input_data: row.input_data,
    output_data: row.output_data ?? null,
    step_results: row.step_results ?? {},
    error: row.error,
    error_details: row.error_details ?? null,
    started_at: iso(row.started_at),
    completed_at: iso(row.completed_at),
    duration_seconds: row.duration_seconds,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    current_iteration: row.current_iteration,
    deadline_at: iso(row.deadline_at),
    idempotency_key: row.idempotency_key,
  };
}

/** Step runs in definition order, then loop iteration, then for_each item. */
export function stepRunViews(
  definition: WorkflowDefinition,
  runs: readonly StepRunRow[],
): StepRunView[] {
  const position = new Map(definition.steps.map((step, index) => [step.id, index]));
  const byId = new Map(definition.steps.map((step) => [step.id, step]));
  return [...runs]
    .sort(
      (a, b) =>
        a.iteration - b.iteration ||
        (position.get(a.step_id) ?? 0) - (position.get(b.step_id) ?? 0) ||
        a.item_index - b.item_index,
    )
    .map((run) => ({
      step_id: run.step_id,
      name: byId.get(run.step_id)?.name ?? run.step_id,
      step_type: byId.get(run.step_id)?.step_type ?? 'unknown',
      status: run.status,
      attempts: run.attempt,
      output: run.output ?? null,
      error: run.error ?? null,
      started_at: iso(run.started_at),
      completed_at: iso(run.completed_at),
      iteration: run.iteration,
      item_index: run.item_index >= 0 ? run.item_index : null,
      wait_reason: run.wait_reason,
      next_attempt_at:
        run.status === 'queued' || run.status === 'waiting' ? iso(run.wake_at) : null,
    }));
}
