import { FINISHED_EXECUTION_STATUSES, isIn } from '../domain/statuses.js';
import type { DescribedOutboxRow } from '../store/event-outbox-store.js';

/**
 * Live events of executions, as GET /executions/{id}/stream sends them. Each is one committed
 * change of the execution or of one of its step runs (written by Postgres triggers into the
 * outbox, so no transition escapes), published in commit order per run after the commit.
 */

/** A step run changed: `type` is `step.<status>`, or `step.retrying` for a scheduled retry. */
export interface StepChangeEvent {
  kind: 'step';
  type: string;
  execution_id: string;
  run_id: number;
  step_id: string;
  step_type: string | null;
  iteration: number;
  /** for_each item; null for the step itself. */
  item_index: number | null;
  status: string;
  previous_status: string | null;
  attempt: number;
  error: unknown;
  wait_reason: string | null;
  /** When a retry or a sleeping step is due. */
  next_attempt_at: string | null;
  queued_at: string | null;
  started_at: string | null;
  completed_at: string | null;
  /** When the change was made (database clock). */
  at: string;
}

/** The execution's status changed: `type` is `execution.<status>`. */
export interface ExecutionChangeEvent {
  kind: 'execution';
  type: string;
  execution_id: string;
  workflow_id: string | null;
  workflow_type: string | null;
  status: string;
  previous_status: string | null;
  error: string | null;
  duration_seconds: number | null;
  started_at: string | null;
  completed_at: string | null;
  at: string;
}

export type ExecutionEvent = StepChangeEvent | ExecutionChangeEvent;

const text = (value: unknown): string | null => (typeof value === 'string' ? value : null);
const num = (value: unknown): number | null => (typeof value === 'number' ? value : null);

/** A retry is the only way a run goes back to `queued` from an attempt that ran. */
function isRetry(row: Pick<DescribedOutboxRow, 'status' | 'previous_status'>): boolean {
  return (
    row.status === 'queued' &&
    (row.previous_status === 'running' || row.previous_status === 'waiting')
  );
}

/** The event a committed outbox row stands for. */
export function eventFromOutbox(row: DescribedOutboxRow): ExecutionEvent {
  const detail = row.detail ?? {};
  const at = row.occurred_at.toISOString();
  if (row.run_id === null) {
    return {
      kind: 'execution',
      type: `execution.${row.status}`,
      execution_id: row.execution_id,
      workflow_id: row.workflow_id ?? text(detail.workflow_id),
      workflow_type: row.workflow_type,
      status: row.status,
      previous_status: row.previous_status,
      error: text(detail.error),
      duration_seconds: num(detail.duration_seconds),
      started_at: text(detail.started_at),
      completed_at: text(detail.completed_at),
      at,
    };
  }
  const waiting = row.status === 'queued' || row.status === 'waiting';
  return {
    kind: 'step',
    type: isRetry(row) ? 'step.retrying' : `step.${row.status}`,
    execution_id: row.execution_id,
    run_id: row.run_id,
    step_id: row.step_id ?? '',
    step_type: row.step_type,
    iteration: row.iteration ?? 0,
    item_index: row.item_index !== null && row.item_index >= 0 ? row.item_index : null,
    status: row.status,
    previous_status: row.previous_status,
    attempt: row.attempt ?? 0,
    error: detail.error ?? null,
    wait_reason: text(detail.wait_reason),
    next_attempt_at: waiting ? text(detail.wake_at) : null,
    queued_at: text(detail.queued_at),
    started_at: text(detail.started_at),
    completed_at: text(detail.completed_at),
    at,
  };
}

/** Whether the event ends the execution's stream. */
export function isTerminalEvent(event: ExecutionEvent): boolean {
  return event.kind === 'execution' && isIn(FINISHED_EXECUTION_STATUSES, event.status);
}
