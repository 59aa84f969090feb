import type { ExecutionRow, StepRunRow } from '../../domain/execution.js';
import { isIn, UNFINISHED_STEP_STATUSES } from '../../domain/statuses.js';
import type { WorkflowDefinition } from '../../domain/workflow-definition.js';
import type { Queryable } from '../../store/db.js';
import * as executions from '../../store/executions.js';
import * as limitSlots from '../../store/limit-slots.js';
import * as stepRuns from '../../store/step-runs.js';
import { evaluateExpression } from '../expressions.js';
import { sinkSteps } from '../scheduler.js';
import type { ExpressionContext } from '../steps/types.js';
import type { Effects } from './effects.js';
import { releaseLimitKeys } from './limit-release.js';
import type { Machine } from './machine.js';
import { fillSlots } from './slots.js';

/** How an execution ends: its output, its row, and what its end asks of the outside world. */

export type ExecutionOutcome = Parameters<typeof executions.finishExecution>[2];

/** The execution's output: its output expression, else its sink steps' outputs. */
export async function executionOutput(
  m: Machine,
  definition: WorkflowDefinition,
  context: ExpressionContext,
): Promise<unknown> {
  if (typeof definition.config.output === 'string') {
    return (
      (await evaluateExpression(definition.config.output, context, {
        timeoutMs: m.options.expressionTimeoutMs,
      })) ?? null
    );
  }
  const sinks = sinkSteps(definition).filter((id) => context.steps[id]?.status === 'completed');
  if (sinks.length === 1) return context.steps[sinks[0] as string]?.output ?? null;
  return Object.fromEntries(sinks.map((id) => [id, context.steps[id]?.output ?? null]));
}

/**
 * Ends an execution: stops what still runs and updates the workflow's counters. `runs`, when
 * the caller has the current iteration's runs, spares the cancel when none is unfinished
 * (earlier iterations always are finished).
 */
export async function finish(
  m: Machine,
  tx: Queryable,
  execution: ExecutionRow,
  outcome: ExecutionOutcome,
  effects: Effects,
  runs?: readonly StepRunRow[],
): Promise<ExecutionRow> {
  const unfinished = runs?.some((run) => isIn(UNFINISHED_STEP_STATUSES, run.status)) ?? true;
  const definition = await m.definition(tx, execution.workflow_id, execution.workflow_version);
  const held =
    unfinished && definition.steps.some((step) => step.limits.length > 0)
      ? await limitSlots.heldKeys(tx, execution.id)
      : [];
  const stopped = unfinished
    ? await stepRuns.cancelUnfinishedRuns(tx, execution.id, `execution ${outcome.status}`)
    : 0;
  const finished = await executions.finishExecution(tx, execution, outcome);
  if (stopped > 0) effects.abortExecutions.push(execution.id);
  // The slots of named limits its runs held are free from this commit on.
  await releaseLimitKeys(tx, held, effects);
  // Its slot is free from this commit on: the next execution queued under its key takes it.
  await fillSlots(m, tx, execution, effects);
  ended(m, finished, effects);
  return finished;
}

/** What an execution's end asks of the outside world: its parent, its children, the cache. */
export function ended(m: Machine, finished: ExecutionRow, effects: Effects): void {
  if (finished.parent_run_id !== null) effects.endedChildren.push(finished.id);
  if (finished.status !== 'completed') effects.stoppedParents.push(finished.id);
  effects.changedWorkflows.push(finished.workflow_id);
  effects.endedExecutions.push(finished.id);
  m.options.logger.info(
    { executionId: finished.id, workflowId: finished.workflow_id, status: finished.status },
    'execution finished',
  );
}
