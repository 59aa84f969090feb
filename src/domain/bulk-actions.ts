import type { Role } from './roles.js';
import type { BulkOperationStatus, ExecutionStatus } from './statuses.js';

/**
 * Bulk actions (README "Operations"): what an operation may do to every execution its filter
 * matched, the least role that may ask for it, and why an execution is skipped.
 */
export const BULK_ACTIONS = ['cancel', 'retry', 'pause', 'resume', 'delete', 'upgrade'] as const;
export type BulkAction = (typeof BULK_ACTIONS)[number];

export const BULK_ACTION_ROLES: Record<BulkAction, Role> = {
  cancel: 'operator',
  retry: 'operator',
  pause: 'operator',
  resume: 'operator',
  upgrade: 'operator',
  // Deleting loses history for good.
  delete: 'admin',
};

/** Stable codes of why an execution was skipped, counted per operation. */
export const SKIP_REASONS = [
  'already_finished',
  'not_failed',
  'not_running',
  'not_paused',
  'unfinished',
  'has_unfinished_children',
  'parent_unfinished',
  'not_found',
  // upgrade: a status that cannot be upgraded; the gate refused (README "Versions, upgrades
  // and edits"); the execution's workflow has no such version.
  'not_upgradable',
  'incompatible',
  'no_such_version',
] as const;
export type SkipReason = (typeof SKIP_REASONS)[number];

/** Items a dry run lists: the newest of those matched. */
export const DRY_RUN_SAMPLE = 20;

/** What an action needs beyond the filter: upgrade's target version. */
export interface ActionParams {
  to_version?: number;
}

export interface BulkOperation {
  id: string;
  action: BulkAction;
  filter: Record<string, unknown>;
  params: ActionParams;
  reason: string | null;
  requested_by: string | null;
  status: BulkOperationStatus;
  matched: number;
  done: number;
  failed: number;
  skipped: number;
  skipped_by_reason: Partial<Record<SkipReason, number>>;
  /** False while the matching executions are still being listed into the operation. */
  snapshot_done: boolean;
  error: string | null;
  created_at: Date;
  started_at: Date | null;
  ended_at: Date | null;
}

/** What one item's action came to. */
export type ItemOutcome =
  | { outcome: 'done' }
  | { outcome: 'skipped'; reason: SkipReason }
  | { outcome: 'failed'; detail: string };

/** The statuses that let an execution take the action; else it is skipped with `reason`. */
export interface ActionRule {
  allowed: readonly ExecutionStatus[];
  skip: SkipReason;
}
