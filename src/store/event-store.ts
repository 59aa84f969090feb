import type { WaitingRun } from '../domain/execution.js';
import type { Queryable } from './db.js';
import { RUNNING_EXECUTION_STATUSES } from './sql-statuses.js';

/** SQL for events (POST /events) and for the runs that wait for them. */

export interface EventRow {
  id: string;
  type: string;
  data: Record<string, unknown>;
  correlation_key: string | null;
  received_at: Date;
  started_executions: string[];
  resumed_steps: Array<{ execution_id: string; step_id: string }>;
}

/** Serialises, per event type, the delivery of an event with a run starting to wait for one,
 * so that neither can miss the other (see EventManager). */
export async function lockEventType(db: Queryable, type: string): Promise<void> {
  await db.query("SELECT pg_advisory_xact_lock(hashtext('workflow-event:' || $1))", [type]);
}

/** Stores an event; null when an event with this id was delivered before. */
export async function insertEvent(
  db: Queryable,
  event: { id: string; type: string; data: unknown; correlationKey: string | null },
): Promise<EventRow | null> {
  const { rows } = await db.query<EventRow>(
    `INSERT INTO events (id, type, data, correlation_key) VALUES ($1, $2, $3, $4)
     ON CONFLICT (id) DO NOTHING RETURNING *`,
    [event.id, event.type, JSON.stringify(event.data ?? {}), event.correlationKey],
  );
  return rows[0] ?? null;
}

export async function getEvent(db: Queryable, id: string): Promise<EventRow | null> {
  const { rows } = await db.query<EventRow>('SELECT * FROM events WHERE id = $1', [id]);
  return rows[0] ?? null;
}

export async function recordEventOutcome(
  db: Queryable,
  id: string,
  startedExecutions: readonly string[],
  resumedSteps: ReadonlyArray<{ execution_id: string; step_id: string }>,
): Promise<EventRow> {
  const { rows } = await db.query<EventRow>(
    `UPDATE events SET started_executions = $2, resumed_steps = $3 WHERE id = $1 RETURNING *`,
    [id, startedExecutions, JSON.stringify(resumedSteps)],
  );
  return rows[0] as EventRow;
}

/** Active event-driven workflows whose trigger names this event type. */
export async function findTriggeredWorkflows(
  db: Queryable,
  type: string,
): Promise<Array<{ id: string; filter: string | null }>> {
  const { rows } = await db.query<{ id: string; filter: string | null }>(
    `SELECT id, config->'trigger'->>'filter' AS filter FROM workflows
      WHERE status = 'active' AND workflow_type = 'event_driven' AND config->'trigger'->>'event' = $1
      ORDER BY created_at, id`,
    [type],
  );
  return rows;
}

/** A run waiting for an event, with what its match expression may read. */
export type WaitingEventRun = WaitingRun<'event'> & {
  workflow_id: string;
  workflow_version: number;
  input_data: unknown;
};

/** Runs of unfinished executions waiting for this event type (and correlation key, if they set one). */
export async function findWaitingEventRuns(
  db: Queryable,
  type: string,
  correlationKey: string | null,
): Promise<WaitingEventRun[]> {
  const { rows } = await db.query<WaitingEventRun>(
    `SELECT s.*, e.workflow_id, e.workflow_version, e.input_data
       FROM step_executions s JOIN workflow_executions e ON e.id = s.execution_id
      WHERE s.status = 'waiting' AND s.wait_kind = 'event' AND s.wait_spec->>'event' = $1
        AND (s.wait_spec->>'correlation_key' IS NULL OR s.wait_spec->>'correlation_key' = $2)
        AND e.status = ANY($3::text[])
      ORDER BY s.id`,
    [type, correlationKey, RUNNING_EXECUTION_STATUSES],
  );
  return rows;
}

/** Events of a type received since `since`, oldest first: what a run that starts waiting
 * may have just missed. */
export async function findRecentEvents(
  db: Queryable,
  type: string,
  correlationKey: string | null,
  since: Date,
): Promise<EventRow[]> {
  const { rows } = await db.query<EventRow>(
    `SELECT * FROM events
      WHERE type = $1 AND received_at >= $2 AND ($3::text IS NULL OR correlation_key = $3)
      ORDER BY received_at, id LIMIT 100`,
    [type, since, correlationKey],
  );
  return rows;
}

export async function appendResumedStep(
  db: Queryable,
  eventId: string,
  resumed: { execution_id: string; step_id: string },
): Promise<void> {
  await db.query(`UPDATE events SET resumed_steps = resumed_steps || $2::jsonb WHERE id = $1`, [
    eventId,
    JSON.stringify([resumed]),
  ]);
}

export interface EventFilters {
  type?: string | undefined;
  correlationKey?: string | undefined;
  receivedAfter?: Date | undefined;
  receivedBefore?: Date | undefined;
  after?: { createdAt: string; id: string } | undefined;
  limit: number;
}

export async function listEvents(
  db: Queryable,
  filters: EventFilters,
): Promise<Array<EventRow & { received_at_key: string }>> {
  const { rows } = await db.query<EventRow & { received_at_key: string }>(
    `SELECT *, to_char(received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS received_at_key
       FROM events
      WHERE ($1::text IS NULL OR type = $1)
        AND ($2::text IS NULL OR correlation_key = $2)
        AND ($3::timestamptz IS NULL OR received_at >= $3)
        AND ($4::timestamptz IS NULL OR received_at < $4)
        AND ($5::timestamptz IS NULL OR (received_at, id) < ($5::timestamptz, $6::text))
      ORDER BY received_at DESC, id DESC
      LIMIT $7`,
    [
      filters.type ?? null,
      filters.correlationKey ?? null,
      filters.receivedAfter ?? null,
      filters.receivedBefore ?? null,
      filters.after?.createdAt ?? null,
      filters.after?.id ?? null,
      filters.limit,
    ],
  );
  return rows;
}
