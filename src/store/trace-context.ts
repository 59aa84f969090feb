import { FINISHED_EXECUTION_STATUSES } from '../domain/statuses.js';
import type { EndedExecutionTrace, ExecutionTraceContext } from '../domain/trace-context.js';
import type { Queryable } from './db.js';
import { sqlList } from './sql-statuses.js';

const SQL_FINISHED_EXECUTIONS = sqlList(FINISHED_EXECUTION_STATUSES);

/**
 * The executions' stored trace context (README "Tracing"). Only called when tracing is on:
 * with it off the engine's hot path runs none of these statements.
 */

/** The trace context an execution was started with; null when it was started untraced. */
export async function readTraceContext(
  db: Queryable,
  executionId: string,
): Promise<ExecutionTraceContext | null> {
  const { rows } = await db.query<{ trace_context: ExecutionTraceContext | null }>({
    name: 'read-trace-context',
    text: 'SELECT trace_context FROM workflow_executions WHERE id = $1',
    values: [executionId],
  });
  return rows[0]?.trace_context ?? null;
}

/**
 * Claims the sending of an ended execution's span: the one caller whose update marks it
 * `exported` gets what the span needs, every other (a parallel item, a later look) gets null,
 * so the span is sent exactly once whichever process ended the execution.
 */
export async function claimEndedExecutionTrace(
  db: Queryable,
  executionId: string,
): Promise<EndedExecutionTrace | null> {
  const { rows } = await db.query<{
    trace_context: ExecutionTraceContext;
    workflow_id: string;
    workflow_version: number;
    status: string;
    started_at: Date | null;
    created_at: Date;
    completed_at: Date | null;
    error: string | null;
  }>({
    name: 'claim-ended-execution-trace',
    text: `UPDATE workflow_executions
              SET trace_context = trace_context || '{"exported": true}'::jsonb
            WHERE id = $1 AND trace_context IS NOT NULL
              AND NOT (trace_context ? 'exported')
              AND status IN ${SQL_FINISHED_EXECUTIONS}
        RETURNING trace_context, workflow_id, workflow_version, status, started_at, created_at,
                  completed_at, error`,
    values: [executionId],
  });
  const row = rows[0];
  if (!row) return null;
  return {
    trace: row.trace_context,
    workflowId: row.workflow_id,
    workflowVersion: row.workflow_version,
    status: row.status,
    startedAt: row.started_at ?? row.created_at,
    completedAt: row.completed_at ?? new Date(),
    error: row.error,
  };
}
