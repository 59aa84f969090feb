import { FINISHED_EXECUTION_STATUSES, isIn } from '../domain/statuses.js';
import { ExecutionNotFoundError } from '../errors.js';
import { type ExecutionEventHub, STREAM_ID } from './execution-event-hub.js';
import { isTerminalEvent } from './execution-events.js';

/** One message of the stream; `id` is a Redis Stream id (the snapshot carries the position
 * it was taken at), so Last-Event-ID resumes exactly after it. */
export interface StreamMessage {
  id: string;
  event: 'snapshot' | 'step' | 'execution';
  data: unknown;
}

/** Where the messages go: the SSE response, or anything else that frames them. */
export interface StreamSink {
  send(message: StreamMessage): void;
  /** A comment line: keeps proxies and the connection from idling out. */
  heartbeat(): void;
}

export interface ExecutionSnapshot {
  status: string;
  data: unknown;
}

export interface ExecutionStreamOptions {
  hub: ExecutionEventHub;
  /** The execution's current state from Postgres; throws ExecutionNotFoundError. */
  snapshot(executionId: string): Promise<ExecutionSnapshot>;
  /** Status and end time from Postgres, or null when the execution does not exist. */
  status(executionId: string): Promise<{ status: string; completedAt: Date | null } | null>;
  heartbeatMs: number;
}

/** What to answer: nothing (the client already saw the end) or a stream to run. */
export type StreamPlan =
  | { kind: 'ended' }
  | { kind: 'stream'; run(sink: StreamSink, signal: AbortSignal): Promise<void> };

const READ_COUNT = 200;
/** An ended execution whose end event has not reached the stream this long after the end is
 * taken as a lost event (Redis restarted): the client gets a final snapshot instead. */
const END_EVENT_GRACE_MS = 2000;
const START = '0-0';

/**
 * Streams the changes of one execution: first the current state (or, when resuming with a
 * Last-Event-ID the stream still holds, what was missed since), then each change in order,
 * until the execution ends. The pub/sub listener is registered before the position is read,
 * so nothing committed in between is missed; at worst a change the snapshot already shows is
 * sent again, which leaves the client in the same state.
 */
export class ExecutionStreams {
  constructor(private readonly options: ExecutionStreamOptions) {}

  async open(executionId: string, lastEventId: string | undefined): Promise<StreamPlan> {
    const { hub } = this.options;
    if ((await this.options.status(executionId)) === null) {
      throw new ExecutionNotFoundError(executionId);
    }
    let wakeUp: (() => void) | null = null;
    let woken = false;
    const unsubscribe = await hub.listen(executionId, () => {
      woken = true;
      wakeUp?.();
    });
    let cursor = START;
    const initial: StreamMessage[] = [];
    let ended = false;
    try {
      const resumeFrom = lastEventId && STREAM_ID.test(lastEventId) ? lastEventId : undefined;
      const anchor =
        resumeFrom && resumeFrom !== START ? await hub.entry(executionId, resumeFrom) : null;
      if (anchor && isTerminalEvent(anchor.event)) {
        unsubscribe();
        return { kind: 'ended' };
      }
      if (resumeFrom && (anchor || resumeFrom === START)) {
        cursor = resumeFrom;
      } else {
        cursor = (await hub.lastEntryId(executionId)) ?? START;
        const snapshot = await this.options.snapshot(executionId);
        initial.push({ id: cursor, event: 'snapshot', data: snapshot.data });
        ended = isIn(FINISHED_EXECUTION_STATUSES, snapshot.status);
      }
    } catch (error) {
      unsubscribe();
      throw error;
    }

    const run = async (sink: StreamSink, signal: AbortSignal): Promise<void> => {
      const onAbort = () => wakeUp?.();
      signal.addEventListener('abort', onAbort, { once: true });
      const sleep = (ms: number) =>
        new Promise<'woken' | 'timeout'>((resolve) => {
          if (woken || signal.aborted) {
            resolve('woken');
            return;
          }
          const timer = setTimeout(() => {
            wakeUp = null;
            resolve('timeout');
          }, ms);
          wakeUp = () => {
            clearTimeout(timer);
            wakeUp = null;
            resolve('woken');
          };
        });
      /** Sends what the stream holds after the cursor; true once the execution has ended. */
      const catchUp = async (): Promise<boolean> => {
        for (;;) {
          woken = false;
          const entries = await hub.readAfter(executionId, cursor, READ_COUNT);
          for (const entry of entries) {
            if (signal.aborted) return true;
            sink.send({ id: entry.id, event: entry.event.kind, data: entry.event });
            cursor = entry.id;
            if (isTerminalEvent(entry.event)) return true;
          }
          if (entries.length < READ_COUNT) return false;
        }
      };
      try {
        for (const message of initial) sink.send(message);
        if (ended) return;
        while (!signal.aborted) {
          if (await catchUp()) return;
          if ((await sleep(this.options.heartbeatMs)) === 'woken' || signal.aborted) continue;
          sink.heartbeat();
          const current = await this.options.status(executionId);
          if (current === null) return;
          const endedLongAgo =
            isIn(FINISHED_EXECUTION_STATUSES, current.status) &&
            Date.now() - (current.completedAt?.getTime() ?? 0) > END_EVENT_GRACE_MS;
          if (endedLongAgo) {
            if (await catchUp()) return;
            const snapshot = await this.options.snapshot(executionId);
            sink.send({ id: cursor, event: 'snapshot', data: snapshot.data });
            return;
          }
        }
      } finally {
        signal.removeEventListener('abort', onAbort);
        unsubscribe();
      }
    };
    return { kind: 'stream', run };
  }
}
