import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { closeServer, listenOnLoopback } from './loopback.js';

type Handler = (request: IncomingMessage, response: ServerResponse, call: number) => void;

/**
 * A local HTTP server on 127.0.0.1 that counts calls per path: the side effects of http
 * steps, so tests can prove what ran once and what ran again.
 */
export class CountingServer {
  readonly calls = new Map<string, number>();
  private readonly routes = new Map<string, Handler>();
  private readonly server: Server;

  constructor() {
    this.server = createServer((request, response) => {
      const path = (request.url ?? '/').split('?')[0] as string;
      const call = (this.calls.get(path) ?? 0) + 1;
      this.calls.set(path, call);
      const handler = this.routes.get(path);
      if (handler) handler(request, response, call);
      else
        response
          .writeHead(200, { 'content-type': 'application/json' })
          .end(JSON.stringify({ path, call }));
    });
  }

  route(path: string, handler: Handler): this {
    this.routes.set(path, handler);
    return this;
  }

  count(path: string): number {
    return this.calls.get(path) ?? 0;
  }

  listen(): Promise<string> {
    return listenOnLoopback(this.server);
  }

  close(): Promise<void> {
    return closeServer(this.server);
  }
}

/** Waits (bounded) until `condition` holds. */
export async function until(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
