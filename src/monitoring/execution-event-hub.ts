import { Redis } from 'ioredis';
import { DependencyUnavailableError } from '../errors.js';
import type { Log } from '../logger.js';
import type { ExecutionEvent } from './execution-events.js';

/** The bounded log of one execution's changes: a Redis Stream whose entry ids are event ids. */
export function executionStreamKey(prefix: string, executionId: string): string {
  return `${prefix}:execution-stream:${executionId}`;
}

/** Pub/sub channel carrying the id of an execution whose stream just grew. */
export function executionChannel(prefix: string): string {
  return `${prefix}:execution-changed`;
}

/** A Redis Stream entry id (`<ms>-<seq>`): what SSE `id:` lines and Last-Event-ID carry. */
export const STREAM_ID = /^\d{1,20}-\d{1,20}$/;

export interface StreamEntry {
  id: string;
  event: ExecutionEvent;
}

const SUBSCRIBE_TIMEOUT_MS = 2000;

type RawEntry = [id: string, fields: string[]];

function parseEntries(raw: RawEntry[]): StreamEntry[] {
  const entries: StreamEntry[] = [];
  for (const [id, fields] of raw) {
    const index = fields.indexOf('event');
    const value = index >= 0 ? fields[index + 1] : undefined;
    if (value === undefined) continue;
    try {
      entries.push({ id, event: JSON.parse(value) as ExecutionEvent });
    } catch {
      // An entry this version cannot read is skipped rather than ending the stream.
    }
  }
  return entries;
}

export interface ExecutionEventHubOptions {
  /** Fast-failing client for reads. */
  redis: Redis;
  /** For the dedicated subscriber connection (a subscribed connection can do nothing else). */
  redisUrl: string;
  prefix: string;
  logger: Log;
}

/**
 * The read side of execution events in one process: one pub/sub subscription shared by every
 * stream client of the process (opened on first use), and reads of the per-execution streams.
 * A notification only says "read again": clients always read the stream from their position,
 * so a lost message delays an event but never loses or reorders one.
 */
export class ExecutionEventHub {
  private subscriber: Redis | undefined;
  private subscribed: Promise<void> | undefined;
  private readonly listeners = new Map<string, Set<() => void>>();
  private readonly sessions = new Set<AbortController>();
  private closed = false;

  constructor(private readonly options: ExecutionEventHubOptions) {}

  /** Calls `listener` whenever the execution's stream may have grown; returns the unsubscribe. */
  async listen(executionId: string, listener: () => void): Promise<() => void> {
    await this.ensureSubscribed();
    const set = this.listeners.get(executionId) ?? new Set();
    set.add(listener);
    this.listeners.set(executionId, set);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(executionId) === set) {
        this.listeners.delete(executionId);
      }
    };
  }

  /** How many executions have listeners in this process (for tests and leak checks). */
  listenerCount(): number {
    let count = 0;
    for (const set of this.listeners.values()) count += set.size;
    return count;
  }

  /** The id of the newest entry of the execution's stream, or null when it has none. */
  async lastEntryId(executionId: string): Promise<string | null> {
    const raw = (await this.options.redis.xrevrange(
      executionStreamKey(this.options.prefix, executionId),
      '+',
      '-',
      'COUNT',
      1,
    )) as RawEntry[];
    return raw[0]?.[0] ?? null;
  }

  /** One entry by id, or null when the stream no longer holds it (trimmed or expired). */
  async entry(executionId: string, id: string): Promise<StreamEntry | null> {
    const raw = (await this.options.redis.xrange(
      executionStreamKey(this.options.prefix, executionId),
      id,
      id,
    )) as RawEntry[];
    return parseEntries(raw)[0] ?? null;
  }

  /** Entries strictly after `afterId`, oldest first. */
  async readAfter(executionId: string, afterId: string, count: number): Promise<StreamEntry[]> {
    const raw = (await this.options.redis.xrange(
      executionStreamKey(this.options.prefix, executionId),
      `(${afterId}`,
      '+',
      'COUNT',
      count,
    )) as RawEntry[];
    return parseEntries(raw);
  }

  /** Registers a live session so that shutdown can end it; returns the deregistration. */
  track(session: AbortController): () => void {
    if (this.closed) session.abort();
    this.sessions.add(session);
    return () => this.sessions.delete(session);
  }

  /** Ends every live session (the HTTP server cannot drain while they stay open). */
  endSessions(): void {
    for (const session of this.sessions) session.abort();
    this.sessions.clear();
  }

  close(): void {
    this.closed = true;
    this.endSessions();
    this.subscriber?.disconnect();
    this.subscriber = undefined;
  }

  private notify(executionId: string): void {
    for (const listener of this.listeners.get(executionId) ?? []) listener();
  }

  private ensureSubscribed(): Promise<void> {
    if (this.closed) {
      return Promise.reject(new DependencyUnavailableError('The event stream'));
    }
    if (!this.subscribed) {
      const subscriber = new Redis(this.options.redisUrl, {
        maxRetriesPerRequest: null,
        connectTimeout: SUBSCRIBE_TIMEOUT_MS,
        retryStrategy: (times) => Math.min(times * 200, 2000),
      });
      subscriber.on('error', () => {});
      subscriber.on('message', (_channel: string, executionId: string) => this.notify(executionId));
      // Messages sent while the connection was down are lost: every client reads again.
      subscriber.on('ready', () => {
        for (const set of this.listeners.values()) for (const listener of set) listener();
      });
      this.subscriber = subscriber;
      const subscribed = subscriber
        .subscribe(executionChannel(this.options.prefix))
        .then(() => undefined);
      subscribed.catch((error: unknown) => {
        this.options.logger.warn({ err: error }, 'execution event subscription failed');
        if (this.subscribed === subscribed) this.subscribed = undefined;
        subscriber.disconnect();
      });
      this.subscribed = subscribed;
    }
    const pending = this.subscribed;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new DependencyUnavailableError('Redis (execution events)')),
        SUBSCRIBE_TIMEOUT_MS,
      );
      pending.then(
        () => {
          clearTimeout(timer);
          resolve();
        },
        () => {
          clearTimeout(timer);
          reject(new DependencyUnavailableError('Redis (execution events)'));
        },
      );
    });
  }
}
