import type { Queryable } from './db.js';

/**
 * The record of manual actions on executions (cancel, pause, resume, retry, edit, upgrade):
 * written by the action's own transaction, read by GET /executions/{id}/history
 * (docs/ARCHITECTURE.md, "History").
 */

export interface ActionEntry {
  executionId: string;
  action: string;
  /** Who asked: the credential's key id or token subject; null when unknown. */
  actor: string | null;
  reason: string | null;
  /** For edits: `{ before, after }` of what changed; otherwise what the action touched. */
  detail?: Record<string, unknown>;
}

export interface ActionRow {
  id: string;
  action: string;
  actor: string | null;
  reason: string | null;
  detail: Record<string, unknown>;
  created_at: Date;
}

/** Records one action in the caller's transaction, so it commits with the action or not at all. */
export async function recordAction(tx: Queryable, entry: ActionEntry): Promise<void> {
  await tx.query(
    `INSERT INTO execution_actions (execution_id, action, actor, reason, detail)
     VALUES ($1, $2, $3, $4, $5)`,
    [
      entry.executionId,
      entry.action,
      entry.actor,
      entry.reason,
      JSON.stringify(entry.detail ?? {}),
    ],
  );
}

/** The actions on an execution, oldest first. */
export async function listActions(db: Queryable, executionId: string): Promise<ActionRow[]> {
  const { rows } = await db.query<ActionRow>(
    `SELECT id::text AS id, action, actor, reason, detail, created_at
       FROM execution_actions WHERE execution_id = $1 ORDER BY id`,
    [executionId],
  );
  return rows;
}
