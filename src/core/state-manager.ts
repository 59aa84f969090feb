import { randomBytes } from 'node:crypto';
import { retryDelayMs } from '../engine/retry-policy.js';
import { schedule, sinkSteps } from '../engine/scheduler.js';
import type { ExpressionContext, WaitRequest } from '../engine/steps/types.js';
import { WorkflowNotFoundError, WorkflowNotRunnableError } from '../errors.js';
import type { Log } from '../logger.js';
import type { Pool, Queryable } from '../store/db.js';
import * as eventStore from '../store/event-store.js';
import type {
  ExecutionRow,
  NewExecution,
  StepErrorRecord,
  StepJob,
  StepRunRow,
} from '../store/execution-store.js';
import * as store from '../store/execution-store.js';
import { type Effects, mergeEffects, noEffects } from './effects.js';
import { evaluateCondition, evaluateExpression } from './expressions.js';
import type { StepDefinition, WorkflowDefinition } from './workflow-definition.js';

/** Bound on scheduler passes per transaction: every pass changes at least one run, so this
 * only trips on a bug, and then fails loudly instead of spinning. */
const MAX_PASSES = 10_000;
const DEFINITION_CACHE_SIZE = 500;

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

/** The job that runs one attempt of a run of an execution. */
export function jobFor(
  execution: Pick<ExecutionRow, 'id' | 'workflow_id' | 'workflow_version'>,
  runId: number,
  stepId: string,
  attempt: number,
): StepJob {
  return {
    runId,
    attempt,
    stepId,
    executionId: execution.id,
    workflowId: execution.workflow_id,
    workflowVersion: execution.workflow_version,
  };
}

/**
 * The execution state machine: applies scheduler decisions and attempt results to Postgres,
 * one transaction per change, with the execution row locked so parallel completions of the
 * same execution never race. Returns the effects to apply after commit.
 */
export class StateManager {
  private readonly definitions = new Map<string, WorkflowDefinition>();

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
    const definition = await store.loadDefinition(db, workflowId, version);
    if (!definition) throw new Error(`workflow version ${key} is missing`);
    if (this.definitions.size >= DEFINITION_CACHE_SIZE) {
      const oldest = this.definitions.keys().next().value;
      if (oldest !== undefined) this.definitions.delete(oldest);
    }
    this.definitions.set(key, definition);
    return definition;
  }

  /**
   * Starts an execution of a workflow's current version inside the caller's transaction:
   * the one way executions begin (API, events, schedules, sub-workflows). With an
   * idempotency key already used, returns that execution instead (created: false).
   */
  async start(
    tx: Queryable,
    request: {
      workflowId: string;
      input: unknown;
      idempotencyKey: string | null;
      /** Event and schedule starts run only active workflows; the API runs drafts too. */
      activeOnly?: boolean;
      parent?: NewExecution['parent'];
      trigger?: Record<string, unknown>;
    },
    effects: Effects = noEffects(),
  ): Promise<{ row: ExecutionRow; created: boolean; effects: Effects }> {
    const head = await store.findWorkflowHead(tx, request.workflowId);
    if (!head) throw new WorkflowNotFoundError(request.workflowId);
    if (request.idempotencyKey) {
      const existing = await store.findByIdempotencyKey(
        tx,
        request.workflowId,
        request.idempotencyKey,
      );
      if (existing) return { row: existing, created: false, effects };
    }
    const runnable = request.activeOnly ? ['active'] : ['draft', 'active'];
    if (!runnable.includes(head.status)) {
      throw new WorkflowNotRunnableError(request.workflowId, head.status);
    }
    const definition = await this.definition(tx, request.workflowId, head.version);
    const timeout = definition.config.timeout_seconds;
    const row = await store.insertExecution(tx, {
      id: `ex_${randomBytes(12).toString('base64url')}`,
      workflowId: request.workflowId,
      version: head.version,
      input: request.input ?? {},
      idempotencyKey: request.idempotencyKey,
      timeoutSeconds: typeof timeout === 'number' ? timeout : null,
      parent: request.parent,
      trigger: request.trigger,
    });
    if (!row) {
      // A concurrent start with the same key won the insert; return its execution.
      const existing = await store.findByIdempotencyKey(
        tx,
        request.workflowId,
        request.idempotencyKey as string,
      );
      return { row: existing as ExecutionRow, created: false, effects };
    }
    await this.advance(tx, row, effects);
    // Last: every start and every end of the workflow's executions updates its row, so the
    // row lock is held from here to COMMIT only, not across the scheduler's queries.
    await store.touchWorkflowStarted(tx, request.workflowId);
    return { row, created: true, effects };
  }

  /** Expression context of an execution at its current iteration. */
  context(execution: ExecutionRow, runs: readonly StepRunRow[]): ExpressionContext {
    const steps: ExpressionContext['steps'] = {};
    for (const run of runs) {
      if (run.item_index < 0) steps[run.step_id] = { output: run.output, status: run.status };
    }
    return {
      input: execution.input_data,
      steps,
      iteration: execution.current_iteration,
      execution: {
        id: execution.id,
        workflow_id: execution.workflow_id,
        workflow_version: execution.workflow_version,
      },
    };
  }

  /**
   * Runs the scheduler to a fixpoint inside the caller's transaction (execution row locked):
   * skips, starts, for_each expansion, loop iterations, and the execution's end.
   */
  async advance(
    tx: Queryable,
    execution: ExecutionRow,
    effects: Effects = noEffects(),
  ): Promise<Effects> {
    if (!['running', 'waiting', 'paused'].includes(execution.status)) return effects;
    const definition = await this.definition(tx, execution.workflow_id, execution.workflow_version);
    const byId = new Map(definition.steps.map((step) => [step.id, step]));
    let current = execution;
    let runs = await store.loadIterationRuns(tx, current.id, current.current_iteration);
    if (runs.length === 0 && definition.steps.length > 0) {
      runs = await store.insertIterationRuns(
        tx,
        current.id,
        current.current_iteration,
        definition.steps.map((s) => s.id),
      );
    }
    const timeout = { timeoutMs: this.options.expressionTimeoutMs };

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
        );
        return effects;
      }

      let changed = false;
      const toQueue: number[] = [];

      if (decision.skip.length > 0) {
        await store.skipRuns(
          tx,
          decision.skip.map((id) => ownRun(id).id),
          'every dependency was skipped',
        );
        changed = true;
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
            await store.skipRuns(
              tx,
              [run.id],
              `condition is false: ${step.condition}`.slice(0, 500),
            );
            changed = true;
            continue;
          }
          if (step.for_each !== null) {
            const items = await evaluateExpression(step.for_each, context, timeout);
            const list = items === undefined ? [] : Array.isArray(items) ? items : [items];
            if (list.length === 0) {
              await store.finishRun(tx, run.id, { status: 'completed', output: [] });
              await store.recordStepResult(tx, current.id, step.id, []);
            } else {
              await store.expandForEach(tx, run, list);
            }
            changed = true;
            continue;
          }
        } catch (error) {
          await store.finishRun(tx, run.id, {
            status: 'failed',
            error: {
              message: error instanceof Error ? error.message : String(error),
              type: 'expression_error',
              retryable: false,
              attempt: run.attempt,
            },
          });
          changed = true;
          continue;
        }
        toQueue.push(run.id);
      }
      for (const item of decision.startItems) {
        const run = runs.find(
          (r) => r.step_id === item.step_id && r.item_index === item.item_index,
        );
        if (run) toQueue.push(run.id);
      }
      if (toQueue.length > 0) {
        const queued = await store.queueRuns(tx, toQueue);
        for (const job of queued)
          effects.jobs.push(jobFor(current, job.id, job.step_id, job.attempt));
        changed = true;
      }
      for (const finished of decision.finishForEach) {
        const parent = ownRun(finished.step_id);
        const items = runs
          .filter((run) => run.step_id === finished.step_id && run.item_index >= 0)
          .sort((a, b) => a.item_index - b.item_index);
        if (finished.failed) {
          const failedItem = items.find(
            (run) => run.status === 'failed' || run.status === 'cancelled',
          );
          await store.finishRun(tx, parent.id, {
            status: 'failed',
            error: {
              message: `item ${failedItem?.item_index} failed: ${failedItem?.error?.message ?? failedItem?.status}`,
              type: 'for_each_item_failed',
              retryable: false,
              attempt: parent.attempt,
              details: { item_index: failedItem?.item_index, error: failedItem?.error },
            },
          });
        } else {
          const outputs = items.map((run) => (run.status === 'completed' ? run.output : null));
          await store.finishRun(tx, parent.id, { status: 'completed', output: outputs });
          await store.recordStepResult(tx, current.id, parent.step_id, outputs);
        }
        changed = true;
      }

      if (!changed && decision.outcome.kind === 'iteration_done') {
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
            );
            return effects;
          }
          if (again) {
            await store.startIteration(tx, current.id, done);
            current = { ...current, current_iteration: done };
            runs = await store.insertIterationRuns(
              tx,
              current.id,
              done,
              definition.steps.map((s) => s.id),
            );
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
          );
          return effects;
        }
        await this.finish(tx, current, { status: 'completed', output }, effects);
        return effects;
      }

      if (!changed) {
        const status =
          current.status === 'paused'
            ? 'paused'
            : decision.outcome.kind === 'waiting'
              ? 'waiting'
              : 'running';
        if (status !== current.status) await store.setExecutionStatus(tx, current.id, status);
        return effects;
      }
      runs = await store.loadIterationRuns(tx, current.id, current.current_iteration);
    }
    throw new Error(`scheduler did not settle for execution ${execution.id}`);
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

  /** Ends an execution: stops what still runs and updates the workflow's counters. */
  async finish(
    tx: Queryable,
    execution: ExecutionRow,
    outcome: Parameters<typeof store.finishExecution>[2],
    effects: Effects,
  ): Promise<ExecutionRow> {
    const stopped = await store.cancelUnfinishedRuns(
      tx,
      execution.id,
      `execution ${outcome.status}`,
    );
    const finished = await store.finishExecution(tx, execution, outcome);
    if (stopped > 0) effects.abortExecutions.push(execution.id);
    if (execution.parent_run_id !== null) effects.endedChildren.push(execution.id);
    if (outcome.status !== 'completed') effects.stoppedParents.push(execution.id);
    effects.changedWorkflows.push(execution.workflow_id);
    this.options.logger.info(
      { executionId: execution.id, workflowId: execution.workflow_id, status: outcome.status },
      'execution finished',
    );
    return finished;
  }

  /**
   * Records the result of one attempt, fenced by its lease: a stale holder (timed out,
   * cancelled, superseded by a redelivered job) changes nothing and gets null back.
   */
  async recordAttempt(
    runId: number,
    executionId: string,
    fence: { leaseId: string } | { attempt: number },
    result: AttemptResult,
  ): Promise<Effects | null> {
    const client = await this.options.pool.connect();
    try {
      await client.query('BEGIN');
      const execution = await store.lockExecution(client, executionId);
      const run = !execution
        ? null
        : 'leaseId' in fence
          ? await store.lockLeasedRun(client, runId, fence.leaseId)
          : await store.lockRunAttempt(client, runId, fence.attempt);
      if (!execution || !run || !['running', 'waiting', 'paused'].includes(execution.status)) {
        await client.query('ROLLBACK');
        return null;
      }
      const effects = await this.applyAttempt(client, execution, run, result);
      await client.query('COMMIT');
      return effects;
    } catch (error) {
      await client.query('ROLLBACK').catch(() => {});
      throw error;
    } finally {
      client.release();
    }
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
        await store.parkRun(tx, run.id, {
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
        await store.parkRun(tx, run.id, {
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
        await store.parkRun(tx, run.id, {
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
    const runs = await store.loadIterationRuns(tx, execution.id, execution.current_iteration);
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
  ): Promise<Effects> {
    const effects = noEffects();
    switch (result.kind) {
      case 'completed':
        await store.completeLeasedRun(tx, run.id, result.output);
        if (run.item_index < 0)
          await store.recordStepResult(tx, execution.id, run.step_id, result.output);
        return this.advance(tx, execution, effects);
      case 'sleep':
        await store.parkRun(tx, run.id, {
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
          const { attempt } = await store.scheduleRetry(tx, run.id, result.error, runAt);
          effects.jobs.push({ ...jobFor(execution, run.id, run.step_id, attempt), runAt });
          return effects;
        }
        await store.failRun(tx, run.id, result.error);
        return this.advance(tx, execution, effects);
      }
    }
  }
}
