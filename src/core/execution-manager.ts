import type { z } from 'zod';
import type { Config } from '../config.js';
import type { ExecutionRow, StepRunRow } from '../domain/execution.js';
import type { StepStatus } from '../domain/statuses.js';
import type { ExecutionTraceContext } from '../domain/trace-context.js';
import { hasEdits, type RetryEdits, type RetryPlan } from '../engine/state/edit-retry.js';
import type { EffectSink, Effects } from '../engine/state/effects.js';
import type { ActionRequest } from '../engine/state/operator-actions.js';
import type { Started } from '../engine/state/start.js';
import type { StateManager } from '../engine/state/state-manager.js';
import type { UpgradeRequest } from '../engine/state/upgrade.js';
import { ExecutionNotFoundError, ValidationFailedError } from '../errors.js';
import type { Diagnosis } from '../schemas/diagnosis.js';
import type { HistoryEntry } from '../schemas/execution-history.js';
import {
  type ExecutionView,
  type StepRunView,
  SUMMARISED_FAN_OUT_ITEMS,
} from '../schemas/executions.js';
import type { upgradePlanSchema } from '../schemas/versions.js';
import { decodeCursor, toPage } from '../store/cursor.js';
import type { Pool, Queryable } from '../store/db.js';
import * as debounce from '../store/debounce.js';
import { listActions } from '../store/execution-actions.js';
import { listHistoryRuns } from '../store/execution-history.js';
import * as slots from '../store/execution-slots.js';
import * as executions from '../store/executions.js';
import * as runPages from '../store/step-run-pages.js';
import * as stepRuns from '../store/step-runs.js';
import * as taskStore from '../store/task-store.js';
import { diagnose } from './execution-diagnosis.js';
import { type FilterFields, filterOf } from './execution-filters.js';
import { historyOf, historyPage } from './execution-history.js';
import { executionView, stepRunViews, stepRunViewsInOrder } from './execution-views.js';

export type { ExecutionView, StepRunView } from '../schemas/executions.js';

/** An upgrade's answer: the plan of a dry run, or the upgraded execution. */
export type UpgradeAnswer = z.infer<typeof upgradePlanSchema> | ExecutionView;

export interface ExecutionListQuery extends FilterFields {
  limit: number;
  cursor?: string | undefined;
}

/** What a start may say besides the workflow and its input. */
export interface ExecuteOptions {
  /** The same key returns the first execution started with it. */
  idempotencyKey?: string | undefined;
  priority?: number | undefined;
  labels?: Record<string, string> | undefined;
  /** An older version to run; default the current one. */
  version?: number | undefined;
  /** Who asks (key id, token subject), kept for the history. */
  caller?: string | undefined;
  /** Its trace context, when tracing is on (README "Tracing"). */
  traceContext?: ExecutionTraceContext | undefined;
}

export interface StepRunListQuery {
  step_id?: string | undefined;
  status?: StepStatus | undefined;
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
    options: ExecuteOptions = {},
  ): Promise<{ execution: ExecutionView; created: boolean; debounced: boolean }> {
    this.checkInputSize(input);
    const request = {
      workflowId,
      input: input ?? {},
      idempotencyKey: options.idempotencyKey ?? null,
      priority: options.priority,
      labels: options.labels,
      version: options.version,
      traceContext: options.traceContext,
      // Who started it, for its history (README "History").
      ...(options.caller ? { trigger: { type: 'api', caller: options.caller } } : {}),
    };
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
        const fresh = outcome.created
          ? await executions.getExecution(db, outcome.row.id)
          : outcome.row;
        return this.view(fresh ?? outcome.row, db);
      },
    );
    await this.options.effects.apply(started.effects);
    const debounced = started.debounced === true;
    return {
      execution: debounced ? { ...answer, debounced } : answer,
      created: started.created,
      debounced,
    };
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

  /**
   * The execution with every step run: `runs` when the caller has them all, else read, with
   * the items of fan-outs over SUMMARISED_FAN_OUT_ITEMS counted rather than listed.
   */
  private async view(
    row: ExecutionRow,
    db: Queryable = this.options.pool,
    runs?: readonly StepRunRow[],
  ): Promise<ExecutionView> {
    const [definition, read] = await Promise.all([
      this.options.state.definition(db, row.workflow_id, row.workflow_version),
      runs
        ? { runs, itemCounts: [] }
        : runPages.listRunsForView(db, row.id, SUMMARISED_FAN_OUT_ITEMS),
    ]);
    return {
      ...executionView(row, definition),
      steps: stepRunViews(definition, read.runs, read.itemCounts),
    };
  }

  /** Why the execution, and each of its unfinished step runs, is not running now. */
  async diagnosis(id: string): Promise<Diagnosis> {
    const { pool, state } = this.options;
    const row = await executions.getExecution(pool, id);
    if (!row) throw new ExecutionNotFoundError(id);
    const [definition, runs] = await Promise.all([
      state.definition(pool, row.workflow_id, row.workflow_version),
      stepRuns.loadIterationRuns(pool, row.id, row.current_iteration),
    ]);
    const expanded = runs.filter((run) => run.status === 'running' && run.item_count !== null);
    const taskTypes = runs.flatMap((run) =>
      run.wait_kind === 'task' ? [run.wait_spec.step_type] : [],
    );
    const now = new Date();
    const due = runs.some((run) => run.status === 'queued' && !(run.wake_at && run.wake_at > now));
    const [fanOuts, polls, standing, window, aheadByPriority] = await Promise.all([
      runPages.itemProgress(
        pool,
        expanded.map((run) => run.id),
      ),
      taskTypes.length > 0 ? taskStore.lastPolls(pool, taskTypes) : new Map<string, Date>(),
      row.status === 'queued' ? slots.slotStanding(pool, row) : undefined,
      row.debounce_until ? debounce.debounceWindow(pool, row.id) : undefined,
      due && row.priority > 1 ? runPages.queuedAhead(pool, row.priority) : undefined,
    ]);
    return diagnose({
      execution: row,
      definition,
      runs,
      fanOuts,
      polls,
      standing,
      window,
      aheadByPriority,
      now,
    });
  }

  /** A page of an execution's step runs, in the order they were created (run id). */
  async steps(
    id: string,
    query: StepRunListQuery,
  ): Promise<{ items: StepRunView[]; next_cursor: string | null }> {
    const { pool, state } = this.options;
    const afterId = query.cursor ? runPages.decodeRunCursor(query.cursor) : undefined;
    const read = await runPages.listRunPage(pool, id, {
      stepId: query.step_id,
      status: query.status,
      afterId,
      limit: query.limit + 1,
      maxItems: SUMMARISED_FAN_OUT_ITEMS,
    });
    if (!read) throw new ExecutionNotFoundError(id);
    const page = read.runs.slice(0, query.limit);
    const last = page[page.length - 1];
    const definition = await state.definition(pool, read.workflowId, read.version);
    return {
      items: stepRunViewsInOrder(definition, page),
      next_cursor:
        read.runs.length > query.limit && last ? runPages.encodeRunCursor(last.id) : null,
    };
  }

  /** A page of executions, newest first, with an opaque cursor to the next page. */
  async list(
    query: ExecutionListQuery,
  ): Promise<{ items: ExecutionView[]; next_cursor: string | null }> {
    const rows = await executions.listExecutions(this.options.pool, {
      ...filterOf(query),
      after: query.cursor ? decodeCursor(query.cursor) : undefined,
      limit: query.limit + 1,
    });
    return toPage(
      rows,
      query.limit,
      (row) => ({ createdAt: row.created_at_key, id: row.id }),
      (row) => executionView(row),
    );
  }

  /** What happened to an execution, in order, a page at a time (README "History"). */
  async history(
    id: string,
    query: { limit: number; cursor?: string | undefined },
  ): Promise<{ items: HistoryEntry[]; next_cursor: string | null }> {
    const row = await executions.getExecution(this.options.pool, id);
    if (!row) throw new ExecutionNotFoundError(id);
    const [runs, actions] = await Promise.all([
      listHistoryRuns(this.options.pool, id),
      listActions(this.options.pool, id),
    ]);
    return historyPage(historyOf(row, runs, actions), query.limit, query.cursor);
  }

  /** Stops an unfinished execution; running attempts are aborted and their late results ignored. */
  cancel(id: string, request: ActionRequest): Promise<ExecutionView> {
    return this.act(id, (state) => state.cancel(id, request));
  }

  /**
   * Resumes a failed or timed-out execution from its failed steps, keeping completed results;
   * with edits, from the named steps with a corrected input or outputs (README "Edit and
   * resume"). A dry run answers the plan and changes nothing.
   */
  async retry(
    id: string,
    edits: RetryEdits,
    request: ActionRequest,
  ): Promise<ExecutionView | RetryPlan> {
    if (!hasEdits(edits) && !edits.dry_run)
      return this.act(id, (state) => state.retry(id, request));
    if (edits.input_data !== undefined) this.checkInputSize(edits.input_data);
    const { plan, effects } = await this.options.state.retryWithEdits(id, edits, request);
    if (plan.dry_run) return plan;
    await this.options.effects.apply(effects);
    return this.get(id);
  }

  /** Holds an execution: running attempts finish, but no new step starts until resume. */
  pause(id: string, request: ActionRequest): Promise<ExecutionView> {
    return this.act(id, (state) => state.pause(id, request));
  }

  /** Lets a paused execution go on: starts what became ready and re-queues what was held. */
  resume(id: string, request: ActionRequest): Promise<ExecutionView> {
    return this.act(id, (state) => state.resume(id, request));
  }

  /** An input larger than MAX_INPUT_BYTES as JSON is refused (400). */
  private checkInputSize(input: unknown): void {
    const inputBytes = Buffer.byteLength(JSON.stringify(input ?? {}), 'utf8');
    if (inputBytes > this.options.config.MAX_INPUT_BYTES) {
      throw new ValidationFailedError([
        {
          path: 'input_data',
          message: `must be at most ${this.options.config.MAX_INPUT_BYTES} bytes as JSON`,
        },
      ]);
    }
  }

  /**
   * Moves an execution to another version of its workflow (README "Versions, upgrades and
   * edits"): the plan on a dry run, else the execution as the upgrade left it.
   */
  async upgrade(id: string, request: UpgradeRequest, asked: ActionRequest): Promise<UpgradeAnswer> {
    const { outcome, effects } = await this.options.state.upgrade(id, request, asked);
    if (request.dryRun) {
      return {
        execution_id: id,
        dry_run: true,
        from_version: outcome.from,
        to_version: outcome.to,
        ...outcome.plan,
      };
    }
    await this.options.effects.apply(effects);
    return this.get(id);
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
