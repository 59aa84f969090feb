import { setTimeout as delay } from 'node:timers/promises';
import { effectiveRetentionDays } from '../domain/workflow-definition.js';
import type { Log } from '../logger.js';
import { Periodic } from '../periodic.js';
import { releaseMaintenanceLock, tryMaintenanceLock } from '../store/advisory-locks.js';
import { purgeEndedOperations } from '../store/bulk-operation-store.js';
import {
  isPgError,
  type Pool,
  type PoolClient,
  SqlState,
  setLockTimeout,
  withTransaction,
} from '../store/db.js';
import {
  type ExecutionKey,
  type ExpiredExecution,
  findExpiredExecutions,
  listWorkflowRetention,
  purgeFinishedExecutions,
  purgeOldEvents,
} from '../store/execution-purge.js';
import {
  beginMaintenanceRun,
  countMaintenanceRun,
  endMaintenanceRun,
  type MaintenanceCounts,
  RETENTION_PASS,
} from '../store/maintenance-runs.js';

const BATCH_EXECUTIONS = 500;
/** A batch of executions with many runs (fan-outs) is cut to about this many step runs. */
const BATCH_STEP_RUNS = 5000;
const BATCH_EVENTS = 1000;
const OPERATIONS_PER_PASS = 20;
/** A batch that would wait this long for a lock gives up instead (the rows are left for the
 * next pass): the purge must never queue behind the engine, nor make it queue behind it. */
const LOCK_TIMEOUT_MS = 100;
const MIN_PAUSE_MS = 5;
/** The first pass comes soon after start, not a whole interval later. */
const FIRST_PASS_MAX_DELAY_MS = 60_000;

export interface RetentionReport {
  /** False when another process ran a pass at that moment: this one did nothing. */
  leader: boolean;
  executions: number;
  step_runs: number;
  events: number;
  /** Ended bulk operations (with their items) deleted. */
  operations: number;
  /** Expired executions passed over until the next pass: locked by another transaction, a
   * parent or a descendant unfinished, or a lock not granted in time. */
  skipped: number;
  batches: number;
  seconds: number;
}

export interface RetentionSweepOptions {
  pool: Pool;
  /** RETENTION_DAYS: 0 keeps everything but what a workflow's own retention_days lets go. */
  days: number;
  intervalMs: number;
  logger: Log;
  batchExecutions?: number;
  batchStepRuns?: number;
  /** Pause after each batch, as a multiple of the time the batch took (default 1). */
  pauseFactor?: number;
  /** Drops what else is kept of purged executions (their Redis event logs); best effort. */
  forget?(executionIds: readonly string[]): Promise<void>;
}

/** The executions from the start of `expired` whose runs add up to at most `cap` (at least
 * one, however many runs it has). */
function withinStepRuns(expired: readonly ExpiredExecution[], cap: number): ExpiredExecution[] {
  const batch: ExpiredExecution[] = [];
  let runs = 0;
  for (const execution of expired) {
    runs += execution.step_runs;
    if (batch.length > 0 && runs > cap) break;
    batch.push(execution);
  }
  return batch;
}

/**
 * Retention (docs/ARCHITECTURE.md, "Retention"): every interval, one process at a time (a
 * session-level advisory lock) deletes finished executions that ended longer ago than their
 * workflow keeps them, and events older than RETENTION_DAYS. Small batches, each its own short
 * transaction that waits for no lock, with a pause after each, so the engine keeps its pace.
 */
export class RetentionSweep {
  private readonly periodic: Periodic;
  private readonly stopping = new AbortController();

  constructor(private readonly options: RetentionSweepOptions) {
    this.periodic = new Periodic(
      () => this.runOnce(this.stopping.signal),
      options.intervalMs,
      (error) => options.logger.warn({ err: error }, 'retention pass failed; will try again'),
    );
  }

  start(): void {
    this.periodic.start(Math.min(this.options.intervalMs, FIRST_PASS_MAX_DELAY_MS));
  }

  /** Stops the schedule; a pass in progress stops after its current batch. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.periodic.stop();
  }

  /** One pass, if no other process runs one; `signal` ends it early, between batches. */
  async runOnce(signal?: AbortSignal): Promise<RetentionReport> {
    const started = performance.now();
    const report: RetentionReport = {
      leader: false,
      executions: 0,
      step_runs: 0,
      events: 0,
      operations: 0,
      skipped: 0,
      batches: 0,
      seconds: 0,
    };
    const lockClient = await this.options.pool.connect();
    let broken = false;
    try {
      if (!(await tryMaintenanceLock(lockClient, RETENTION_PASS))) return report;
      report.leader = true;
      try {
        await this.pass(report, signal);
      } finally {
        broken = await this.unlock(lockClient);
      }
    } finally {
      // A client whose unlock failed is dropped: closing its session frees the lock.
      lockClient.release(broken);
    }
    report.seconds = (performance.now() - started) / 1000;
    this.options.logger.info(report, 'retention pass');
    return report;
  }

  private async unlock(client: PoolClient): Promise<boolean> {
    try {
      await releaseMaintenanceLock(client, RETENTION_PASS);
      return false;
    } catch {
      return true;
    }
  }

  private async pass(report: RetentionReport, signal: AbortSignal | undefined): Promise<void> {
    const { pool, days } = this.options;
    const runId = await beginMaintenanceRun(pool, RETENTION_PASS);
    for (const workflow of await listWorkflowRetention(pool)) {
      if (signal?.aborted) break;
      const kept = effectiveRetentionDays(workflow.retention_days, days);
      if (kept > 0) await this.purgeWorkflow(runId, workflow.id, kept, report, signal);
    }
    if (days > 0) await this.purgeEvents(runId, days, report, signal);
    if (days > 0) report.operations = await purgeEndedOperations(pool, days, OPERATIONS_PER_PASS);
    await endMaintenanceRun(pool, runId);
  }

  /** A workflow's expired executions, oldest first; those passed over wait for a next pass. */
  private async purgeWorkflow(
    runId: number,
    workflowId: string,
    days: number,
    report: RetentionReport,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const limit = this.options.batchExecutions ?? BATCH_EXECUTIONS;
    let after: ExecutionKey = { created_at: null, id: '' };
    while (!signal?.aborted) {
      const expired = await findExpiredExecutions(
        this.options.pool,
        workflowId,
        days,
        after,
        limit,
      );
      const batch = withinStepRuns(expired, this.options.batchStepRuns ?? BATCH_STEP_RUNS);
      const last = batch.at(-1);
      if (!last) return;
      after = last;
      const began = performance.now();
      const ids = batch.map((execution) => execution.id);
      const purged = await this.inBatch(runId, async (tx) => {
        const result = await purgeFinishedExecutions(tx, ids);
        return { ...result, events: 0 };
      });
      report.batches += 1;
      report.executions += purged?.executions ?? 0;
      report.step_runs += purged?.step_runs ?? 0;
      report.skipped += batch.length - (purged?.deleted.length ?? 0);
      if (purged && purged.deleted.length > 0) await this.forget(purged.deleted);
      if (expired.length < limit && batch.length === expired.length) return;
      await this.pause(performance.now() - began, signal);
    }
  }

  private async purgeEvents(
    runId: number,
    days: number,
    report: RetentionReport,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    while (!signal?.aborted) {
      const began = performance.now();
      const purged = await this.inBatch(runId, async (tx) => {
        const events = await purgeOldEvents(tx, days, BATCH_EVENTS);
        return { executions: 0, step_runs: 0, events };
      });
      report.batches += 1;
      report.events += purged?.events ?? 0;
      if (!purged || purged.events < BATCH_EVENTS) return;
      await this.pause(performance.now() - began, signal);
    }
  }

  /**
   * One batch in its own transaction, counted in the pass's row in that same transaction, so
   * the counts stay exact whatever happens later. Null when a lock was not granted in time.
   */
  private async inBatch<T extends MaintenanceCounts>(
    runId: number,
    work: (tx: PoolClient) => Promise<T>,
  ): Promise<T | null> {
    try {
      return await withTransaction(this.options.pool, async (tx) => {
        await setLockTimeout(tx, LOCK_TIMEOUT_MS);
        const result = await work(tx);
        await countMaintenanceRun(tx, runId, result);
        return result;
      });
    } catch (error) {
      if (
        isPgError(error, SqlState.LOCK_NOT_AVAILABLE) ||
        isPgError(error, SqlState.DEADLOCK_DETECTED)
      ) {
        return null;
      }
      throw error;
    }
  }

  private async forget(executionIds: readonly string[]): Promise<void> {
    try {
      await this.options.forget?.(executionIds);
    } catch (error) {
      this.options.logger.warn({ err: error }, 'retention: dropping event logs failed');
    }
  }

  /** Leaves the database to the engine for as long as the batch took it (pauseFactor). */
  private async pause(batchMs: number, signal: AbortSignal | undefined): Promise<void> {
    const ms = Math.max(MIN_PAUSE_MS, batchMs * (this.options.pauseFactor ?? 1));
    await delay(ms, undefined, { signal }).catch(() => {});
  }
}
