import type {
  ClaimedRun,
  ExecutionRow,
  RunSnapshot,
  StepErrorRecord,
  StepRunRow,
} from '../../domain/execution.js';
import {
  ADVANCING_EXECUTION_STATUSES,
  isIn,
  UNFINISHED_STEP_STATUSES,
} from '../../domain/statuses.js';
import type { StepDefinition, WorkflowDefinition } from '../../domain/workflow-definition.js';
import {
  DependencyUnavailableError,
  WorkflowNotFoundError,
  WorkflowNotRunnableError,
} from '../../errors.js';
import { remember } from '../../lib/bounded-cache.js';
import type { Log } from '../../logger.js';
import type { Pool, Queryable } from '../../store/db.js';
import * as eventStore from '../../store/event-store.js';
import * as executions from '../../store/executions.js';
import * as completions from '../../store/run-completions.js';
import * as stepRuns from '../../store/step-runs.js';
import { evaluateCondition, evaluateExpression } from '../expressions.js';
import { retryDelayMs } from '../retry-policy.js';
import { predictCompletion, schedule, sinkSteps } from '../scheduler.js';
import type { ExpressionContext, WaitRequest } from '../steps/types.js';
import { type Effects, jobFor, mergeEffects, noEffects, queueJobs } from './effects.js';
import {
  firstIteration,
  MAX_START_ATTEMPTS,
  newExecution,
  runnableStatuses,
  type Started,
  type StartRequest,
} from './execution-start.js';
import { claimedExecution, claimedRun, expressionContext, withChanges } from './iteration-runs.js';

/** Bound on scheduler passes per transaction: every pass changes at least one run, so this
 * only trips on a bug, and then fails loudly instead of spinning. */
const MAX_PASSES = 10_000;
/** Workflow versions (definitions) and workflows (current versions) kept per process. */
const CACHE_SIZE = 500;

export interface StateManagerOptions {
  pool: Pool;
  expressionTimeoutMs: number;
  /** How far back a run that starts waiting for an event looks for one it just missed. */
  eventBufferMs: number;
  logger: Log;
}

/** An event as steps and expressions see it. */
export function eventOutput(event: eventStore.EventRow): Record<string, unknown> {
  return {
    id: event.id,
    type: event.type,
    data: event.data,
    correlation_key: event.correlation_key,
    received_at: event.received_at.toISOString(),
  };
}

/** What the engine learned from one attempt of a step. */
export type AttemptResult =
  | { kind: 'completed'; output: unknown }
  | { kind: 'sleep'; until: Date; output?: unknown }
  | { kind: 'wait'; reason: string; wait: WaitRequest }
  | { kind: 'failed'; error: StepErrorRecord; retryAfterMs?: number | undefined };

/**
 * A worker's offer to run, right after its record commits, one step that the record makes
 * ready: the state manager claims that run in the same transaction instead of queueing it, so
 * a chain of quick steps costs one transaction per step and no job. At most one run is taken
 * (the others are queued as usual, for every worker to share).
 */
export interface InlineSlot {
  leaseId: string;
  /** Whether this worker runs that step in process (quick, built-in step types). */
  accepts(step: StepDefinition): boolean;
  /** Set when a run was claimed for the worker; its transaction has committed once
   * recordAttempt returns. */
  claimed?: ClaimedRun;
}

/** A completed attempt as its worker reports it. */
interface WorkerCompletion {
  runId: number;
  executionId: string;
  leaseId: string;
  output: unknown;
  report: AttemptReport;
}

/** What a caller of advance knows, offers, and learns. */
interface AdvanceOptions {
  /** The current iteration's runs, when the caller has just read them. */
  runs?: StepRunRow[];
  inline?: InlineSlot | undefined;
  /** Set when the scheduler settled without ending the execution: the execution and its
   * current iteration's runs as the transaction leaves them. */
  settled?: { execution: ExecutionRow; runs: StepRunRow[] };
}

/** What the worker that ran an attempt knows about it, beyond the fence. */
export interface AttemptReport {
  /** The run as claimed, with its iteration as the worker last saw it. */
  claim: ClaimedRun;
  /** When the handler started: the record of an attempt claimed inline sets its start. */
  startedAt: Date;
  inline?: InlineSlot | undefined;
}

/** Locks an execution that attempts may still be recorded in; null if it is not one. */
async function lockAdvancing(tx: Queryable, executionId: string): Promise<ExecutionRow | null> {
  const execution = await executions.lockExecution(tx, executionId);
  return execution && ADVANCING_EXECUTION_STATUSES.includes(execution.status) ? execution : null;
}

/**
 * The execution state machine: applies scheduler decisions and attempt results to Postgres,
 * one transaction per change, with the execution row locked so parallel completions of the
 * same execution never race. Returns the effects to apply after commit.
 */
export class StateManager {
  private readonly definitions = new Map<string, WorkflowDefinition>();
  /** The version this process last saw current, per workflow: what startAtOnce tries. */
  private readonly heads = new Map<string, number>();

  constructor(private readonly options: StateManagerOptions) {}

  /** The pinned definition of a workflow version; versions never change, so caching is safe. */
  async definition(
    db: Queryable,
    workflowId: string,
    version: number,
  ): Promise<WorkflowDefinition> {
    const key = `${workflowId}@${version}`;
    const cached = this.definitions.get(key);
    if (cached) return cached;
    const definition = await executions.loadDefinition(db, workflowId, version);
    if (!definition) throw new Error(`workflow version ${key} is missing`);
    remember(this.definitions, key, definition, CACHE_SIZE);
    return definition;
  }

  /**
   * Starts an execution of a workflow's current version inside the caller's transaction:
   * the one way executions begin (API, events, schedules, sub-workflows). With an
   * idempotency key already used, returns that execution instead (created: false).
   */
  async start(
    tx: Queryable,
    request: StartRequest,
    effects: Effects = noEffects(),
    attemptsLeft = MAX_START_ATTEMPTS,
  ): Promise<Started> {
    const head = await executions.findWorkflowHead(tx, request.workflowId);
    if (!head) throw new WorkflowNotFoundError(request.workflowId);
    remember(this.heads, request.workflowId, head.version, CACHE_SIZE);
    const earlier = await this.replayed(tx, request, effects);
    if (earlier) return earlier;
    const runnable = runnableStatuses(request);
    if (!runnable.includes(head.status)) {
      throw new WorkflowNotRunnableError(request.workflowId, head.status);
    }
    const definition = await this.definition(tx, request.workflowId, head.version);
    const first = firstIteration(definition);
    const inserted = await executions.insertExecution(
      tx,
      newExecution(request, head.version, definition),
      { runnable },
      first,
    );
    if (!inserted) {
      // A concurrent start with the same key won the insert: return its execution.
      const concurrent = await this.replayed(tx, request, effects);
      if (concurrent) return concurrent;
      // The workflow changed (a new version, another status) since its head was read.
      if (attemptsLeft <= 1) {
        throw new DependencyUnavailableError(`Workflow ${request.workflowId}, changing right now,`);
      }
      return this.start(tx, request, effects, attemptsLeft - 1);
    }
    queueJobs(inserted.row, inserted.runs, effects);
    const known: AdvanceOptions = { runs: inserted.runs };
    await this.advance(tx, inserted.row, effects, known);
    return {
      row: known.settled?.execution ?? inserted.row,
      created: true,
      effects,
      settled: known.settled,
    };
  }

  /** The execution an earlier start with the same idempotency key made, if there is one. */
  private async replayed(
    tx: Queryable,
    request: StartRequest,
    effects: Effects,
  ): Promise<Started | null> {
    if (!request.idempotencyKey) return null;
    const existing = await executions.findByIdempotencyKey(
      tx,
      request.workflowId,
      request.idempotencyKey,
    );
    return existing ? { row: existing, created: false, effects } : null;
  }

  /**
   * start in one statement, outside any transaction, when this process saw the workflow's
   * current version before and the scheduler's first pass only queues steps: the insert
   * checks that the version and a runnable status still hold. Null, with nothing written,
   * when that does not apply: the caller then uses start.
   */
  async startAtOnce(db: Queryable, request: StartRequest): Promise<Started | null> {
    const version = this.heads.get(request.workflowId);
    if (version === undefined || request.idempotencyKey) return null;
    const definition = await this.definition(db, request.workflowId, version);
    const first = firstIteration(definition);
    if (!first.settled) return null;
    const inserted = await executions.insertExecution(
      db,
      newExecution(request, version, definition),
      { runnable: runnableStatuses(request) },
      first,
    );
    if (!inserted) return null;
    const effects = queueJobs(inserted.row, inserted.runs, noEffects());
    const settled = { execution: inserted.row, runs: inserted.runs };
    return { row: inserted.row, created: true, effects, settled };
  }

  /** Expression context of an execution at its current iteration. */
  context(execution: ExecutionRow, runs: readonly StepRunRow[]): ExpressionContext {
    return expressionContext(execution, execution.current_iteration, runs);
  }

  /**
   * Runs the scheduler to a fixpoint inside the caller's transaction (execution row locked):
   * skips, starts, for_each expansion, loop iterations, and the execution's end. `runs` are
   * the current iteration's runs when the caller has just read them; every change made here
   * returns its rows, so the runs are never read again. With an inline slot, one run that
   * becomes ready is claimed for the caller instead of queued.
   */
  async advance(
    tx: Queryable,
    execution: ExecutionRow,
    effects: Effects = noEffects(),
    known: AdvanceOptions = {},
  ): Promise<Effects> {
    if (!ADVANCING_EXECUTION_STATUSES.includes(execution.status)) return effects;
    const definition = await this.definition(tx, execution.workflow_id, execution.workflow_version);
    const byId = new Map(definition.steps.map((step) => [step.id, step]));
    let current = execution;
    let runs =
      known.runs ?? (await stepRuns.loadIterationRuns(tx, current.id, current.current_iteration));
    if (runs.length === 0 && definition.steps.length > 0) {
      runs = await this.insertIteration(tx, current, definition, effects);
    }
    const timeout = { timeoutMs: this.options.expressionTimeoutMs };
    const { inline } = known;
    let claimedInline: StepRunRow | null = null;

    for (let pass = 0; pass < MAX_PASSES; pass += 1) {
      const decision = schedule({ definition, runs, paused: current.status === 'paused' });
      const ownRun = (stepId: string) =>
        runs.find((run) => run.step_id === stepId && run.item_index < 0) as StepRunRow;

      if (decision.outcome.kind === 'failed') {
        const failedRun = ownRun(decision.outcome.step_id);
        const message = failedRun.error?.message ?? 'failed';
        await this.finish(
          tx,
          current,
          {
            status: 'failed',
            error: `Step "${failedRun.step_id}" failed: ${message}`,
            errorDetails: { step_id: failedRun.step_id, ...failedRun.error },
          },
          effects,
          runs,
        );
        return effects;
      }

      const changed: StepRunRow[] = [];
      const toQueue: StepRunRow[] = [];
      const finished = (row: StepRunRow | null) => {
        if (row) changed.push(row);
      };

      if (decision.skip.length > 0) {
        changed.push(
          ...(await stepRuns.skipRuns(
            tx,
            decision.skip.map((id) => ownRun(id).id),
            'every dependency was skipped',
          )),
        );
      }
      for (const stepId of decision.ready) {
        const step = byId.get(stepId) as StepDefinition;
        const run = ownRun(stepId);
        const context = this.context(current, runs);
        try {
          if (
            step.condition !== null &&
            !(await evaluateCondition(step.condition, context, timeout))
          ) {
            changed.push(
              ...(await stepRuns.skipRuns(
                tx,
                [run.id],
                `condition is false: ${step.condition}`.slice(0, 500),
              )),
            );
            continue;
          }
          if (step.for_each !== null) {
            const items = await evaluateExpression(step.for_each, context, timeout);
            const list = items === undefined ? [] : Array.isArray(items) ? items : [items];
            if (list.length === 0) {
              finished(await stepRuns.finishRun(tx, run.id, { status: 'completed', output: [] }));
            } else {
              changed.push(...(await stepRuns.expandForEach(tx, run, list)));
            }
            continue;
          }
        } catch (error) {
          finished(
            await stepRuns.finishRun(tx, run.id, {
              status: 'failed',
              error: {
                message: error instanceof Error ? error.message : String(error),
                type: 'expression_error',
                retryable: false,
                attempt: run.attempt,
              },
            }),
          );
          continue;
        }
        toQueue.push(run);
      }
      for (const item of decision.startItems) {
        const run = runs.find(
          (r) => r.step_id === item.step_id && r.item_index === item.item_index,
        );
        if (run) toQueue.push(run);
      }
      if (toQueue.length > 0) {
        const taken =
          inline && claimedInline === null
            ? toQueue.find((run) => inline.accepts(byId.get(run.step_id) as StepDefinition))
            : undefined;
        if (inline && taken) {
          const step = byId.get(taken.step_id) as StepDefinition;
          claimedInline = await stepRuns.claimRunInline(
            tx,
            taken.id,
            inline.leaseId,
            step.timeout_seconds,
          );
          finished(claimedInline);
        }
        const queued = await stepRuns.queueRuns(
          tx,
          toQueue.filter((run) => run !== taken).map((run) => run.id),
        );
        for (const row of queued) {
          effects.jobs.push(jobFor(current, row.id, row.step_id, row.attempt));
        }
        changed.push(...queued);
      }
      for (const done of decision.finishForEach) {
        const parent = ownRun(done.step_id);
        const items = runs
          .filter((run) => run.step_id === done.step_id && run.item_index >= 0)
          .sort((a, b) => a.item_index - b.item_index);
        if (done.failed) {
          const failedItem = items.find(
            (run) => run.status === 'failed' || run.status === 'cancelled',
          );
          finished(
            await stepRuns.finishRun(tx, parent.id, {
              status: 'failed',
              error: {
                message: `item ${failedItem?.item_index} failed: ${failedItem?.error?.message ?? failedItem?.status}`,
                type: 'for_each_item_failed',
                retryable: false,
                attempt: parent.attempt,
                details: { item_index: failedItem?.item_index, error: failedItem?.error },
              },
            }),
          );
        } else {
          const outputs = items.map((run) => (run.status === 'completed' ? run.output : null));
          finished(
            await stepRuns.finishRun(tx, parent.id, { status: 'completed', output: outputs }),
          );
        }
      }

      if (changed.length === 0 && decision.outcome.kind === 'iteration_done') {
        const context = this.context(current, runs);
        const loop = definition.config.loop;
        if (definition.workflow_type === 'loop' && loop) {
          const done = current.current_iteration + 1;
          let again = false;
          try {
            again =
              done < loop.max_iterations &&
              (loop.condition === undefined ||
                (await evaluateCondition(
                  loop.condition,
                  { ...context, iteration: done },
                  timeout,
                )));
          } catch (error) {
            await this.finish(
              tx,
              current,
              {
                status: 'failed',
                error: `Loop condition failed: ${error instanceof Error ? error.message : String(error)}`,
              },
              effects,
              runs,
            );
            return effects;
          }
          if (again) {
            await executions.startIteration(tx, current.id, done);
            current = { ...current, current_iteration: done };
            runs = await this.insertIteration(tx, current, definition, effects);
            continue;
          }
        }
        let output: unknown;
        try {
          output = await this.output(definition, context);
        } catch (error) {
          await this.finish(
            tx,
            current,
            {
              status: 'failed',
              error: `Output expression failed: ${error instanceof Error ? error.message : String(error)}`,
            },
            effects,
            runs,
          );
          return effects;
        }
        await this.finish(tx, current, { status: 'completed', output }, effects, runs);
        return effects;
      }

      if (changed.length === 0) {
        const status =
          current.status === 'paused'
            ? 'paused'
            : decision.outcome.kind === 'waiting'
              ? 'waiting'
              : 'running';
        if (status !== current.status) await executions.setExecutionStatus(tx, current.id, status);
        if (inline && claimedInline) inline.claimed = claimedRun(current, claimedInline, runs);
        known.settled = { execution: { ...current, status }, runs };
        return effects;
      }
      runs = withChanges(runs, changed);
    }
    throw new Error(`scheduler did not settle for execution ${execution.id}`);
  }

  /** Inserts the runs of the execution's current iteration, as firstIteration plans them. */
  private async insertIteration(
    tx: Queryable,
    execution: ExecutionRow,
    definition: WorkflowDefinition,
    effects: Effects,
  ): Promise<StepRunRow[]> {
    const first = firstIteration(definition, execution.status === 'paused');
    const runs = await stepRuns.insertIterationRuns(
      tx,
      execution.id,
      execution.current_iteration,
      first.stepIds,
      first.queued,
    );
    queueJobs(execution, runs, effects);
    return runs;
  }

  private async output(
    definition: WorkflowDefinition,
    context: ExpressionContext,
  ): Promise<unknown> {
    if (typeof definition.config.output === 'string') {
      return (
        (await evaluateExpression(definition.config.output, context, {
          timeoutMs: this.options.expressionTimeoutMs,
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
  async finish(
    tx: Queryable,
    execution: ExecutionRow,
    outcome: Parameters<typeof executions.finishExecution>[2],
    effects: Effects,
    runs?: readonly StepRunRow[],
  ): Promise<ExecutionRow> {
    const unfinished = runs?.some((run) => isIn(UNFINISHED_STEP_STATUSES, run.status)) ?? true;
    const stopped = unfinished
      ? await stepRuns.cancelUnfinishedRuns(tx, execution.id, `execution ${outcome.status}`)
      : 0;
    const finished = await executions.finishExecution(tx, execution, outcome);
    if (stopped > 0) effects.abortExecutions.push(execution.id);
    this.ended(finished, effects);
    return finished;
  }

  /** What an execution's end asks of the outside world: its parent, its children, the cache. */
  private ended(finished: ExecutionRow, effects: Effects): void {
    if (finished.parent_run_id !== null) effects.endedChildren.push(finished.id);
    if (finished.status !== 'completed') effects.stoppedParents.push(finished.id);
    effects.changedWorkflows.push(finished.workflow_id);
    this.options.logger.info(
      { executionId: finished.id, workflowId: finished.workflow_id, status: finished.status },
      'execution finished',
    );
  }

  /**
   * Records the result of one attempt, fenced by its lease: a stale holder (timed out,
   * cancelled, superseded by a redelivered job) changes nothing and gets null back.
   * `report` comes from the worker that ran the attempt (absent for the sweep and the tasks
   * API): it lets a completion take the fast path, and may offer an inline slot.
   */
  async recordAttempt(
    runId: number,
    executionId: string,
    fence: { leaseId: string } | { attempt: number },
    result: AttemptResult,
    report?: AttemptReport,
  ): Promise<Effects | null> {
    // A worker's completion, when it reported its claim: the paths that know the run's place.
    const completion: WorkerCompletion | null =
      result.kind === 'completed' && 'leaseId' in fence && report
        ? { runId, executionId, leaseId: fence.leaseId, output: result.output, report }
        : null;
    if (completion) {
      const effects = await this.completeOnPrediction(completion);
      if (effects) return effects;
    }
    const client = await this.options.pool.connect();
    try {
      await client.query('BEGIN');
      const effects = completion
        ? await this.recordCompletion(client, completion)
        : await this.recordFenced(client, runId, executionId, fence, result, report);
      await client.query(effects ? 'COMMIT' : 'ROLLBACK');
      return effects;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  }

  /**
   * The one-statement paths. From the runs the worker last saw, predict what its completion
   * does (predictCompletion); when that is all of it, one statement applies it after
   * checking, under the execution's lock, that what the prediction rests on still holds:
   * - the last step ends the execution (no loop to decide, no output expression: the output
   *   is the sink steps' outputs);
   * - nothing follows yet, others still run;
   * - exactly one quick step becomes ready: it is claimed for the worker.
   * Null when no prediction applies or it no longer holds: nothing changed, and the general
   * path reads and decides.
   */
  private async completeOnPrediction(completion: WorkerCompletion): Promise<Effects | null> {
    const { claim, inline, startedAt } = completion.report;
    if (claim.item_index >= 0) return null;
    const { pool } = this.options;
    const definition = await this.definition(pool, claim.workflow_id, claim.workflow_version);
    const seen = claim.iteration_runs;
    const completed = seen.map((run) =>
      run.id === claim.id
        ? { ...run, status: 'completed' as const, output: completion.output }
        : run,
    );
    const outcome = predictCompletion(
      { definition, runs: completed, paused: false },
      claim.step_id,
    );
    if (!outcome) return null;
    const runOf = (stepId: string) =>
      completed.find((run) => run.step_id === stepId && run.item_index < 0) as RunSnapshot;
    const predicted = {
      execution: { id: claim.execution_id, current_iteration: claim.iteration },
      run: { id: claim.id, leaseId: completion.leaseId, output: completion.output, startedAt },
    };
    switch (outcome.kind) {
      case 'end': {
        const last = definition.workflow_type !== 'loop' || definition.config.loop === undefined;
        if (!last || typeof definition.config.output === 'string') return null;
        const output = await this.output(
          definition,
          expressionContext(claimedExecution(claim), claim.iteration, completed),
        );
        const finished = await completions.completeAndFinish(pool, { ...predicted, output });
        if (!finished) return null;
        const effects = noEffects();
        this.ended(finished, effects);
        return effects;
      }
      case 'quiet': {
        const done = await completions.completeQuietly(pool, {
          ...predicted,
          blockers: outcome.blockers.map((id) => runOf(id).id),
          active: outcome.active.map((id) => runOf(id).id),
        });
        return done ? noEffects() : null;
      }
      case 'successor': {
        const step = definition.steps.find((candidate) => candidate.id === outcome.stepId);
        if (!inline || !step || !inline.accepts(step)) return null;
        const rows = await completions.completeAndClaim(pool, {
          ...predicted,
          blockers: outcome.blockers.map((id) => runOf(id).id),
          next: {
            id: runOf(outcome.stepId).id,
            leaseId: inline.leaseId,
            timeoutSeconds: step.timeout_seconds,
          },
        });
        if (!rows) return null;
        inline.claimed = claimedRun(
          claim,
          rows.claimed,
          withChanges<RunSnapshot>(seen, [rows.completed]),
        );
        return noEffects();
      }
    }
  }

  /**
   * The general path of a worker's completion, in the caller's transaction: lock the
   * execution, complete the run while reading the iteration (the transaction's only read of
   * runs), then apply what the scheduler decides.
   */
  private async recordCompletion(
    tx: Queryable,
    completion: WorkerCompletion,
  ): Promise<Effects | null> {
    const { executionId, output, report } = completion;
    const execution = await lockAdvancing(tx, executionId);
    if (!execution) return null;
    const runs = await completions.completeLeasedRunReadingIteration(
      tx,
      execution,
      completion.runId,
      completion.leaseId,
      output,
      report.startedAt,
    );
    if (!runs) return null;
    return this.advance(tx, execution, noEffects(), { runs, inline: report.inline });
  }

  private async recordFenced(
    tx: Queryable,
    runId: number,
    executionId: string,
    fence: { leaseId: string } | { attempt: number },
    result: AttemptResult,
    report: AttemptReport | undefined,
  ): Promise<Effects | null> {
    const execution = await lockAdvancing(tx, executionId);
    if (!execution) return null;
    const claimedInline = report !== undefined && report.claim.started_at === null;
    const run =
      'leaseId' in fence
        ? await stepRuns.lockLeasedRun(
            tx,
            runId,
            fence.leaseId,
            claimedInline ? report.startedAt : undefined,
          )
        : await stepRuns.lockRunAttempt(tx, runId, fence.attempt);
    if (!run) return null;
    return this.applyAttempt(tx, execution, run, result, report?.inline);
  }

  /**
   * Parks a run until the party it waits for answers. A wait for an event first looks at the
   * events that arrived since the execution started (within the buffer window), under the
   * event type's lock, so an event posted just before the run started waiting is not lost.
   * A sub-workflow is started in the same transaction.
   */
  private async park(
    tx: Queryable,
    execution: ExecutionRow,
    run: StepRunRow,
    result: Extract<AttemptResult, { kind: 'wait' }>,
    effects: Effects,
  ): Promise<Effects> {
    const { wait } = result;
    switch (wait.kind) {
      case 'task': {
        const { kind, ...spec } = wait;
        await stepRuns.parkRun(tx, run.id, {
          reason: result.reason,
          wakeAt: null,
          wait: { kind, spec },
        });
        return this.advance(tx, execution, effects);
      }
      case 'event': {
        await eventStore.lockEventType(tx, wait.event);
        // Events older than the run (an earlier loop iteration's, say) are not for it.
        const since = new Date(
          Math.max(run.created_at.getTime(), Date.now() - this.options.eventBufferMs),
        );
        if (await this.takeBufferedEvent(tx, execution, run, wait, since, effects)) return effects;
        const { kind, ...spec } = wait;
        await stepRuns.parkRun(tx, run.id, {
          reason: result.reason,
          wakeAt: null,
          wait: { kind, spec },
        });
        return this.advance(tx, execution, effects);
      }
      case 'child': {
        let child: ExecutionRow;
        try {
          ({ row: child } = await this.start(
            tx,
            {
              workflowId: wait.workflow_id,
              input: wait.input,
              // The same attempt never starts two children, even when it runs again.
              idempotencyKey: `parent-${run.id}-${run.attempt}`,
              parent: { executionId: execution.id, runId: run.id, attempt: run.attempt },
              trigger: {
                type: 'subworkflow',
                parent_execution_id: execution.id,
                step_id: run.step_id,
              },
            },
            effects,
          ));
        } catch (error) {
          if (
            !(error instanceof WorkflowNotFoundError || error instanceof WorkflowNotRunnableError)
          )
            throw error;
          return this.resolveWait(
            tx,
            execution,
            run,
            {
              kind: 'failed',
              error: {
                message: error.message,
                type: 'subworkflow_unavailable',
                retryable: false,
                attempt: run.attempt,
              },
            },
            effects,
          );
        }
        await stepRuns.parkRun(tx, run.id, {
          reason: `waiting for sub-workflow execution ${child.id}`,
          wakeAt: null,
          wait: { kind: 'child', spec: { workflow_id: wait.workflow_id, execution_id: child.id } },
        });
        return this.advance(tx, execution, effects);
      }
    }
  }

  /**
   * Resolves a run that waits for an event with the first matching event received since
   * `since`, if there is one. The caller holds the event type's lock, the execution and the run.
   */
  async takeBufferedEvent(
    tx: Queryable,
    execution: ExecutionRow,
    run: StepRunRow,
    wait: { event: string; correlation_key: string | null; match: string | null },
    since: Date,
    effects: Effects,
  ): Promise<boolean> {
    const recent = await eventStore.findRecentEvents(tx, wait.event, wait.correlation_key, since);
    if (recent.length === 0) return false;
    const runs = await stepRuns.loadIterationRuns(tx, execution.id, execution.current_iteration);
    for (const event of recent) {
      if (await this.eventMatches(wait.match, execution, runs, event)) {
        await eventStore.appendResumedStep(tx, event.id, {
          execution_id: execution.id,
          step_id: run.step_id,
        });
        await this.resolveWait(
          tx,
          execution,
          run,
          { kind: 'completed', output: eventOutput(event) },
          effects,
        );
        return true;
      }
    }
    return false;
  }

  /** Whether an event satisfies a waiting run's match expression (none: any event does). */
  async eventMatches(
    match: string | null,
    execution: ExecutionRow,
    runs: readonly StepRunRow[],
    event: eventStore.EventRow,
  ): Promise<boolean> {
    if (match === null) return true;
    try {
      return await evaluateCondition(
        match,
        { ...this.context(execution, runs), event: eventOutput(event) },
        { timeoutMs: this.options.expressionTimeoutMs },
      );
    } catch (error) {
      this.options.logger.warn(
        { err: error, executionId: execution.id },
        'event match expression failed',
      );
      return false;
    }
  }

  /**
   * Ends a wait from outside the worker (an event, a finished sub-workflow): the caller holds
   * the execution and the run locked in `tx` and has checked that the run still waits.
   */
  async resolveWait(
    tx: Queryable,
    execution: ExecutionRow,
    run: StepRunRow,
    result: AttemptResult,
    effects: Effects = noEffects(),
  ): Promise<Effects> {
    return mergeEffects(effects, await this.applyAttempt(tx, execution, run, result));
  }

  private async applyAttempt(
    tx: Queryable,
    execution: ExecutionRow,
    run: StepRunRow,
    result: AttemptResult,
    inline?: InlineSlot,
  ): Promise<Effects> {
    const effects = noEffects();
    switch (result.kind) {
      case 'completed':
        await completions.completeLeasedRun(tx, run.id, result.output);
        return this.advance(tx, execution, effects, { inline });
      case 'sleep':
        await stepRuns.parkRun(tx, run.id, {
          reason: `sleeping until ${result.until.toISOString()}`,
          wakeAt: result.until,
          output: result.output,
        });
        effects.jobs.push({
          ...jobFor(execution, run.id, run.step_id, run.attempt),
          runAt: result.until,
          wake: true,
        });
        return this.advance(tx, execution, effects);
      case 'wait':
        return this.park(tx, execution, run, result, effects);
      case 'failed': {
        const definition = await this.definition(
          tx,
          execution.workflow_id,
          execution.workflow_version,
        );
        const step = definition.steps.find((s) => s.id === run.step_id);
        const attemptsMade = run.attempt - run.first_attempt + 1;
        if (step && result.error.retryable && attemptsMade <= step.retry_count) {
          const delay = result.retryAfterMs ?? retryDelayMs(step.retry_backoff, attemptsMade);
          const runAt = new Date(Date.now() + delay);
          const { attempt } = await stepRuns.scheduleRetry(tx, run.id, result.error, runAt);
          effects.jobs.push({ ...jobFor(execution, run.id, run.step_id, attempt), runAt });
          return effects;
        }
        await stepRuns.failRun(tx, run.id, result.error);
        return this.advance(tx, execution, effects, { inline });
      }
    }
  }
}
