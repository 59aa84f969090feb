import type { ExecutionStatus } from '../domain/statuses.js';
import type { Queryable } from './db.js';

/**
 * The one filter over executions: `GET /executions`, a bulk action's dry run and the bulk
 * action itself read it through these conditions, so what a person previewed is what runs.
 */
export interface ExecutionFilter {
  workflowId?: string | undefined;
  status?: ExecutionStatus | undefined;
  workflowVersion?: number | undefined;
  /** A step of this id failed in it. */
  failedStep?: string | undefined;
  /** Its error_details.type. */
  errorType?: string | undefined;
  /** Every one of these labels. */
  labels?: Record<string, string> | undefined;
  createdAfter?: Date | undefined;
  createdBefore?: Date | undefined;
  endedAfter?: Date | undefined;
  endedBefore?: Date | undefined;
}

/** A fragment of SQL and its parameters, numbered on from where the statement's stopped. */
export interface Conditions {
  sql: string;
  values: unknown[];
}

/**
 * The filter as conditions on `workflow_executions e`, only those given: each statement is
 * planned for the filters it has, so a label search uses the GIN index and a workflow's list
 * its own index. Parameters are numbered from `first`.
 */
export function filterConditions(filter: ExecutionFilter, first = 1): Conditions {
  const parts: string[] = [];
  const values: unknown[] = [];
  const add = (condition: (param: string) => string, value: unknown) => {
    if (value === undefined) return;
    values.push(value);
    parts.push(condition(`$${first + values.length - 1}`));
  };
  add((p) => `e.workflow_id = ${p}`, filter.workflowId);
  add((p) => `e.status = ${p}`, filter.status);
  add((p) => `e.workflow_version = ${p}::int`, filter.workflowVersion);
  add((p) => `e.labels @> ${p}::jsonb`, filter.labels && JSON.stringify(filter.labels));
  add((p) => `e.error_details->>'type' = ${p}`, filter.errorType);
  add((p) => `e.created_at >= ${p}`, filter.createdAfter);
  add((p) => `e.created_at < ${p}`, filter.createdBefore);
  add((p) => `e.completed_at >= ${p}`, filter.endedAfter);
  add((p) => `e.completed_at < ${p}`, filter.endedBefore);
  add(
    (p) => `EXISTS (SELECT 1 FROM step_executions s
                     WHERE s.execution_id = e.id AND s.step_id = ${p} AND s.status = 'failed')`,
    filter.failedStep,
  );
  return { sql: parts.length > 0 ? parts.join(' AND ') : 'true', values };
}

/** How many executions the filter matches, and the newest `sample` of their ids. */
export async function countMatching(
  db: Queryable,
  filter: ExecutionFilter,
  sample: number,
): Promise<{ matched: number; sample: string[] }> {
  const where = filterConditions(filter, 2);
  const counted = filterConditions(filter);
  const [count, ids] = await Promise.all([
    db.query<{ matched: number }>(
      `SELECT count(*)::int AS matched FROM workflow_executions e WHERE ${counted.sql}`,
      counted.values,
    ),
    db.query<{ id: string }>(
      `SELECT e.id FROM workflow_executions e WHERE ${where.sql}
        ORDER BY e.created_at DESC, e.id DESC LIMIT $1`,
      [sample, ...where.values],
    ),
  ]);
  return { matched: count.rows[0]?.matched ?? 0, sample: ids.rows.map((row) => row.id) };
}
