import type { LimitTurns, LimitWait } from './limits.js';
import type { ExecutionStatus, StepStatus } from './statuses.js';

/**
 * Executions and their step runs as the engine, the stores and the views share them. See
 * docs/ARCHITECTURE.md, "Domain".
 */

export interface ExecutionRow {
  id: string;
  workflow_id: string;
  status: ExecutionStatus;
  input_data: unknown;
  output_data: unknown;
  step_results: Record<string, unknown>;
  started_at: Date | null;
  completed_at: Date | null;
  error: string | null;
  error_details: unknown;
  duration_seconds: number | null;
  created_at: Date;
  updated_at: Date;
  workflow_version: number;
  idempotency_key: string | null;
  current_iteration: number;
  deadline_at: Date | null;
  parent_execution_id: string | null;
  parent_run_id: number | null;
  trigger: Record<string, unknown> | null;
  /** 1 (first) to MAX_PRIORITY (last): its steps' jobs carry it. */
  priority: number;
  /** Its workflow's `config.concurrency` key, once a worker evaluated it; else null. */
  concurrency_key: string | null;
  /** While it collects debounced starts: when its window closes (config.debounce). */
  debounce_until: Date | null;
  /** Business keys to search it by (labels.ts). */
  labels: Record<string, string>;
}

/**
 * A run's columns apart from its wait. StepRunRow adds the wait, typed by its kind: parkRun
 * writes wait_kind and wait_spec together and every new attempt clears both, so a row never
 * holds one without the other.
 */
export interface StepRunFields {
  id: number;
  execution_id: string;
  step_id: string;
  iteration: number;
  item_index: number;
  status: StepStatus;
  attempt: number;
  first_attempt: number;
  lease_id: string | null;
  item: unknown;
  item_count: number | null;
  /** A for_each step's own run: its items by state (docs/ARCHITECTURE.md, "Fan-outs"). */
  items_materialised: number;
  items_active: number;
  items_waiting: number;
  items_done: number;
  items_failed: number;
  output: unknown;
  error: StepErrorRecord | null;
  wait_reason: string | null;
  worker_id: string | null;
  heartbeat_at: Date | null;
  wake_at: Date | null;
  deadline_at: Date | null;
  queued_at: Date | null;
  started_at: Date | null;
  completed_at: Date | null;
  created_at: Date;
  updated_at: Date;
  /** The budgets of its step's limits it holds or waits for (limitKeyText), else null. */
  limit_keys: string[] | null;
  /** Why it was turned away by one of its limits (until it enters them: then the turns). */
  limit_wait: LimitWait | LimitTurns | null;
}

/** What an external worker needs to run a task: stored when the run starts waiting. */
export interface TaskWaitSpec {
  step_type: string;
  agent_id: string | null;
  config: Record<string, unknown>;
  input: unknown;
  lease_seconds: number;
}

/** The event a run waits for: its type, correlation key (if any) and match expression. */
export interface EventWaitSpec {
  event: string;
  correlation_key: string | null;
  match: string | null;
}

/** The sub-workflow execution a run waits for. */
export interface ChildWaitSpec {
  workflow_id: string;
  execution_id: string;
}

/** A run's wait as its two columns hold it: `wait_kind` tells which spec `wait_spec` is. */
export type RunWait =
  | { wait_kind: null; wait_spec: null }
  | { wait_kind: 'task'; wait_spec: TaskWaitSpec }
  | { wait_kind: 'event'; wait_spec: EventWaitSpec }
  | { wait_kind: 'child'; wait_spec: ChildWaitSpec }
  | { wait_kind: 'limit'; wait_spec: LimitWait };

export type WaitKind = NonNullable<RunWait['wait_kind']>;

/** A wait as parkRun records it: the kind and its spec. */
export type ParkedWait = {
  [K in WaitKind]: { kind: K; spec: Extract<RunWait, { wait_kind: K }>['wait_spec'] };
}[WaitKind];

export type StepRunRow = StepRunFields & RunWait;

/** A run that waits (or, for a claimed task, waited) for a party of kind K. */
export type WaitingRun<K extends WaitKind> = StepRunFields & Extract<RunWait, { wait_kind: K }>;

/** How a failed attempt is recorded on its run. */
export interface StepErrorRecord {
  message: string;
  type: string;
  retryable: boolean;
  attempt: number;
  details?: unknown;
}

/** The counts a for_each step's own run keeps of its items, which the scheduler reads. */
export type ItemCounts = Pick<
  StepRunFields,
  'item_count' | 'items_active' | 'items_waiting' | 'items_done' | 'items_failed'
>;

/** A step's own run as a worker saw it: what scheduling and expressions read. */
export type RunSnapshot = Pick<StepRunRow, 'id' | 'step_id' | 'item_index' | 'status' | 'output'> &
  ItemCounts;

/** A run claimed by a worker, with what its expressions may read. */
export type ClaimedRun = StepRunRow & {
  workflow_id: string;
  workflow_version: number;
  input_data: unknown;
  /** Its execution's priority, for the jobs its record adds. */
  priority: number;
  /** Its execution's flow key (fairness group of its jobs). */
  concurrency_key: string | null;
  /** The own runs of the run's iteration (no for_each items), as of the claim, by id. */
  iteration_runs: RunSnapshot[];
  /** Claims in a row that found this attempt abandoned by its process (a job's claim only;
   * a run claimed inline has none). */
  crashed_claims?: number;
};

/** A BullMQ job the engine must add once the transaction that made it due has committed. */
export interface StepJob {
  runId: number;
  attempt: number;
  executionId: string;
  workflowId: string;
  workflowVersion: number;
  stepId: string;
  /** Absent: run now. */
  runAt?: Date;
  /** A wake-up of a sleeping run (delay step), distinct from the attempt's first job. */
  wake?: boolean;
  /** Its fairness group: the workflow, and its execution's flow key if it has one. Under
   * contention the queue serves the groups in turn (step-queue.ts). */
  group: string;
  /** For a run its limits turned away: how often, so each new job has an id of its own. */
  turn?: number;
  /** A for_each item's attempt: queued behind other steps of its priority (step-queue.ts). */
  item?: boolean;
  /** Its execution's priority. */
  priority: number;
}

/** Execution priorities: 1 runs first, MAX_PRIORITY last, DEFAULT_PRIORITY when none is named. */
export const MAX_PRIORITY = 10;
export const DEFAULT_PRIORITY = 5;
