import { randomBytes } from 'node:crypto';
import type { ExecutionTraceContext } from '../domain/trace-context.js';
import { evaluateCondition } from '../engine/expressions.js';
import { type EffectSink, noEffects } from '../engine/state/effects.js';
import type { StateManager } from '../engine/state/state-manager.js';
import { eventOutput } from '../engine/state/waits.js';
import type { EventView } from '../schemas/events.js';
import { decodeCursor, toPage } from '../store/cursor.js';
import { type Pool, withTransaction } from '../store/db.js';
import type { EventRow } from '../store/event-store.js';
import * as eventStore from '../store/event-store.js';

export type { EventView } from '../schemas/events.js';

export interface EventListQuery {
  type?: string | undefined;
  correlation_key?: string | undefined;
  received_after?: string | undefined;
  received_before?: string | undefined;
  limit: number;
  cursor?: string | undefined;
}

function eventView(row: EventRow): EventView {
  return {
    id: row.id,
    type: row.type,
    data: row.data,
    correlation_key: row.correlation_key,
    received_at: row.received_at.toISOString(),
    started_executions: row.started_executions,
    resumed_steps: row.resumed_steps,
  };
}

/**
 * POST /events: stores the event (once per id), starts the active event_driven workflows it
 * triggers, and resumes the wait_for_event steps it matches. Storing takes the event type's
 * lock, as a run starting to wait does, so the two never miss each other (state/waits.ts).
 */
export class EventManager {
  constructor(
    private readonly options: {
      pool: Pool;
      state: StateManager;
      effects: EffectSink;
      expressionTimeoutMs: number;
    },
  ) {}

  /** Delivers an event; the same id twice is delivered once (the first outcome is returned). */
  async publish(
    event: {
      type: string;
      data: Record<string, unknown>;
      correlation_key?: string | undefined;
      id?: string | undefined;
      labels?: Record<string, string> | undefined;
    },
    caller?: string,
    /** A new trace context per execution it starts, parented to the publisher's (README
     * "Tracing"); absent, or returning undefined, while tracing is off. */
    traceFor?: () => ExecutionTraceContext | undefined,
  ): Promise<{ event: EventView; duplicate: boolean }> {
    const { pool, state } = this.options;
    const id = event.id ?? `ev_${randomBytes(12).toString('base64url')}`;
    const effects = noEffects();
    const stored = await withTransaction(pool, async (tx) => {
      await eventStore.lockEventType(tx, event.type);
      const row = await eventStore.insertEvent(tx, {
        id,
        type: event.type,
        data: event.data,
        correlationKey: event.correlation_key ?? null,
      });
      if (!row) return null;
      const started: string[] = [];
      const seen = eventOutput(row);
      for (const workflow of await eventStore.findTriggeredWorkflows(tx, event.type)) {
        if (workflow.filter && !(await this.filterHolds(workflow.filter, seen))) continue;
        const { row: execution } = await state.start(
          tx,
          {
            workflowId: workflow.id,
            input: event.data,
            // A redelivery after a crash cannot start the same workflow twice for one event.
            idempotencyKey: `event-${id}`,
            activeOnly: true,
            // Who published it, for the history of what it starts (README "History").
            trigger: {
              type: 'event',
              event_id: id,
              event_type: event.type,
              ...(caller ? { caller } : {}),
            },
            labels: event.labels,
            traceContext: traceFor?.(),
          },
          effects,
        );
        started.push(execution.id);
      }
      return eventStore.recordEventOutcome(tx, id, started, []);
    });
    if (!stored) {
      const previous = await eventStore.getEvent(pool, id);
      return { event: eventView(previous as EventRow), duplicate: true };
    }
    await this.options.effects.apply(effects);
    await this.resumeWaiting(stored);
    return { event: eventView((await eventStore.getEvent(pool, id)) ?? stored), duplicate: false };
  }

  /** Resumes every run waiting for this event, each in its own transaction. */
  async resumeWaiting(event: EventRow): Promise<void> {
    const { pool, state } = this.options;
    for (const candidate of await eventStore.findWaitingEventRuns(
      pool,
      event.type,
      event.correlation_key,
    )) {
      await this.options.effects.apply(await state.deliverEvent(event, candidate));
    }
  }

  private async filterHolds(filter: string, event: Record<string, unknown>): Promise<boolean> {
    try {
      return await evaluateCondition(
        filter,
        {
          input: event.data,
          event,
          steps: {},
          iteration: 0,
          execution: { id: '', workflow_id: '', workflow_version: 0 },
        },
        { timeoutMs: this.options.expressionTimeoutMs },
      );
    } catch {
      // A filter that cannot be evaluated on this event does not match it.
      return false;
    }
  }

  async get(id: string): Promise<EventView | null> {
    const row = await eventStore.getEvent(this.options.pool, id);
    return row ? eventView(row) : null;
  }

  /** Events, newest first, with an opaque cursor to the next page. */
  async list(query: EventListQuery): Promise<{ items: EventView[]; next_cursor: string | null }> {
    const rows = await eventStore.listEvents(this.options.pool, {
      type: query.type,
      correlationKey: query.correlation_key,
      receivedAfter: query.received_after ? new Date(query.received_after) : undefined,
      receivedBefore: query.received_before ? new Date(query.received_before) : undefined,
      after: query.cursor ? decodeCursor(query.cursor) : undefined,
      limit: query.limit + 1,
    });
    return toPage(
      rows,
      query.limit,
      (row) => ({ createdAt: row.received_at_key, id: row.id }),
      eventView,
    );
  }
}
