import type { Redis } from 'ioredis';

/**
 * Tells every worker process to abort the running attempts of an execution (cancel, failure,
 * timeout). Redis pub/sub is only the fast path: a worker that misses the message finds out
 * when its result is fenced off by Postgres.
 */
export class CancellationBus {
  private readonly controllers = new Map<string, Set<AbortController>>();

  constructor(private readonly channel: string) {}

  static channelFor(prefix: string): string {
    return `${prefix}:abort-execution`;
  }

  async publish(publisher: Redis, executionIds: readonly string[]): Promise<void> {
    for (const id of new Set(executionIds)) await publisher.publish(this.channel, id);
  }

  /** Starts listening on a dedicated connection (a subscribed connection can do nothing else). */
  async listen(subscriber: Redis): Promise<void> {
    subscriber.on('message', (channel: string, executionId: string) => {
      if (channel === this.channel) this.abort(executionId);
    });
    await subscriber.subscribe(this.channel);
  }

  /** An AbortController that fires when the execution is aborted; release it when done. */
  track(executionId: string): { signal: AbortSignal; release(): void } {
    const controller = new AbortController();
    const set = this.controllers.get(executionId) ?? new Set();
    set.add(controller);
    this.controllers.set(executionId, set);
    return {
      signal: controller.signal,
      release: () => {
        set.delete(controller);
        if (set.size === 0) this.controllers.delete(executionId);
      },
    };
  }

  abort(executionId: string): void {
    for (const controller of this.controllers.get(executionId) ?? []) {
      controller.abort(new Error(`execution ${executionId} was stopped`));
    }
  }
}
