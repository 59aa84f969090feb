import { UNFINISHED_EXECUTION_STATUSES } from '../domain/statuses.js';
import type { Log } from '../logger.js';
import { Periodic } from '../periodic.js';
import { type Pool, withTransaction } from '../store/db.js';
import { findIdleQueued } from '../store/execution-slots.js';
import { idleWaitingKeys } from '../store/limit-slots.js';
import * as sweep from '../store/sweep-queries.js';
import * as taskStore from '../store/task-store.js';
import { foldCounterDeltas } from '../store/workflow-counter-store.js';
import {
  type EffectSink,
  type Effects,
  type ExecutionLinks,
  executionOfRun,
  jobOfRun,
  mergeEffects,
  noEffects,
  turnOf,
} from './state/effects.js';
import { releaseLimitKeys } from './state/limit-release.js';
import { ANY_EXECUTION_STATUS, withLockedExecution } from './state/lock.js';
import type { StateManager } from './state/state-manager.js';
import type { StepQueue } from './step-queue.js';

// One sweeper at a time across all processes: the others skip their turn.
const SWEEP_LOCK_KEY = 7_210_492_602;
const BATCH = 200;
const QUEUED = ['queued'] as const;
/** Grace after an attempt's deadline before the sweep declares it timed out, so the worker's
 * own timer (which aborts the handler) normally wins. */
const DEADLINE_GRACE_MS = 1000;

export interface SweepReport {
  leader: boolean;
  timedOutExecutions: number;
  expiredAttempts: number;
  requeued: number;
  advanced: number;
}

export interface RecoverySweepOptions {
  pool: Pool;
  state: StateManager;
  queue: StepQueue;
  effects: EffectSink;
  intervalMs: number;
  staleAfterMs: number;
  logger: Log;
  links: ExecutionLinks;
  /** Told what each scheduled pass did (metrics). */
  onReport?(report: SweepReport): void;
}

/**
 * Re-derives from Postgres what must happen and makes it happen: the safety net under every
 * crash window (process killed between commit and enqueue, worker killed mid-step, Redis
 * emptied, an external answer that never came). Every action is idempotent.
 */
export class RecoverySweep {
  private readonly periodic: Periodic;

  constructor(private readonly options: RecoverySweepOptions) {
    this.periodic = new Periodic(
      async () => this.options.onReport?.(await this.sweepOnce()),
      options.intervalMs,
      (error) => options.logger.warn({ err: error }, 'recovery sweep failed; will try again'),
    );
  }

  start(): void {
    this.periodic.start();
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
  }

  /** One pass, if this process wins the sweep lock. */
  async sweepOnce(): Promise<SweepReport> {
    const report: SweepReport = {
      leader: false,
      timedOutExecutions: 0,
      expiredAttempts: 0,
      requeued: 0,
      advanced: 0,
    };
    const lockClient = await this.options.pool.connect();
    try {
      const { rows } = await lockClient.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock($1) AS locked',
        [SWEEP_LOCK_KEY],
      );
      if (!rows[0]?.locked) return report;
      report.leader = true;
      try {
        await this.sweep(report);
      } finally {
        await lockClient.query('SELECT pg_advisory_unlock($1)', [SWEEP_LOCK_KEY]);
      }
    } finally {
      lockClient.release();
    }
    if (
      report.timedOutExecutions + report.expiredAttempts + report.requeued + report.advanced >
      0
    ) {
      this.options.logger.info(report, 'recovery sweep acted');
    }
    return report;
  }

  private async sweep(report: SweepReport): Promise<void> {
    const effects = noEffects();
    await this.timeOutExecutions(effects, report);
    await this.expireAttempts(effects, report);
    await this.resumeWaits(effects, report);
    await this.requeueStale(effects, report);
    await this.nudgeIdle(effects, report);
    await this.admitIdleQueued(effects, report);
    await this.releaseIdleLimitWaiters(effects, report);
    await this.options.effects.apply(effects);
    // Workflows' counters: executions count themselves as deltas; the leader folds them.
    await foldCounterDeltas(this.options.pool);
  }

  private async timeOutExecutions(effects: Effects, report: SweepReport): Promise<void> {
    const { pool, state } = this.options;
    for (const executionId of await sweep.findOverdueExecutions(pool, BATCH)) {
      await withLockedExecution(
        pool,
        executionId,
        UNFINISHED_EXECUTION_STATUSES,
        async (tx, execution) => {
          await state.finish(
            tx,
            execution,
            { status: 'timed_out', error: 'Execution exceeded its timeout' },
            effects,
          );
          report.timedOutExecutions += 1;
        },
      );
    }
  }

  /** Attempts past their deadline, and tasks whose worker stopped heartbeating, fail
   * (retryable), fenced by their attempt like any other result. */
  private async expireAttempts(effects: Effects, report: SweepReport): Promise<void> {
    const { pool, state } = this.options;
    const expire = async (
      run: { id: number; execution_id: string; attempt: number },
      message: string,
      type: string,
    ) => {
      const result = await state.recordAttempt(
        run.id,
        run.execution_id,
        { attempt: run.attempt },
        { kind: 'failed', error: { message, type, retryable: true, attempt: run.attempt } },
      );
      if (result) {
        mergeEffects(effects, result);
        report.expiredAttempts += 1;
      }
    };
    for (const run of await sweep.findOverdueRuns(pool, DEADLINE_GRACE_MS, BATCH)) {
      const message =
        run.status === 'waiting'
          ? `no answer before the step timeout (${run.wait_reason ?? 'waiting'})`
          : 'attempt exceeded its timeout; its worker did not report back';
      await expire(run, message, 'timeout');
    }
    for (const task of await taskStore.findExpiredTaskLeases(pool, BATCH)) {
      const message = `worker ${task.worker_id ?? 'unknown'} stopped heartbeating; the task goes back to the pool`;
      await expire(task, message, 'heartbeat_timeout');
    }
  }

  private async resumeWaits(effects: Effects, report: SweepReport): Promise<void> {
    const { pool, state, staleAfterMs } = this.options;
    // An event stored by a process that died before resuming its waiting runs.
    for (const idle of await sweep.findIdleEventWaits(pool, staleAfterMs, BATCH)) {
      if (await state.retakeBufferedEvent(idle, effects)) report.advanced += 1;
    }
    // Sub-workflow follow-ups that a crash cut short after their commit.
    for (const { child_id: childId } of await sweep.findEndedChildWaits(pool, BATCH)) {
      mergeEffects(effects, await this.options.links.childEnded(childId));
      report.advanced += 1;
    }
    for (const childId of await sweep.findOrphanedChildren(pool, BATCH)) {
      await withLockedExecution(pool, childId, UNFINISHED_EXECUTION_STATUSES, async (tx, child) => {
        await state.finish(
          tx,
          child,
          { status: 'cancelled', error: 'Parent execution ended' },
          effects,
        );
        report.advanced += 1;
      });
    }
  }

  /** Runs queued, running or sleeping for long with no job in the queue get their job again. */
  private async requeueStale(effects: Effects, report: SweepReport): Promise<void> {
    const { pool, queue, staleAfterMs } = this.options;
    const queued = await sweep.findStaleQueuedRuns(pool, staleAfterMs, BATCH);
    const stuck = [];
    for (const run of await sweep.findStaleActiveRuns(pool, staleAfterMs, BATCH)) {
      const wake = run.status === 'waiting';
      const turn = turnOf(run);
      const live =
        (await queue.hasJob({ runId: run.id, attempt: run.attempt, wake, turn })) ||
        (!wake && (await queue.hasJob({ runId: run.id, attempt: run.attempt, wake: true })));
      if (!live) stuck.push(run);
    }
    for (const run of [...queued, ...stuck]) {
      const wake = run.status === 'waiting';
      effects.jobs.push({
        ...jobOfRun(executionOfRun(run), run),
        ...(run.wake_at ? { runAt: run.wake_at } : {}),
        ...(wake ? { wake } : {}),
      });
    }
    await sweep.touchRuns(
      pool,
      [...queued, ...stuck].map((run) => run.id),
    );
    report.requeued += queued.length + stuck.length;
  }

  /**
   * Queued executions nothing moved for long: never admitted (their advance job was lost), or
   * first in a line whose slot freed while its end passed over them. Admitted again, once
   * per key and sweep: an admission fills every free slot of its key.
   */
  private async admitIdleQueued(effects: Effects, report: SweepReport): Promise<void> {
    const { pool, state, staleAfterMs } = this.options;
    for (const { id } of await findIdleQueued(pool, staleAfterMs, BATCH)) {
      const before = effects.jobs.length + effects.advanceExecutions.length;
      await withLockedExecution(pool, id, QUEUED, async (tx, execution) => {
        await state.advance(tx, execution, effects);
        await sweep.touchExecution(tx, id);
      });
      if (effects.jobs.length + effects.advanceExecutions.length > before) report.advanced += 1;
    }
  }

  /**
   * Runs waiting long for a slot of a named limit: a hand-off passed them over (locked at that
   * moment), or the limit was raised or deleted since. Each key gives what room it has.
   */
  private async releaseIdleLimitWaiters(effects: Effects, report: SweepReport): Promise<void> {
    const { pool, staleAfterMs } = this.options;
    const keys = await idleWaitingKeys(pool, staleAfterMs, BATCH);
    if (keys.length === 0) return;
    const before = effects.jobs.length;
    await withTransaction(pool, (tx) => releaseLimitKeys(tx, keys, effects));
    report.requeued += effects.jobs.length - before;
  }

  /** Executions nothing happened to for long: the scheduler runs on them once more. */
  private async nudgeIdle(effects: Effects, report: SweepReport): Promise<void> {
    const { pool, state, staleAfterMs } = this.options;
    for (const executionId of await sweep.findIdleExecutions(pool, staleAfterMs, BATCH)) {
      const before = effects.jobs.length;
      await withLockedExecution(pool, executionId, ANY_EXECUTION_STATUS, async (tx, execution) => {
        await state.advance(tx, execution, effects);
        await sweep.touchExecution(tx, executionId);
      });
      if (effects.jobs.length > before) report.advanced += 1;
    }
  }
}
