import type { ExecutionStatus } from '../domain/statuses.js';
import { LABEL_FILTER_PREFIX } from '../schemas/executions.js';
import type { ExecutionFilter } from '../store/execution-filter.js';

/**
 * The filter fields as the API names them: the query string of `GET /executions` and the
 * `filter` object of `POST /executions/bulk` are the same fields (`label.<key>` in both; the
 * bulk body may also give them as one `labels` object).
 */
export interface FilterFields {
  workflow_id?: string | undefined;
  status?: ExecutionStatus | undefined;
  workflow_version?: number | undefined;
  failed_step?: string | undefined;
  error_type?: string | undefined;
  created_after?: string | undefined;
  created_before?: string | undefined;
  ended_after?: string | undefined;
  ended_before?: string | undefined;
  labels?: Record<string, string> | undefined;
  /** `label.<key>` filters, as the query string gives them. */
  [label: `label.${string}`]: string | string[] | undefined;
}

const dateOf = (value: string | undefined) => (value ? new Date(value) : undefined);

/** The `label.<key>=<value>` filters and `labels`, as one object every label must match. */
function labelFilters(fields: FilterFields): Record<string, string> | undefined {
  const labels: Record<string, string> = { ...fields.labels };
  for (const [name, value] of Object.entries(fields)) {
    if (name.startsWith(LABEL_FILTER_PREFIX) && typeof value === 'string') {
      labels[name.slice(LABEL_FILTER_PREFIX.length)] = value;
    }
  }
  return Object.keys(labels).length > 0 ? labels : undefined;
}

export function filterOf(fields: FilterFields): ExecutionFilter {
  return {
    workflowId: fields.workflow_id,
    status: fields.status,
    workflowVersion: fields.workflow_version,
    failedStep: fields.failed_step,
    errorType: fields.error_type,
    labels: labelFilters(fields),
    createdAfter: dateOf(fields.created_after),
    createdBefore: dateOf(fields.created_before),
    endedAfter: dateOf(fields.ended_after),
    endedBefore: dateOf(fields.ended_before),
  };
}
