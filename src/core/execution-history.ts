import type { ExecutionRow } from '../domain/execution.js';
import { InvalidCursorError } from '../errors.js';
import type { HistoryEntry } from '../schemas/execution-history.js';
import type { ActionRow } from '../store/execution-actions.js';
import type { HistoryRun } from '../store/execution-history.js';

/**
 * An execution's history (README "History"; docs/ARCHITECTURE.md "History"): its start, each
 * step run's start, wait and end derived from the runs, the recorded manual actions, and its
 * end, in time order. Only the manual actions are stored for it.
 */

/** Ties at the same instant: a start before a wait before an end, actions in between. */
const RANK: Record<HistoryEntry['kind'], number> = {
  started: 0,
  step_started: 1,
  step_waiting: 2,
  action: 3,
  step_ended: 4,
  ended: 5,
};

function startEntry(execution: ExecutionRow): HistoryEntry {
  const trigger = execution.trigger ?? {};
  const caller = trigger.caller;
  return {
    at: (execution.started_at ?? execution.created_at).toISOString(),
    kind: 'started',
    trigger: typeof trigger.type === 'string' ? trigger.type : 'api',
    caller: typeof caller === 'string' ? caller : null,
    trigger_detail: trigger,
    parent_execution_id: execution.parent_execution_id,
  };
}

function runEntries(run: HistoryRun): HistoryEntry[] {
  const step = {
    step_id: run.step_id,
    iteration: run.iteration,
    attempt: run.attempt,
    ...(run.item_count !== null
      ? { items: { total: run.item_count, done: run.items_done, failed: run.items_failed } }
      : {}),
  };
  const entries: HistoryEntry[] = [];
  if (run.started_at)
    entries.push({ at: run.started_at.toISOString(), kind: 'step_started', ...step });
  if (run.status === 'waiting' || (run.status === 'pending' && run.wait_reason)) {
    entries.push({
      at: run.updated_at.toISOString(),
      kind: 'step_waiting',
      ...step,
      step_status: run.status,
      wait_kind: run.wait_kind,
      wait_reason: run.wait_reason,
    });
  }
  if (run.completed_at) {
    entries.push({
      at: run.completed_at.toISOString(),
      kind: 'step_ended',
      ...step,
      step_status: run.status,
      ...(run.error ? { error: run.error } : {}),
      ...(run.wait_reason ? { wait_reason: run.wait_reason } : {}),
    });
  }
  return entries;
}

function actionEntry(row: ActionRow): HistoryEntry {
  return {
    at: row.created_at.toISOString(),
    kind: 'action',
    action: row.action,
    actor: row.actor,
    reason: row.reason,
    detail: row.detail,
  };
}

/** Every entry of the history, oldest first. */
export function historyOf(
  execution: ExecutionRow,
  runs: HistoryRun[],
  actions: ActionRow[],
): HistoryEntry[] {
  const entries = [startEntry(execution), ...runs.flatMap(runEntries), ...actions.map(actionEntry)];
  if (execution.completed_at) {
    entries.push({
      at: execution.completed_at.toISOString(),
      kind: 'ended',
      status: execution.status,
      ...(execution.error ? { error: execution.error } : {}),
    });
  }
  // A stable sort: entries at the same instant keep their kind's order, then their own.
  return entries
    .map((entry, position) => ({ entry, position }))
    .sort(
      (a, b) =>
        a.entry.at.localeCompare(b.entry.at) ||
        RANK[a.entry.kind] - RANK[b.entry.kind] ||
        a.position - b.position,
    )
    .map(({ entry }) => entry);
}

/** A page of the history: `cursor` is the opaque position of the next entry. */
export function historyPage(
  entries: HistoryEntry[],
  limit: number,
  cursor: string | undefined,
): { items: HistoryEntry[]; next_cursor: string | null } {
  const from = cursor === undefined ? 0 : decodePosition(cursor);
  const items = entries.slice(from, from + limit);
  const next = from + items.length;
  return { items, next_cursor: next < entries.length ? encodePosition(next) : null };
}

function encodePosition(position: number): string {
  return Buffer.from(JSON.stringify({ p: position })).toString('base64url');
}

function decodePosition(cursor: string): number {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    const position =
      parsed && typeof parsed === 'object' && 'p' in parsed ? (parsed as { p: unknown }).p : null;
    if (typeof position === 'number' && Number.isInteger(position) && position >= 0) {
      return position;
    }
  } catch {
    // Not JSON: refused below like any other cursor this service did not issue.
  }
  throw new InvalidCursorError('not a history position');
}
