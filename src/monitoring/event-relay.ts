import type { Redis } from 'ioredis';
import type { WorkflowDefinition } from '../domain/workflow-definition.js';
import type { Log } from '../logger.js';
import { Periodic } from '../periodic.js';
import { type Pool, withTransaction } from '../store/db.js';
import {
  type DescribedOutboxRow,
  dropOutboxRowsOlderThan,
  type OutboxRow,
  outboxHasRows,
  takeOutboxBatch,
  tryRelayLock,
} from '../store/event-outbox-store.js';
import { executionChannel, executionStreamKey } from './execution-event-hub.js';
import { type ExecutionEvent, eventFromOutbox } from './execution-events.js';

const BATCH = 500;

/**
 * A batch of events in one call: KEYS are the executions' streams; ARGV is the stream length,
 * the streams' lifetime, the wake-up channel, the execution id of each stream, then one
 * (stream number, event) pair per event, in order.
 */
const PUBLISH_SCRIPT = `
local streams = #KEYS
for i = 4 + streams, #ARGV, 2 do
  redis.call('XADD', KEYS[tonumber(ARGV[i])], 'MAXLEN', '~', ARGV[1], '*', 'event', ARGV[i + 1])
end
for i = 1, streams do
  redis.call('EXPIRE', KEYS[i], ARGV[2])
  redis.call('PUBLISH', ARGV[3], ARGV[3 + i])
end
return streams`;
/** Changes nobody could publish for this long are dropped (Redis away): clients resync from
 * the snapshot, and the outbox stays bounded. */
const OUTBOX_MAX_AGE_SECONDS = 3600;
const WARN_INTERVAL_MS = 10_000;

export interface EventRelayOptions {
  pool: Pool;
  redis: Redis;
  prefix: string;
  intervalMs: number;
  /** Entries kept per execution stream (approximately: MAXLEN ~). */
  streamMaxLength: number;
  /** Lifetime of an execution's stream after its last change, in seconds. */
  streamTtlSeconds: number;
  /** Whether the database is migrated and usable yet. */
  databaseReady(): boolean;
  /** The definition of a workflow version (cached), for the types events carry. */
  definitionOf(workflowId: string, version: number): Promise<WorkflowDefinition>;
  /** Called with what was published, after the commit that removed it from the outbox. */
  onPublished(events: readonly ExecutionEvent[]): void;
  logger: Log;
}

/**
 * Moves committed execution changes from the Postgres outbox to Redis: each becomes an entry
 * of the execution's bounded stream (what SSE clients read and resume from), and a pub/sub
 * message wakes the API processes that stream it. Rows are deleted in the transaction that
 * published them, so a failure to publish keeps them for the next pass (at-least-once).
 * Every process runs a relay; an advisory lock lets one at a time drain, in commit order.
 */
export class EventRelay {
  private readonly periodic: Periodic;
  private lastWarnAt = 0;

  constructor(private readonly options: EventRelayOptions) {
    // drain() reports its own failures.
    this.periodic = new Periodic(
      () => this.drain(),
      options.intervalMs,
      () => {},
    );
  }

  start(): void {
    this.periodic.start();
  }

  /** Stops the timer after a last pass, so changes committed during shutdown still go out. */
  async stop(): Promise<void> {
    if (!this.periodic.isActive) return;
    await this.periodic.stop();
    await this.drain();
  }

  /** Publishes everything the outbox holds (as far as this process gets the relay lock). */
  async drain(): Promise<void> {
    if (!this.options.databaseReady()) return;
    try {
      for (;;) {
        const published = await this.drainOnce();
        if (published < BATCH || !this.periodic.isActive) return;
      }
    } catch (error) {
      this.warn(error, 'execution event relay failed; retrying');
      await dropOutboxRowsOlderThan(this.options.pool, OUTBOX_MAX_AGE_SECONDS).catch(() => 0);
    }
  }

  /** One batch: returns how many changes were published (0 when another relay holds the lock). */
  async drainOnce(): Promise<number> {
    const { pool } = this.options;
    if (!(await outboxHasRows(pool))) return 0;
    const events = await withTransaction(pool, async (tx) => {
      if (!(await tryRelayLock(tx))) return [];
      const rows = await takeOutboxBatch(tx, BATCH);
      const batch = (await this.describe(rows)).map(eventFromOutbox);
      await this.publish(batch);
      return batch;
    });
    if (events.length > 0) this.options.onPublished(events);
    return events.length;
  }

  /** The workflow and step types of each row, from the definition its execution pinned. */
  private async describe(rows: readonly OutboxRow[]): Promise<DescribedOutboxRow[]> {
    const types = new Map<string, { workflow: string; steps: Map<string, string> } | null>();
    const typesOf = async (workflowId: string, version: number) => {
      const key = `${workflowId}@${version}`;
      if (!types.has(key)) {
        const definition = await this.options.definitionOf(workflowId, version).catch(() => null);
        types.set(
          key,
          definition && {
            workflow: definition.workflow_type,
            steps: new Map(definition.steps.map((step) => [step.id, step.step_type])),
          },
        );
      }
      return types.get(key) ?? null;
    };
    const described: DescribedOutboxRow[] = [];
    for (const row of rows) {
      const known =
        row.workflow_id === null || row.workflow_version === null
          ? null
          : await typesOf(row.workflow_id, row.workflow_version);
      described.push({
        ...row,
        workflow_type: known?.workflow ?? null,
        step_type: (row.step_id !== null && known?.steps.get(row.step_id)) || null,
      });
    }
    return described;
  }

  /** Appends the events to their executions' streams and wakes their readers: one call. */
  private async publish(events: readonly ExecutionEvent[]): Promise<void> {
    if (events.length === 0) return;
    const { redis, prefix, streamMaxLength, streamTtlSeconds } = this.options;
    const executions = [...new Set(events.map((event) => event.execution_id))];
    const position = new Map(executions.map((id, index) => [id, index + 1]));
    await redis.eval(
      PUBLISH_SCRIPT,
      executions.length,
      ...executions.map((id) => executionStreamKey(prefix, id)),
      streamMaxLength,
      streamTtlSeconds,
      executionChannel(prefix),
      ...executions,
      ...events.flatMap((event) => [
        position.get(event.execution_id) as number,
        JSON.stringify(event),
      ]),
    );
  }

  /** Warns at most every WARN_INTERVAL_MS: a Redis outage would otherwise flood the log. */
  private warn(error: unknown, message: string): void {
    const now = Date.now();
    if (now - this.lastWarnAt < WARN_INTERVAL_MS) return;
    this.lastWarnAt = now;
    this.options.logger.warn({ err: error }, message);
  }
}
