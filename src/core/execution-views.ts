import type { ExecutionRow, StepRunRow } from '../domain/execution.js';
import type { StepStatus } from '../domain/statuses.js';
import type { WorkflowDefinition } from '../domain/workflow-definition.js';
import {
  type ExecutionView,
  type StepRunView,
  SUMMARISED_FAN_OUT_ITEMS,
  summarisedOutput,
} from '../schemas/executions.js';
import type { ItemCount } from '../store/step-run-pages.js';

/** Execution rows shaped as the API shows them (src/schemas/executions.ts). */

const iso = (value: Date | null): string | null => (value ? value.toISOString() : null);

/**
 * `step_results` with the output of each for_each step of `definition` over more than
 * SUMMARISED_FAN_OUT_ITEMS items replaced by a note: one entry per item would make the view
 * as large as the fan-out.
 */
function boundedStepResults(
  row: ExecutionRow,
  definition: WorkflowDefinition | undefined,
): Record<string, unknown> {
  const results = row.step_results ?? {};
  if (!definition) return results;
  const bounded: Record<string, unknown> = { ...results };
  for (const step of definition.steps) {
    const output = results[step.id];
    if (step.for_each !== null && Array.isArray(output)) {
      if (output.length > SUMMARISED_FAN_OUT_ITEMS) {
        bounded[step.id] = summarisedOutput(row.id, step.id, output.length);
      }
    }
  }
  return bounded;
}

/** The execution row as the API shows it; with its definition, large fan-outs' outputs are
 * summarised in step_results. */
export function executionView(row: ExecutionRow, definition?: WorkflowDefinition): ExecutionView {
  return {
    id: row.id,
    workflow_id: row.workflow_id,
    workflow_version: row.workflow_version,
    status: row.status,
    input_data: row.input_data,
    output_data: row.output_data ?? null,
    step_results: boundedStepResults(row, definition),
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
    priority: row.priority,
    labels: row.labels ?? {},
    concurrency_key: row.concurrency_key,
  };
}

/** Step runs in definition order, then loop iteration, then for_each item; `itemCounts`
 * summarise the items of fan-outs too large to list (their own runs get `items`). */
export function stepRunViews(
  definition: WorkflowDefinition,
  runs: readonly StepRunRow[],
  itemCounts: readonly ItemCount[] = [],
): StepRunView[] {
  const position = new Map(definition.steps.map((step, index) => [step.id, index]));
  const sorted = [...runs].sort(
    (a, b) =>
      a.iteration - b.iteration ||
      (position.get(a.step_id) ?? 0) - (position.get(b.step_id) ?? 0) ||
      a.item_index - b.item_index,
  );
  const views = stepRunViewsInOrder(definition, sorted);
  if (itemCounts.length === 0) return views;
  const summaries = new Map<string, NonNullable<StepRunView['items']>>();
  for (const { step_id, iteration, status, count } of itemCounts) {
    const key = `${iteration}/${step_id}`;
    const summary = summaries.get(key) ?? { total: 0, by_status: {} };
    summary.total += count;
    summary.by_status[status as StepStatus] = (summary.by_status[status] ?? 0) + count;
    summaries.set(key, summary);
  }
  return views.map((view) => {
    const items =
      view.item_index === null ? summaries.get(`${view.iteration}/${view.step_id}`) : undefined;
    return items ? { ...view, items } : view;
  });
}

/** Step runs in the order given (a page of GET /executions/{id}/steps), as the API shows
 * them; a large fan-out's own output is a note pointing to its item runs. */
export function stepRunViewsInOrder(
  definition: WorkflowDefinition,
  runs: readonly StepRunRow[],
): StepRunView[] {
  const byId = new Map(definition.steps.map((step) => [step.id, step]));
  return runs.map((run) => ({
    step_id: run.step_id,
    name: byId.get(run.step_id)?.name ?? run.step_id,
    step_type: byId.get(run.step_id)?.step_type ?? 'unknown',
    status: run.status,
    attempts: run.attempt,
    output:
      run.status === 'completed' &&
      run.item_index < 0 &&
      run.item_count !== null &&
      run.item_count > SUMMARISED_FAN_OUT_ITEMS
        ? summarisedOutput(run.execution_id, run.step_id, run.item_count)
        : (run.output ?? null),
    error: run.error ?? null,
    started_at: iso(run.started_at),
    completed_at: iso(run.completed_at),
    iteration: run.iteration,
    item_index: run.item_index >= 0 ? run.item_index : null,
    wait_reason: run.wait_reason,
    next_attempt_at: run.status === 'queued' || run.status === 'waiting' ? iso(run.wake_at) : null,
  }));
}
