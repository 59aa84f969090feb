import { hostname } from 'node:os';
import type { BulkAction, BulkOperation, SkipReason } from '../domain/bulk-actions.js';
import type { Log } from '../logger.js';
import { Periodic } from '../periodic.js';
import * as bulk from '../store/bulk-operation-store.js';
import type { Pool } from '../store/db.js';
import type { ExecutionFilter } from '../store/execution-filter.js';
import type { EffectSink } from './state/effects.js';
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
      await bulk.addCounts(pool, op.id, this.owner, await this.actOnBatch(op, items));
    }
  }

  /** Acts on a batch, `parallel` at a time, and counts what it came to. */
  private async actOnBatch(op: BulkOperation, items: string[]): Promise<bulk.BatchCounts> {
    const counts: bulk.BatchCounts = { done: 0, failed: 0, skipped: {} };
    const queue = [...items];
    const lane = async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) {
        const outcome = await this.actOnItem(op.id, op.action, id);
        if (outcome === 'done') counts.done += 1;
        else if (outcome === 'failed') counts.failed += 1;
        else if (outcome) counts.skipped[outcome] = (counts.skipped[outcome] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.parallel, items.length) }, lane));
    return counts;
  }

  /**
   * One item: its outcome, or null when it was not ours to record (another process recorded
   * it, or the operation was cancelled). An error stops the batch (Postgres may be away) until
   * the same item has failed MAX_ITEM_ERRORS times here: then it is recorded as failed.
   */
  private async actOnItem(
    operationId: string,
    action: BulkAction,
    executionId: string,
  ): Promise<'done' | 'failed' | SkipReason | null> {
    let recorded: 'done' | SkipReason | null = null;
    const key = `${operationId}/${executionId}`;
    try {
      const effects = await this.options.state.actOnItem(
        action,
        executionId,
        async (tx, outcome) => {
          recorded = outcome.outcome === 'skipped' ? outcome.reason : 'done';
          return bulk.recordOutcome(tx, operationId, executionId, outcome);
        },
      );
      this.errors.delete(key);
      if (!effects) return null;
      await this.options.effects.apply(effects);
      return recorded;
    } catch (error) {
      const tries = (this.errors.get(key) ?? 0) + 1;
      this.errors.set(key, tries);
      if (tries < MAX_ITEM_ERRORS) throw error;
      this.errors.delete(key);
      const detail = error instanceof Error ? error.message : String(error);
      const outcome = { outcome: 'failed' as const, detail: detail.slice(0, 1000) };
      return (await bulk.recordOutcome(this.options.pool, operationId, executionId, outcome))
        ? 'failed'
        : null;
    }
  }
}
