import type { Redis } from 'ioredis';

/**
 * Read-through Redis cache of single workflow views.
 *
 * Freshness scheme (a "generation" per workflow, like memcache leases):
 * - `<key>:gen` holds a counter that every write (PUT, DELETE, counter change by the engine)
 *   increments, atomically with deleting the cached view, after its transaction commits.
 * - A reader that misses gets a ticket holding the generation it saw *before* reading Postgres.
 *   Its fill is a Lua script that stores the view only if the generation is still the same.
 * So a reader that loaded the old row before a writer committed can never put it back after
 * the writer invalidated: the writer's increment happened between the reader's ticket and its
 * fill, and the fill is refused. A reader whose ticket postdates the increment read Postgres
 * after the commit, so what it fills is current. DELETE needs no tombstone: Postgres answers
 * "not found", which is never cached, and late fills of the old row are refused the same way.
 *
 * The generation key lives much longer than any read (GENERATION_TTL_SECONDS) and entries
 * expire after CACHE_TTL_SECONDS, which also bounds staleness in the cases this cannot cover
 * (a process killed between commit and invalidation, Redis evicting a generation key).
 *
 * Redis errors never fail a request: reads fall back to Postgres, and an invalidation that
 * could not reach Redis is retried in the background until it succeeds or the entry it
 * targets has expired anyway; meanwhile this process treats that workflow as uncached.
 */

const GENERATION_TTL_SECONDS = 86_400;
const RETRY_INTERVAL_MS = 1000;
const WARN_INTERVAL_MS = 10_000;

const FILL_SCRIPT = `
local current = redis.call('GET', KEYS[2])
if (current or '') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
return 1`;

const INVALIDATE_SCRIPT = `
redis.call('DEL', KEYS[1])
redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1`;

/** Proof of which generation a miss saw; a fill with a stale ticket is refused. */
export interface FillTicket {
  readonly id: string;
  /** The generation counter's value, '' when it did not exist. */
  readonly generation: string;
}

/**
 * A hit (the view as JSON text, sent as it is: no parse, no serialisation), or a miss with the
 * ticket to fill it (null when Redis could not be asked).
 */
export type CacheLookup = { json: string } | { json: null; ticket: FillTicket | null };

export interface CacheLogger {
  warn(details: object, message: string): void;
}

export interface WorkflowCacheOptions {
  redis: Redis;
  prefix: string;
  ttlSeconds: number;
  logger: CacheLogger;
}

export class WorkflowCache {
  private readonly redis: Redis;
  private readonly prefix: string;
  private readonly ttlSeconds: number;
  private readonly logger: CacheLogger;
  /** Invalidations that did not reach Redis: workflow id -> when retrying stops being useful. */
  private readonly pending = new Map<string, number>();
  /** Lookups waiting for the next batched read. */
  private lookups: Array<{ id: string; resolve: (lookup: CacheLookup) => void }> = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private retrying = false;
  private lastWarnAt = 0;

  constructor(options: WorkflowCacheOptions) {
    this.redis = options.redis;
    this.prefix = options.prefix;
    this.ttlSeconds = options.ttlSeconds;
    this.logger = options.logger;
  }

  /**
   * The cached view of a workflow, or a miss with a ticket for `fill`. Lookups made in the
   * same turn of the event loop (concurrent requests) share one MGET: one round trip for all.
   */
  get(id: string): Promise<CacheLookup> {
    if (this.pending.has(id)) return Promise.resolve({ json: null, ticket: null });
    return new Promise((resolve) => {
      if (this.lookups.length === 0) setImmediate(() => void this.readBatch());
      this.lookups.push({ id, resolve });
    });
  }

  /** Answers every waiting lookup from one MGET (entry and generation of each); never rejects. */
  private async readBatch(): Promise<void> {
    const lookups = this.lookups;
    this.lookups = [];
    try {
      const values = await this.redis.mget(
        lookups.flatMap(({ id }) => [this.key(id), this.generationKey(id)]),
      );
      lookups.forEach(({ id, resolve }, index) => {
        const entry = values[2 * index];
        const generation = values[2 * index + 1];
        resolve(
          entry ? { json: entry } : { json: null, ticket: { id, generation: generation ?? '' } },
        );
      });
    } catch (error) {
      this.warn(error, 'workflow cache read failed; reading Postgres');
      for (const { resolve } of lookups) resolve({ json: null, ticket: null });
    }
  }

  /** Caches a view (as JSON text) loaded after `ticket` was issued, unless a write happened since. */
  async fill(id: string, json: string, ticket: FillTicket | null): Promise<void> {
    if (ticket === null || ticket.id !== id || this.pending.has(id)) return;
    try {
      await this.redis.eval(
        FILL_SCRIPT,
        2,
        this.key(id),
        this.generationKey(id),
        ticket.generation,
        json,
        this.ttlSeconds,
      );
    } catch (error) {
      this.warn(error, 'workflow cache fill failed');
    }
  }

  /** Drops the cached view and refuses fills begun earlier; call after the write commits. */
  async invalidate(id: string): Promise<void> {
    if (!(await this.tryInvalidate(id))) {
      this.pending.set(id, Date.now() + this.ttlSeconds * 1000);
      this.scheduleRetry();
    }
  }

  /** Forgets a deleted workflow; same guarantees as `invalidate`. */
  async remove(id: string): Promise<void> {
    await this.invalidate(id);
  }

  /** Stops background retries (on shutdown). */
  close(): void {
    clearInterval(this.retryTimer);
    this.retryTimer = undefined;
  }

  private key(id: string): string {
    return `${this.prefix}:cache:workflow:${id}`;
  }

  private generationKey(id: string): string {
    return `${this.key(id)}:gen`;
  }

  private async tryInvalidate(id: string): Promise<boolean> {
    try {
      await this.redis.eval(
        INVALIDATE_SCRIPT,
        2,
        this.key(id),
        this.generationKey(id),
        GENERATION_TTL_SECONDS,
      );
      return true;
    } catch (error) {
      this.warn(error, 'workflow cache invalidation failed; retrying in the background');
      return false;
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer !== undefined) return;
    this.retryTimer = setInterval(() => {
      void this.retryPending();
    }, RETRY_INTERVAL_MS);
    this.retryTimer.unref();
  }

  private async retryPending(): Promise<void> {
    if (this.retrying) return;
    this.retrying = true;
    try {
      for (const [id, until] of [...this.pending]) {
        // Past `until` the entry it targeted has expired: nothing stale can remain.
        if (Date.now() > until || (await this.tryInvalidate(id))) this.pending.delete(id);
      }
    } finally {
      this.retrying = false;
    }
    if (this.pending.size === 0) this.close();
  }

  /** Warns at most every WARN_INTERVAL_MS: a Redis outage would otherwise flood the log. */
  private warn(error: unknown, message: string): void {
    const now = Date.now();
    if (now - this.lastWarnAt < WARN_INTERVAL_MS) return;
    this.lastWarnAt = now;
    this.logger.warn({ err: error }, message);
  }
}
