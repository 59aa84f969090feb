import { retryDelayMs } from '../engine/retry-policy.js';
import { schedule, sinkSteps } from '../engine/scheduler.js';
import type { ExpressionContext } from '../engine/steps/types.js';
import type { Log } from '../logger.js';
import type { Pool, Queryable } from '../store/db.js';
import type {
  ExecutionRow,
  StepErrorRecord,
  StepJob,
  StepRunRow,
} from '../store/execution-store.js';
import * as store from '../store/execution-store.js';
import { type Effects, noEffects } from './effects.js';
import { evaluateCondition, evaluateExpression } from './expressions.js';
import type { StepDefinition, WorkflowDefinition } from './workflow-definition.js';

/** Bound on scheduler passes per transaction: every pass changes at least one run, so this
 * only trips on a bug, and then fails loudly instead of spinning. */
const MAX_PASSES = 10_000;
const DEFINITION_CACHE_SIZE = 500;

export interface StateManagerOptions {
  pool: Pool;
  expressionTimeoutMs: number;
  logger: Log;
}

/** What the engine learned from one attempt of a step. */
export type AttemptResult =
  | { kind: 'completed'; output: unknown }
  | { kind: 'sleep'; until: Date; output?: unknown }
  | { kind: 'wait'; reason: string }
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
        await store.parkRun(tx, run.id, { reason: result.reason, wakeAt: null });
        return this.advance(tx, execution, effects);
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
