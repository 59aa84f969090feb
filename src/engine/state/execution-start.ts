import { randomBytes } from 'node:crypto';
import type { ExecutionRow, StepRunRow } from '../../domain/execution.js';
import type { WorkflowDefinition } from '../../domain/workflow-definition.js';
import type { NewExecution } from '../../store/executions.js';
import { hasChanges, schedule } from '../scheduler.js';
import type { Effects } from './effects.js';

/** How executions start (StateManager.start), the parts that need no database. */

/** What starts an execution (StateManager.start). */
export interface StartRequest {
  workflowId: string;
  input: unknown;
  idempotencyKey: string | null;
  /** Event and schedule starts run only active workflows; the API runs drafts too. */
  activeOnly?: boolean;
  parent?: NewExecution['parent'];
  trigger?: Record<string, unknown>;
}

export interface Started {
  row: ExecutionRow;
  created: boolean;
  effects: Effects;
  /** For a new execution still running: its runs as the start left them. */
  settled?: { execution: ExecutionRow; runs: StepRunRow[] };
}

/** Starts that find the workflow changed under them read its head again, this often at most. */
export const MAX_START_ATTEMPTS = 3;

export function runnableStatuses(request: StartRequest): string[] {
  return request.activeOnly ? ['active'] : ['draft', 'active'];
}

export function newExecution(
  request: StartRequest,
  version: number,
  definition: WorkflowDefinition,
): NewExecution {
  const timeout = definition.config.timeout_seconds;
  return {
    id: `ex_${randomBytes(12).toString('base64url')}`,
    workflowId: request.workflowId,
    version,
    input: request.input ?? {},
    idempotencyKey: request.idempotencyKey,
    timeoutSeconds: typeof timeout === 'number' ? timeout : null,
    parent: request.parent,
    trigger: request.trigger,
  };
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
