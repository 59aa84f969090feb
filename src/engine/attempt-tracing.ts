import type { ClaimedRun } from '../domain/execution.js';
import type { ExecutionTraceContext } from '../domain/trace-context.js';
import type { StepDefinition } from '../domain/workflow-definition.js';
import {
  type AttemptSpan,
  beginAttemptSpan,
  endAttemptSpan,
  newExecutionTrace,
  recordExecutionSpan,
  recordOrphanSpan,
  tracingOn,
  withAttemptSpan,
} from '../monitoring/tracing.js';
import type { Pool, Queryable } from '../store/db.js';
import { claimEndedExecutionTrace, readTraceContext } from '../store/trace-context.js';
import type { Effects } from './state/effects.js';
import type { AttemptResult } from './state/machine.js';

/**
 * The step worker's spans (README "Tracing"; docs/ARCHITECTURE.md "Tracing"). With tracing
 * off, traceAttempt returns undefined without any I/O: the hot path is unchanged. With it on,
 * an attempt reads its execution's stored trace context once (then from memory: it never
 * changes), so whichever process runs the attempt, after a restart, a Redis loss or a retry,
 * parents its span to the same execution span.
 */

/** Trace contexts by execution: they never change once written, so a bounded memo is safe. */
const known = new Map<string, ExecutionTraceContext | null>();
const KNOWN_MAX = 1000;

async function traceContextOf(pool: Pool, executionId: string) {
  if (known.has(executionId)) return known.get(executionId) ?? null;
  const stored = await readTraceContext(pool, executionId);
  if (known.size >= KNOWN_MAX) known.clear();
  known.set(executionId, stored);
  return stored;
}

function attemptAttributes(claim: ClaimedRun, step: StepDefinition) {
  return {
    'workflow.id': claim.workflow_id,
    'workflow.version': claim.workflow_version,
    'workflow.execution.id': claim.execution_id,
    'workflow.step.id': step.id,
    'workflow.step.type': step.step_type,
    'workflow.step.attempt': claim.attempt,
    ...(claim.item_index >= 0 ? { 'workflow.step.item_index': claim.item_index } : {}),
  };
}

/** One traced attempt: run it under its span, then record how it ended. */
export interface TracedAttempt {
  run<T>(work: () => Promise<T>): Promise<T>;
  /** Records the attempt's span (`effects` null: its result was fenced off). The execution
   * span is sent by the effect applier when the record ended the execution. */
  end(outcome: AttemptResult | 'aborted', effects?: Effects | null): void;
}

/**
 * Begins the span of a claimed attempt; undefined while tracing is off or for an execution
 * started untraced. A claim that finds the attempt's previous claim abandoned (its process
 * died: crashed_claims) first records that interrupted claim as a span of its own, with
 * status error "interrupted": its process could not.
 */
export async function traceAttempt(
  pool: Pool,
  claim: ClaimedRun,
  step: StepDefinition,
): Promise<TracedAttempt | undefined> {
  if (!tracingOn()) return undefined;
  const stored = await traceContextOf(pool, claim.execution_id);
  const span = stored ? beginAttemptSpan(stored) : undefined;
  if (!stored || !span) return undefined;
  const attributes = attemptAttributes(claim, step);
  const startTime = new Date();
  if ((claim.crashed_claims ?? 0) > 0) {
    recordOrphanSpan(stored, {
      name: `step ${step.id}`,
      startTime,
      endTime: startTime,
      attributes: {
        ...attributes,
        'workflow.step.status': 'interrupted',
        'error.type': 'interrupted',
      },
      error: 'interrupted: the process running this attempt died',
    });
  }
  return {
    run: (work) => withAttemptSpan(span, work),
    end: (outcome, effects) => {
      const shown = effects === null ? 'fenced' : outcome;
      endAttempt(span, shown, { name: `step ${step.id}`, startTime, attributes });
    },
  };
}

function endAttempt(
  span: AttemptSpan,
  outcome: AttemptResult | 'aborted' | 'fenced',
  base: { name: string; startTime: Date; attributes: Record<string, string | number> },
): void {
  const status = typeof outcome === 'string' ? outcome : outcome.kind;
  const failed = typeof outcome === 'object' && outcome.kind === 'failed' ? outcome : undefined;
  endAttemptSpan(span, {
    ...base,
    endTime: new Date(),
    attributes: {
      ...base.attributes,
      'workflow.step.status': status,
      ...(failed ? { 'error.type': failed.error.type ?? 'error' } : {}),
    },
    error: failed ? failed.error.message : status === 'aborted' ? 'aborted' : undefined,
  });
}

/**
 * The trace context of a sub-workflow execution: its parent's trace, as a child of the parent
 * execution's span. Undefined, with no read, while tracing is off or for an untraced parent.
 */
export async function subworkflowTrace(
  db: Queryable,
  parentExecutionId: string,
): Promise<ExecutionTraceContext | undefined> {
  if (!tracingOn()) return undefined;
  const parent = await readTraceContext(db, parentExecutionId);
  if (!parent) return undefined;
  const { traceparent, tracestate } = parent;
  return newExecutionTrace(tracestate ? { traceparent, tracestate } : { traceparent });
}

/** A scheduled execution's trace context: a trace of its own (no caller to continue). */
export function scheduledTrace(): ExecutionTraceContext | undefined {
  return newExecutionTrace({});
}

/**
 * Sends the execution span if the execution has ended and no one sent it yet: the one
 * statement that marks it sent decides who does (claimEndedExecutionTrace).
 */
export async function sendExecutionSpan(pool: Pool, executionId: string): Promise<void> {
  const ended = await claimEndedExecutionTrace(pool, executionId);
  if (!ended) return;
  known.delete(executionId);
  recordExecutionSpan(ended.trace, {
    name: `execution ${ended.workflowId}`,
    startTime: ended.startedAt,
    endTime: ended.completedAt,
    attributes: {
      'workflow.id': ended.workflowId,
      'workflow.version': ended.workflowVersion,
      'workflow.execution.id': executionId,
      'workflow.execution.status': ended.status,
      ...(ended.error ? { 'error.type': ended.status } : {}),
    },
    error: ended.status === 'completed' ? undefined : (ended.error ?? ended.status),
  });
}
