import type { Redis } from 'ioredis';

/**
 * A short-lived Redis cache of computed statistics (keys under `<prefix>:cache:stats:`).
 * Statistics are recomputed after a few seconds anyway, so there is no invalidation; a Redis
 * failure only means computing them again, never a failed request.
 */
export class StatsCache {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
  ) {}

  async get<T>(name: string): Promise<T | null> {
    if (this.ttlSeconds <= 0) return null;
    try {
      const value = await this.redis.get(this.key(name));
      return value === null ? null : (JSON.parse(value) as T);
    } catch {
      return null;
    }
  }

  async set(name: string, value: unknown): Promise<void> {
    if (this.ttlSeconds <= 0) return;
    try {
      await this.redis.set(this.key(name), JSON.stringify(value), 'EX', this.ttlSeconds);
    } catch {
      // Only a cache: the next request computes again.
    }
  }

  private key(name: string): string {
    return `${this.prefix}:cache:stats:${name}`;
  }
}
