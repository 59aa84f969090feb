import type { WorkflowStatus } from '../domain/statuses.js';
import type {
  StepDefinition,
  WorkflowDefinition,
  WorkflowType,
} from '../domain/workflow-definition.js';
import type {
  StepView,
  WorkflowPage,
  WorkflowRow,
  WorkflowSummary,
  WorkflowView,
} from '../schemas/workflows.js';
import { COUNTER_COLUMNS } from './workflow-counter-store.js';

// The API's shapes are defined once, in src/schemas; the store returns rows of those shapes.
export type { StepView, WorkflowPage, WorkflowRow, WorkflowSummary, WorkflowView };

/**
 * Workflows as the store reads and writes them, and as the API shows them: the row types,
 * the columns that read them and their shaping for the API.
 */

/** A workflow with its normalised step definitions, in definition order. */
export interface StoredWorkflow extends WorkflowRow {
  steps: StepDefinition[];
}

/** The fields a create or update writes, with the validated definition. */
export type WorkflowWrite = Pick<
  WorkflowRow,
  'name' | 'description' | 'workflow_type' | 'status' | 'config' | 'metadata' | 'tags'
> & { definition: WorkflowDefinition };

export interface WorkflowListQuery {
  status?: WorkflowStatus | undefined;
  workflow_type?: WorkflowType | undefined;
  /** The workflow carries every one of these tags. */
  tags?: string[] | undefined;
  /** Case-insensitive substring of the name. */
  search?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

/** Select from `workflows w ${UNFOLDED_DELTAS}`: the counters include unfolded deltas. */
export const COLUMNS = `
  w.id, w.name, w.description, w.workflow_type, coalesce(w.status, 'draft') AS status,
  coalesce(w.config, '{}'::jsonb) AS config, coalesce(w.metadata, '{}'::jsonb) AS metadata,
  coalesce(w.tags, '{}'::text[]) AS tags, w.created_at, w.updated_at, w.version,
  ${COUNTER_COLUMNS}`;

/**
 * The cursor needs created_at with its full microsecond precision: a JS Date keeps only
 * milliseconds, and rows inserted in one transaction share created_at, so a truncated value
 * would skip or repeat rows at page boundaries.
 */
export const CURSOR_TIMESTAMP = `to_char(w.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')`;

/** A row as pg returns it: timestamps as Dates, the enums unchecked. */
export type RawWorkflowRow = Omit<
  WorkflowRow,
  'workflow_type' | 'status' | 'created_at' | 'updated_at' | 'started_at' | 'completed_at'
> & {
  workflow_type: string;
  status: string;
  created_at: Date;
  updated_at: Date;
  started_at: Date | null;
  completed_at: Date | null;
};

function iso(value: Date | null): string | null {
  return value === null ? null : value.toISOString();
}

export function toRow(raw: RawWorkflowRow): WorkflowRow {
  return {
    id: raw.id,
    name: raw.name,
    description: raw.description,
    workflow_type: raw.workflow_type as WorkflowType,
    status: raw.status as WorkflowStatus,
    config: raw.config,
    metadata: raw.metadata,
    tags: raw.tags,
    created_at: raw.created_at.toISOString(),
    updated_at: raw.updated_at.toISOString(),
    started_at: iso(raw.started_at),
    completed_at: iso(raw.completed_at),
    execution_count: raw.execution_count,
    success_count: raw.success_count,
    failure_count: raw.failure_count,
    average_duration_seconds: raw.average_duration_seconds,
    version: raw.version,
  };
}

/** Shapes a stored step definition for the API. */
export function toStepView(step: StepDefinition): StepView {
  return {
    id: step.id,
    name: step.name,
    step_type: step.step_type,
    agent_id: step.agent_id,
    config: step.config,
    dependencies: step.dependencies ?? [],
    condition: step.condition,
    for_each: step.for_each,
    for_each_concurrency: step.for_each_concurrency,
    timeout_seconds: step.timeout_seconds,
    retry_count: step.retry_count,
    retry_backoff: step.retry_backoff,
    continue_on_error: step.continue_on_error,
    limits: step.limits,
  };
}

/** A step definition as Postgres holds it: versions pinned before named limits have none. */
export type StoredStepDefinition = Omit<StepDefinition, 'limits'> &
  Partial<Pick<StepDefinition, 'limits'>>;

/** A stored step definition with the defaults of fields added since it was written. */
export function storedStep(step: StoredStepDefinition): StepDefinition {
  return { ...step, limits: step.limits ?? [] };
}

/** Shapes a stored workflow for the API. */
export function toWorkflowView(workflow: StoredWorkflow): WorkflowView {
  const { steps, ...row } = workflow;
  return { ...row, steps: steps.map(toStepView) };
}
