import type { Config } from '../config.js';
import type { ExecutionRow, StepRunRow } from '../domain/execution.js';
import { type ExecutionStatus, UNFINISHED_EXECUTION_STATUSES } from '../domain/statuses.js';
import { type EffectSink, type Effects, jobFor, noEffects } from '../engine/state/effects.js';
import type { Started } from '../engine/state/execution-start.js';
import type { StateManager } from '../engine/state/state-manager.js';
import { ExecutionNotFoundError, ExecutionStateError, ValidationFailedError } from '../errors.js';
import type { ExecutionView } from '../schemas/executions.js';
import { decodeCursor, toPage } from '../store/cursor.js';
import {
  isPgError,
  type Pool,
  type Queryable,
  SqlState,
  withTransaction,
  withTransactionThen,
} from '../store/db.js';
import * as executions from '../store/executions.js';
import * as stepRuns from '../store/step-runs.js';
import { executionView, stepRunViews } from './execution-views.js';

export type { ExecutionView, StepRunView } from '../schemas/executions.js';

export interface ExecutionListQuery {
  workflow_id?: string | undefined;
  status?: ExecutionStatus | undefined;
  created_after?: string | undefined;
  created_before?: string | undefined;
  limit: number;
  cursor?: string | undefined;
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
    const { pool, state } = this.options;
    const request = { workflowId, input: input ?? {}, idempotencyKey: idempotencyKey ?? null };
    const atOnce = await state.startAtOnce(pool, request);
    if (atOnce?.settled) {
      await this.options.effects.apply(atOnce.effects);
      return { execution: await this.settledView(atOnce.settled), created: true };
    }
    // The answer is read on the transaction's own connection right after COMMIT: once the
    // execution is committed, the client must get its 202, not a pool timeout.
    const { outcome, execution } = await withTransactionThen(
      pool,
      (tx) => state.start(tx, request),
      async (client, started) => {
        const settled = started.settled;
        if (
          settled &&
          settled.execution.current_iteration === 0 &&
          !settled.runs.some((run) => run.status === 'completed')
        ) {
          return { outcome: started, execution: await this.settledView(settled, client) };
        }
        const fresh = started.created
          ? await executions.getExecution(client, started.row.id)
          : started.row;
        return { outcome: started, execution: await this.view(fresh ?? started.row, client) };
      },
    ).catch(async (error: unknown) => {
      // Two concurrent first uses of a key: the loser's transaction aborts on the unique index.
      if (idempotencyKey && isPgError(error, SqlState.UNIQUE_VIOLATION)) {
        const existing = await executions.findByIdempotencyKey(pool, workflowId, idempotencyKey);
        if (existing) {
          const outcome = { row: existing, created: false, effects: noEffects() };
          return { outcome, execution: await this.view(existing) };
        }
      }
      throw error;
    });
    await this.options.effects.apply(outcome.effects);
    return { execution, created: outcome.created };
  }

  /** One execution with every step run. */
  async get(id: string): Promise<ExecutionView> {
    const row = await executions.getExecution(this.options.pool, id);
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
      runs ?? stepRuns.listStepRuns(db, row.id),
    ]);
    return { ...executionView(row), steps: stepRunViews(definition, allRuns) };
  }

  /** A page of executions, newest first, with an opaque cursor to the next page. */
  async list(
    query: ExecutionListQuery,
  ): Promise<{ items: ExecutionView[]; next_cursor: string | null }> {
    const rows = await executions.listExecutions(this.options.pool, {
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
  async cancel(id: string): Promise<ExecutionView> {
    return this.transition(id, async (tx, execution, effects) => {
      if (!UNFINISHED_EXECUTION_STATUSES.includes(execution.status)) {
        throw new ExecutionStateError(
          id,
          execution.status,
          'only an unfinished execution can be cancelled',
        );
      }
      await this.options.state.finish(
        tx,
        execution,
        { status: 'cancelled', error: 'Cancelled on request' },
        effects,
      );
    });
  }

  /** Resumes a failed or timed-out execution from its failed steps, keeping completed results. */
  async retry(id: string): Promise<ExecutionView> {
    return this.transition(id, async (tx, execution, effects) => {
      if (execution.status !== 'failed' && execution.status !== 'timed_out') {
        throw new ExecutionStateError(
          id,
          execution.status,
          'only a failed or timed-out execution can be retried',
        );
      }
      await executions.reopenExecution(tx, execution);
      const reopened = await executions.lockExecution(tx, id);
      if (reopened) await this.options.state.advance(tx, reopened, effects);
      effects.changedWorkflows.push(execution.workflow_id);
    });
  }

  /** Holds an execution: running attempts finish, but no new step starts until resume. */
  async pause(id: string): Promise<ExecutionView> {
    return this.transition(id, async (tx, execution) => {
      if (execution.status !== 'running' && execution.status !== 'waiting') {
        throw new ExecutionStateError(
          id,
          execution.status,
          'only a running or waiting execution can be paused',
        );
      }
      await executions.setExecutionStatus(tx, id, 'paused');
    });
  }

  /** Lets a paused execution go on: starts what became ready and re-queues what was held. */
  async resume(id: string): Promise<ExecutionView> {
    return this.transition(id, async (tx, execution, effects) => {
      if (execution.status !== 'paused') {
        throw new ExecutionStateError(
          id,
          execution.status,
          'only a paused execution can be resumed',
        );
      }
      await executions.setExecutionStatus(tx, id, 'running');
      const resumed = { ...execution, status: 'running' as const };
      for (const run of await stepRuns.listHeldRuns(tx, id)) {
        effects.jobs.push({
          ...jobFor(resumed, run.id, run.step_id, run.attempt),
          ...(run.wake_at ? { runAt: run.wake_at } : {}),
          // A sleeping run needs its wake-up, not a new attempt.
          ...(run.status === 'waiting' ? { wake: true } : {}),
        });
      }
      await this.options.state.advance(tx, resumed, effects);
    });
  }

  private async transition(
    id: string,
    change: (tx: Queryable, execution: ExecutionRow, effects: Effects) => Promise<void>,
  ): Promise<ExecutionView> {
    const effects = noEffects();
    await withTransaction(this.options.pool, async (tx) => {
      const execution = await executions.lockExecution(tx, id);
      if (!execution) throw new ExecutionNotFoundError(id);
      await change(tx, execution, effects);
    });
    await this.options.effects.apply(effects);
    return this.get(id);
  }
}
