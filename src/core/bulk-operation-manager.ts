import { randomBytes } from 'node:crypto';
import type { z } from 'zod';
import { BULK_ACTION_ROLES, type BulkOperation, DRY_RUN_SAMPLE } from '../domain/bulk-actions.js';
import { roleAtLeast } from '../domain/roles.js';
import { ForbiddenError, OperationEndedError, OperationNotFoundError } from '../errors.js';
import type { bulkRequestSchema, dryRunSchema, OperationView } from '../schemas/bulk-operations.js';
import * as bulk from '../store/bulk-operation-store.js';
import type { Pool } from '../store/db.js';
import { countMatching } from '../store/execution-filter.js';
import { type FilterFields, filterOf } from './execution-filters.js';

export type BulkRequest = z.output<typeof bulkRequestSchema>;
export type DryRun = z.infer<typeof dryRunSchema>;

/** Who asks: their role decides whether they may delete. */
export interface Requester {
  id: string;
  role: Parameters<typeof roleAtLeast>[0];
}

const iso = (value: Date | null) => (value ? value.toISOString() : null);

export function operationView(op: BulkOperation): OperationView {
  return {
    id: op.id,
    action: op.action,
    filter: op.filter,
    to_version: op.params.to_version ?? null,
    reason: op.reason,
    requested_by: op.requested_by,
    status: op.status,
    matched: op.matched,
    counting: !op.snapshot_done && op.status === 'running',
    done: op.done,
    skipped: op.skipped,
    skipped_by_reason: op.skipped_by_reason,
    failed: op.failed,
    error: op.error,
    created_at: op.created_at.toISOString(),
    started_at: iso(op.started_at),
    ended_at: iso(op.ended_at),
  };
}

/** The stored filter as the store reads it: the same translation the list uses. */
export function storedFilter(filter: Record<string, unknown>) {
  return filterOf(filter as FilterFields);
}

/**
 * Bulk actions (README "Operations"): a dry run counts what the filter matches; a real one
 * is stored as an operation that the workers' bulk runner carries out in the background.
 */
export class BulkOperationManager {
  constructor(private readonly pool: Pool) {}

  /** The dry run, or the operation started: the caller's role must allow the action. */
  async request(
    body: BulkRequest,
    requester: Requester | null,
  ): Promise<{ dryRun: DryRun } | { operation: OperationView }> {
    const needed = BULK_ACTION_ROLES[body.action];
    const held = requester?.role ?? null;
    if (!roleAtLeast(held, needed)) throw new ForbiddenError(needed, held ?? 'no role');
    const { all: _all, ...fields } = body.filter;
    if (body.dry_run) {
      const { matched, sample } = await countMatching(
        this.pool,
        filterOf(fields as FilterFields),
        DRY_RUN_SAMPLE,
      );
      return { dryRun: { action: body.action, dry_run: true, matched, sample } };
    }
    const op = await bulk.insertOperation(this.pool, {
      id: `op_${randomBytes(12).toString('base64url')}`,
      action: body.action,
      filter: fields,
      params: body.to_version === undefined ? {} : { to_version: body.to_version },
      reason: body.reason ?? null,
      requestedBy: requester?.id ?? null,
    });
    return { operation: operationView(op) };
  }

  async get(id: string): Promise<OperationView> {
    const op = await bulk.getOperation(this.pool, id);
    if (!op) throw new OperationNotFoundError(id);
    return operationView(op);
  }

  async list(limit: number): Promise<{ items: OperationView[] }> {
    return { items: (await bulk.listOperations(this.pool, limit)).map(operationView) };
  }

  /** Stops a running operation where it is; cancelling a cancelled one changes nothing. */
  async cancel(id: string): Promise<OperationView> {
    const op = await bulk.cancelOperation(this.pool, id);
    if (!op) throw new OperationNotFoundError(id);
    if (op.status === 'completed' || op.status === 'failed') {
      throw new OperationEndedError(id, op.status);
    }
    return operationView(op);
  }
}
