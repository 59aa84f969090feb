import type { Config } from '../config.js';
import type { ExecutionRow, StepRunRow } from '../domain/execution.js';
import type { ExecutionStatus, StepStatus } from '../domain/statuses.js';
import type { WorkflowDefinition } from '../domain/workflow-definition.js';
import type { EffectSink, Effects } from '../engine/state/effects.js';
import type { Started } from '../engine/state/start.js';
import type { StateManager } from '../engine/state/state-manager.js';
import { ExecutionNotFoundError, ValidationFailedError } from '../errors.js';
import { decodeCursor, toPage } from '../store/cursor.js';
import type { Pool, Queryable } from '../store/db.js';
import * as store from '../store/execution-store.js';

/** One run of a step as GET /executions/{id} shows it. */
export interface StepRunView {
  step_id: string;
  name: string;
  step_type: string;
  status: StepStatus;
  attempts: number;
  output: unknown;
  error: unknown;
  started_at: string | null;
  completed_at: string | null;
  iteration: number;
  item_index: number | null;
  /** Why the run is not moving: waiting for what, skipped why, retrying when. */
  wait_reason: string | null;
  next_attempt_at: string | null;
}

export interface ExecutionView {
  id: string;
  workflow_id: string;
  workflow_version: number;
  status: ExecutionStatus;
  input_data: unknown;
  output_data: unknown;
  step_results: Record<string, unknown>;
  error: string | null;
  error_details: unknown;
  started_at: string | null;
  completed_at: string | null;
  duration_seconds: number | null;
  created_at: string;
  updated_at: string;
  current_iteration: number;
  deadline_at: string | null;
  idempotency_key: string | null;
  steps?: StepRunView[];
}

export interface ExecutionListQuery {
  workflow_id?: string | undefined;
  status?: ExecutionStatus | undefined;
  created_after?: string | undefined;
  created_before?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

const iso = (value: Date | null): string | null => (value ? value.toISOString() : null);

export function executionView(row: ExecutionRow): ExecutionView {
  return {
    id: row.id,
    workflow_id: row.workflow_id,
    workflow_version: row.workflow_version,
    status: row.status,
    input_data: row.input_data,
    output_data: row.output_data ?? null,
    step_results: row.step_results ?? {},
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
  };
}

/** Step runs in definition order, then loop iteration, then for_each item. */
export function stepRunViews(
  definition: WorkflowDefinition,
  runs: readonly StepRunRow[],
): StepRunView[] {
  const position = new Map(definition.steps.map((step, index) => [step.id, index]));
  const byId = new Map(definition.steps.map((step) => [step.id, step]));
  return [...runs]
    .sort(
      (a, b) =>
        a.iteration - b.iteration ||
        (position.get(a.step_id) ?? 0) - (position.get(b.step_id) ?? 0) ||
        a.item_index - b.item_index,
    )
    .map((run) => ({
      step_id: run.step_id,
      name: byId.get(run.step_id)?.name ?? run.step_id,
      step_type: byId.get(run.step_id)?.step_type ?? 'unknown',
      status: run.status,
      attempts: run.attempt,
      output: run.output ?? null,
      error: run.error ?? null,
      started_at: iso(run.started_at),
      completed_at: iso(run.completed_at),
      iteration: run.iteration,
      item_index: run.item_index >= 0 ? run.item_index : null,
      wait_reason: run.wait_reason,
      next_attempt_at:
        run.status === 'queued' || run.status === 'waiting' ? iso(run.wake_at) : null,
    }));
}

export interface ExecutionManagerOptions {
  pool: Pool;
  state: StateManager;
  effects: EffectSink;
  config: Pick<Config, 'MAX_INPUT_BYTES'>;
}

/** Use cases of executions: start, read, list, cancel, retry, pause and resume. */
export class ExecutionManager {
  constructor(private readonly options: ExecutionManagerOptions) {}

  /** Starts an execution of the workflow's current version; the same idempotency key returns the first one. */
  async execute(
    workflowId: string,
    input: unknown,
    idempotencyKey: string | undefined,
  ): Promise<{ execution: ExecutionView; created: boolean }> {
    const inputBytes = Buffer.byteLength(JSON.stringify(input ?? {}), 'utf8');
    if (inputBytes > this.options.config.MAX_INPUT_BYTES) {
      throw new ValidationFailedError([
        {
          path: 'input_data',
          message: `must be at most ${this.options.config.MAX_INPUT_BYTES} bytes as JSON`,
        },
      ]);
    }
    const request = { workflowId, input: input ?? {}, idempotencyKey: idempotencyKey ?? null };
    const { started, answer } = await this.options.state.startAndAnswer(
      request,
      async (db, outcome) => {
        const settled = outcome.settled;
        if (
          settled &&
          settled.execution.current_iteration === 0 &&
          !settled.runs.some((run) => run.status === 'completed')
        ) {
          return this.settledView(settled, db);
        }
        const fresh = outcome.created ? await store.getExecution(db, outcome.row.id) : outcome.row;
        return this.view(fresh ?? outcome.row, db);
      },
    );
    await this.options.effects.apply(started.effects);
    return { execution: answer, created: started.created };
  }

  /** One execution with every step run. */
  async get(id: string): Promise<ExecutionView> {
    const row = await store.getExecution(this.options.pool, id);
    if (!row) throw new ExecutionNotFoundError(id);
    return this.view(row);
  }

  /**
   * The view of an execution as its start left it, still in its first iteration with nothing
   * completed: what the start wrote is all there is (no step results yet), nothing to read.
   */
  private settledView(
    settled: NonNullable<Started['settled']>,
    db: Queryable = this.options.pool,
  ): Promise<ExecutionView> {
    return this.view(settled.execution, db, settled.runs);
  }

  /** The execution with every step run: `runs` when the caller has them all, else read. */
  private async view(
    row: ExecutionRow,
    db: Queryable = this.options.pool,
    runs?: readonly StepRunRow[],
  ): Promise<ExecutionView> {
    const [definition, allRuns] = await Promise.all([
      this.options.state.definition(db, row.workflow_id, row.workflow_version),
      runs ?? store.listStepRuns(db, row.id),
    ]);
    return { ...executionView(row), steps: stepRunViews(definition, allRuns) };
  }

  /** A page of executions, newest first, with an opaque cursor to the next page. */
  async list(
    query: ExecutionListQuery,
  ): Promise<{ items: ExecutionView[]; next_cursor: string | null }> {
    const rows = await store.listExecutions(this.options.pool, {
      workflowId: query.workflow_id,
      status: query.status,
      createdAfter: query.created_after ? new Date(query.created_after) : undefined,
      createdBefore: query.created_before ? new Date(query.created_before) : undefined,
      after: query.cursor ? decodeCursor(query.cursor) : undefined,
      limit: query.limit + 1,
    });
    return toPage(
      rows,
      query.limit,
      (row) => ({ createdAt: row.created_at_key, id: row.id }),
      executionView,
    );
  }

  /** Stops an unfinished execution; running attempts are aborted and their late results ignored. */
  cancel(id: string): Promise<ExecutionView> {
    return this.act(id, (state) => state.cancel(id));
  }

  /** Resumes a failed or timed-out execution from its failed steps, keeping completed results. */
  retry(id: string): Promise<ExecutionView> {
    return this.act(id, (state) => state.retry(id));
  }

  /** Holds an execution: running attempts finish, but no new step starts until resume. */
  pause(id: string): Promise<ExecutionView> {
    return this.act(id, (state) => state.pause(id));
  }

  /** Lets a paused execution go on: starts what became ready and re-queues what was held. */
  resume(id: string): Promise<ExecutionView> {
    return this.act(id, (state) => state.resume(id));
  }

  /** An operator action on the state machine, its effects applied, then the execution. */
  private async act(
    id: string,
    action: (state: StateManager) => Promise<Effects>,
  ): Promise<ExecutionView> {
    await this.options.effects.apply(await action(this.options.state));
    return this.get(id);
  }
}
