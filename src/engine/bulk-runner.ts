import { hostname } from 'node:os';
import type { BulkAction, BulkOperation, SkipReason } from '../domain/bulk-actions.js';
import type { Log } from '../logger.js';
import { Periodic } from '../periodic.js';
import * as bulk from '../store/bulk-operation-store.js';
import type { Pool } from '../store/db.js';
import type { ExecutionFilter } from '../store/execution-filter.js';
import { type EffectSink, mergeEffects, noEffects } from './state/effects.js';
import type { ItemResult } from './state/operator-actions.js';
import type { StateManager } from './state/state-manager.js';

export interface BulkRunnerOptions {
  pool: Pool;
  state: StateManager;
  effects: EffectSink;
  /** The operation's stored filter as the store reads it (the API's fields translated). */
  filterOf: (stored: Record<string, unknown>) => ExecutionFilter;
  logger: Log;
  intervalMs?: number;
  /** Executions listed into an operation per snapshot page, and acted on per batch. */
  pageSize?: number;
  batchSize?: number;
  /** Actions in flight at once: enough to finish thousands in seconds, few enough that the
   * engine's own transactions keep their connections. */
  parallel?: number;
  leaseMs?: number;
}

/** Items acted on in one transaction: one commit (one wait for the disk) for all of them. */
const CHUNK = 25;

/** Actions that put executions back to work, which the engine must then run. */
const MAKES_WORK: ReadonlySet<BulkAction> = new Set(['retry', 'resume']);
const PACE_MAX_WAIT_MS = 5000;
const PACE_POLL_MS = 100;

/** An item that keeps throwing is recorded as failed after this many tries in one process. */
const MAX_ITEM_ERRORS = 3;

/**
 * Works bulk operations off in the background (docs/ARCHITECTURE.md, "Bulk actions"): claims
 * the oldest running one under a lease, lists what its filter matched into items a page at a
 * time, then acts on the items in batches. Each item's outcome commits with its action, and
 * the lease is renewed each batch, so a crash loses nothing: once the lease lapses another
 * process (or this one, restarted) goes on from the items still without an outcome.
 */
export class BulkRunner {
  private readonly periodic: Periodic;
  private readonly owner = `${hostname()}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  private readonly errors = new Map<string, number>();
  private readonly pageSize: number;
  private readonly batchSize: number;
  private readonly parallel: number;
  private readonly leaseMs: number;
  private stopping = false;

  constructor(private readonly options: BulkRunnerOptions) {
    this.pageSize = options.pageSize ?? 5000;
    this.batchSize = options.batchSize ?? 200;
    this.parallel = options.parallel ?? 8;
    this.leaseMs = options.leaseMs ?? 30_000;
    this.periodic = new Periodic(
      () => this.pass(),
      options.intervalMs ?? 1000,
      (error) => options.logger.warn({ err: error }, 'bulk operation pass failed; will go on'),
    );
  }

  start(): void {
    this.stopping = false;
    this.periodic.start();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.periodic.stop();
  }

  /** Works on operations until none is left to claim; returns how many it worked on. */
  async pass(): Promise<number> {
    let worked = 0;
    while (!this.stopping) {
      const op = await bulk.claimOperation(this.options.pool, this.owner, this.leaseMs);
      if (!op) break;
      worked += 1;
      await this.run(op);
    }
    return worked;
  }

  private async run(op: BulkOperation & { taken_over: boolean }): Promise<void> {
    const { pool, logger } = this.options;
    if (op.taken_over) await bulk.recount(pool, op.id);
    const filter = this.options.filterOf(op.filter);
    let snapshotDone = op.snapshot_done;
    while (!this.stopping) {
      if (!(await bulk.renewLease(pool, op.id, this.owner, this.leaseMs))) {
        // Cancelled (or taken over): the counts of the batch that was in flight are in the
        // items, not yet in the operation.
        await bulk.recount(pool, op.id);
        return;
      }
      if (!snapshotDone) {
        if (!(await bulk.snapshotPage(pool, op, this.owner, filter, this.pageSize))) return;
        snapshotDone = (await bulk.getOperation(pool, op.id))?.snapshot_done ?? true;
        continue;
      }
      const items = await bulk.pendingItems(pool, op.id, this.batchSize);
      if (items.length === 0) {
        await bulk.recount(pool, op.id);
        await bulk.endOperation(pool, op.id, this.owner, 'completed');
        logger.info({ operationId: op.id, action: op.action }, 'bulk operation completed');
        return;
      }
      const { counts, done } = await this.actOnBatch(op, items);
      await bulk.addCounts(pool, op.id, this.owner, counts);
      if (MAKES_WORK.has(op.action)) await this.letDrain(done);
    }
  }

  /**
   * Acts on a batch: chunks of CHUNK items, each in one transaction, `parallel` chunks at a
   * time; counts what it came to. The batch's effects (its jobs) go to Redis in one go once
   * all of it committed: a crash before that leaves committed work without jobs, which the
   * recovery sweep enqueues, as after any commit.
   */
  private async actOnBatch(
    op: BulkOperation,
    items: string[],
  ): Promise<{ counts: bulk.BatchCounts; done: string[] }> {
    const counts: bulk.BatchCounts = { done: 0, failed: 0, skipped: {} };
    const done: string[] = [];
    const effects = noEffects();
    const chunks: string[][] = [];
    for (let at = 0; at < items.length; at += CHUNK) chunks.push(items.slice(at, at + CHUNK));
    const lane = async () => {
      for (let chunk = chunks.shift(); chunk !== undefined; chunk = chunks.shift()) {
        const acted = await this.options.state.actOnItems(
          op.action,
          chunk,
          { actor: op.requested_by, reason: op.reason, operationId: op.id, params: op.params },
          (tx, id, outcome) => bulk.recordOutcome(tx, op.id, id, outcome),
        );
        mergeEffects(effects, acted.effects);
        for (const [id, result] of acted.results) {
          const outcome = await this.settle(op.id, id, result);
          if (outcome === 'done') done.push(id);
          if (outcome === 'done') counts.done += 1;
          else if (outcome === 'failed') counts.failed += 1;
          else if (outcome) counts.skipped[outcome] = (counts.skipped[outcome] ?? 0) + 1;
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(this.parallel, chunks.length) }, lane));
    } finally {
      await this.options.effects.apply(effects);
    }
    return { counts, done };
  }

  /**
   * Waits, at most PACE_MAX_WAIT_MS, until at most half of the executions the last batch put
   * back to work are still unfinished: a bulk retry of thousands then feeds the queue a
   * batch at a time instead of putting all of them ahead of everyone else's work, and an
   * execution that runs for hours holds the operation back a few seconds, not for hours.
   */
  private async letDrain(ids: string[]): Promise<void> {
    const deadline = Date.now() + PACE_MAX_WAIT_MS;
    while (!this.stopping && ids.length > 0 && Date.now() < deadline) {
      if ((await bulk.unfinishedAmong(this.options.pool, ids)) <= ids.length / 2) return;
      await new Promise((resolve) => setTimeout(resolve, PACE_POLL_MS));
    }
  }

  /**
   * What an item's result counts as. An item that threw stays pending (the next batch tries
   * it again) until it has thrown MAX_ITEM_ERRORS times here: then it is recorded as failed,
   * so one bad execution cannot hold the operation forever.
   */
  private async settle(
    operationId: string,
    executionId: string,
    result: ItemResult,
  ): Promise<'done' | 'failed' | SkipReason | null> {
    const key = `${operationId}/${executionId}`;
    if (result === null) return null;
    if (!('error' in result)) {
      this.errors.delete(key);
      return result.outcome === 'skipped'
        ? result.reason
        : result.outcome === 'done'
          ? 'done'
          : 'failed';
    }
    const tries = (this.errors.get(key) ?? 0) + 1;
    this.errors.set(key, tries);
    this.options.logger.warn(
      { err: result.error, operationId, executionId, tries },
      'bulk action on an execution failed',
    );
    if (tries < MAX_ITEM_ERRORS) return null;
    this.errors.delete(key);
    const message = result.error instanceof Error ? result.error.message : String(result.error);
    const outcome = { outcome: 'failed' as const, detail: message.slice(0, 1000) };
    return (await bulk.recordOutcome(this.options.pool, operationId, executionId, outcome))
      ? 'failed'
      : null;
  }
}
