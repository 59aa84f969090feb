import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/** Called on every request before it is answered; may hold the answer back (await). */
export type CallHook = (path: string, call: number) => void | Promise<void>;

export interface SideEffectServerOptions {
  minDelayMs?: number;
  maxDelayMs?: number;
  onCall?: CallHook;
  /** The groups a call (its full url) counts in, for the calls-in-flight audit. */
  groupsOf?: (url: string) => readonly string[];
}

/**
 * The outside world of the fault scenarios: a loopback HTTP server that counts calls per path.
 * Http steps call `/<execution id>/<step id>`, so every call is a side effect of one step run.
 * It answers `{path, call}` after a short random delay (so kills land mid-call); the answer
 * becomes the step's output, which tells which call the engine recorded.
 */
export class SideEffectServer {
  readonly calls = new Map<string, number>();
  /** Calls in flight per group (groupsOf) now, and the most seen at once. */
  readonly inFlight = new Map<string, number>();
  readonly mostInFlight = new Map<string, number>();
  private readonly server: Server;
  private baseUrl = '';

  constructor(private readonly options: SideEffectServerOptions = {}) {
    this.server = createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0] as string;
      const call = (this.calls.get(path) ?? 0) + 1;
      this.calls.set(path, call);
      this.track(this.options.groupsOf?.(request.url ?? '/') ?? [], response);
      const min = this.options.minDelayMs ?? 5;
      const max = this.options.maxDelayMs ?? 40;
      void Promise.resolve(this.options.onCall?.(path, call)).then(() => {
        setTimeout(
          () => {
            if (response.destroyed) return;
            response
              .writeHead(200, { 'content-type': 'application/json' })
              .end(JSON.stringify({ path, call }));
          },
          min + Math.random() * (max - min),
        );
      });
    });
    this.server.keepAliveTimeout = 5000;
  }

  /** Counts the call in its groups until its answer ends or its socket closes. */
  private track(groups: readonly string[], response: ServerResponse): void {
    for (const group of groups) {
      const now = (this.inFlight.get(group) ?? 0) + 1;
      this.inFlight.set(group, now);
      this.mostInFlight.set(group, Math.max(this.mostInFlight.get(group) ?? 0, now));
    }
    response.once('close', () => {
      for (const group of groups) this.inFlight.set(group, (this.inFlight.get(group) ?? 1) - 1);
    });
  }

  async listen(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.baseUrl = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.baseUrl;
  }

  get url(): string {
    return this.baseUrl;
  }

  count(path: string): number {
    return this.calls.get(path) ?? 0;
  }

  /** Total calls seen. */
  total(): number {
    let sum = 0;
    for (const value of this.calls.values()) sum += value;
    return sum;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
