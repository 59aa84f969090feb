import { once } from 'node:events';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { httpStep } from '../../src/engine/steps/http.js';
import type { StepInvocation } from '../../src/engine/steps/types.js';
import { failureOf } from '../helpers/steps.js';

/*
 * Every request in this file goes to a server of its own on a loopback address. The refusal
 * tests point at those same servers and assert that they saw no connection at all.
 */

interface TestServer {
  server: http.Server;
  port: number;
  connections: number;
  requests: number;
}

type Handler = (request: IncomingMessage, response: ServerResponse, body: string) => void;

async function startServer(host: string, handler: Handler): Promise<TestServer | undefined> {
  const server = http.createServer();
  const state: TestServer = { server, port: 0, connections: 0, requests: 0 };
  server.on('connection', () => {
    state.connections++;
  });
  server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    state.requests++;
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => handler(request, response, Buffer.concat(chunks).toString('utf8')));
  });
  try {
    server.listen(0, host);
    await once(server, 'listening');
  } catch {
    // Not every machine has IPv6 loopback, or all of 127/8 routed to lo.
    return undefined;
  }
  state.port = (server.address() as AddressInfo).port;
  return state;
}

async function stopServer(state: TestServer | undefined): Promise<void> {
  if (!state) return;
  state.server.closeAllConnections();
  await new Promise<void>((resolve) => state.server.close(() => resolve()));
}

let main: TestServer;
let ipv6: TestServer | undefined;
let other: TestServer | undefined;

function json(response: ServerResponse, status: number, value: unknown): void {
  response.writeHead(status, { 'content-type': 'application/json' });
  response.end(JSON.stringify(value));
}

const routes: Record<string, Handler> = {
  '/json': (_request, response) => json(response, 200, { hello: 'world', list: [1, 2] }),
  '/text': (_request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
    response.end('plain text');
  },
  '/echo': (request, response, body) =>
    json(response, 200, { method: request.method, headers: request.headers, body }),
  '/500': (_request, response) => {
    response.writeHead(500, { 'content-type': 'text/plain' });
    response.end(`internal failure ${'x'.repeat(2000)}`);
  },
  '/429': (_request, response) => {
    response.writeHead(429, { 'retry-after': '2' });
    response.end('slow down');
  },
  '/503-date': (_request, response) => {
    response.writeHead(503, { 'retry-after': new Date(Date.now() + 30_000).toUTCString() });
    response.end('maintenance');
  },
  '/404': (_request, response) => json(response, 404, { error: 'not found' }),
  '/slow': () => {
    // Never answers: only an abort or a timeout ends the request.
  },
  '/slow-body': (_request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain' });
    response.write('partial');
  },
  '/big': (_request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain' });
    for (let chunk = 0; chunk < 10; chunk++) response.write('y'.repeat(1024));
    response.end();
  },
  '/big-declared': (_request, response) => {
    response.writeHead(200, { 'content-type': 'text/plain', 'content-length': 10 * 1024 });
    response.end('z'.repeat(10 * 1024));
  },
  '/redirect-same': (_request, response) => {
    response.writeHead(302, { location: '/json' });
    response.end();
  },
  '/redirect-post': (_request, response) => {
    response.writeHead(303, { location: '/echo' });
    response.end();
  },
  '/redirect-loop': (_request, response) => {
    response.writeHead(302, { location: '/redirect-loop' });
    response.end();
  },
  '/redirect-other': (_request, response) => {
    response.writeHead(302, { location: `http://127.0.0.2:${other?.port ?? main.port}/json` });
    response.end();
  },
  '/redirect-localhost': (_request, response) => {
    response.writeHead(307, { location: `http://localhost:${main.port}/echo` });
    response.end();
  },
  '/redirect-file': (_request, response) => {
    response.writeHead(302, { location: 'file:///etc/passwd' });
    response.end();
  },
};

function route(request: IncomingMessage, response: ServerResponse, body: string): void {
  const handler = routes[new URL(request.url ?? '/', 'http://x').pathname];
  if (handler) handler(request, response, body);
  else json(response, 404, { error: 'no route' });
}

beforeAll(async () => {
  const started = await startServer('127.0.0.1', route);
  if (!started) throw new Error('cannot listen on 127.0.0.1');
  main = started;
  ipv6 = await startServer('::1', route);
  other = await startServer('127.0.0.2', route);
});

afterAll(async () => {
  await Promise.all([stopServer(main), stopServer(ipv6), stopServer(other)]);
});

beforeEach(() => {
  for (const state of [main, ipv6, other]) {
    if (state) {
      state.connections = 0;
      state.requests = 0;
    }
  }
});

function invocation(
  config: Record<string, unknown>,
  options: { allow?: string[]; signal?: AbortSignal; maxBytes?: number } = {},
): StepInvocation {
  return {
    step: { id: 'step-1', type: 'http', agent_id: null },
    config,
    context: {
      input: {},
      steps: {},
      iteration: 0,
      execution: { id: 'exec-1', workflow_id: 'wf-1', workflow_version: 1 },
    },
    signal: options.signal ?? new AbortController().signal,
    attempt: 1,
    env: {
      httpAllowedHosts: options.allow ?? ['127.0.0.1'],
      httpMaxResponseBytes: options.maxBytes ?? 64 * 1024,
      expressionTimeoutMs: 1000,
    },
  };
}

const url = (path: string): string => `http://127.0.0.1:${main.port}${path}`;

describe('http step against an allowlisted loopback server', () => {
  it('completes on 200 with the JSON body parsed', async () => {
    const outcome = await httpStep.run(invocation({ url: url('/json') }));
    expect(outcome).toMatchObject({
      kind: 'completed',
      output: { status: 200, body: { hello: 'world', list: [1, 2] } },
    });
    if (outcome.kind !== 'completed') return;
    const output = outcome.output as { headers: Record<string, string> };
    expect(output.headers['content-type']).toBe('application/json');
  });

  it('returns non-JSON bodies as text', async () => {
    expect(await httpStep.run(invocation({ url: url('/text') }))).toMatchObject({
      kind: 'completed',
      output: { status: 200, body: 'plain text' },
    });
  });

  it('sends method, headers and a JSON body', async () => {
    const outcome = await httpStep.run(
      invocation({
        url: url('/echo'),
        method: 'post',
        headers: { 'X-Trace': 'abc', 'X-Count': 3 },
        body: { order: 1 },
      }),
    );
    expect(outcome).toMatchObject({
      kind: 'completed',
      output: {
        body: {
          method: 'POST',
          headers: { 'x-trace': 'abc', 'x-count': '3', 'content-type': 'application/json' },
          body: '{"order":1}',
        },
      },
    });
  });

  it('sends a string body as is, keeping a given content-type', async () => {
    const outcome = await httpStep.run(
      invocation({
        url: url('/echo'),
        method: 'PUT',
        headers: { 'Content-Type': 'text/csv' },
        body: 'a,b\n1,2',
      }),
    );
    expect(outcome).toMatchObject({
      output: { body: { headers: { 'content-type': 'text/csv' }, body: 'a,b\n1,2' } },
    });
  });

  it('retries a 500, with the status and a truncated body in the failure', async () => {
    const failure = await failureOf(httpStep.run(invocation({ url: url('/500') })));
    expect(failure).toMatchObject({ type: 'http_status', retryable: true });
    expect(failure.message).toMatch(/HTTP 500/);
    expect(failure.message).toMatch(/internal failure/);
    expect(failure.message.length).toBeLessThan(1000);
    expect(failure.details).toMatchObject({ status: 500 });
  });

  it('retries a 429 after its Retry-After seconds', async () => {
    const failure = await failureOf(httpStep.run(invocation({ url: url('/429') })));
    expect(failure).toMatchObject({ type: 'http_status', retryable: true, retryAfterMs: 2000 });
  });

  it('reads a Retry-After HTTP date on a 503', async () => {
    const failure = await failureOf(httpStep.run(invocation({ url: url('/503-date') })));
    expect(failure.retryable).toBe(true);
    expect(failure.retryAfterMs).toBeGreaterThan(20_000);
    expect(failure.retryAfterMs).toBeLessThanOrEqual(30_000);
  });

  it('does not retry a 404', async () => {
    const failure = await failureOf(httpStep.run(invocation({ url: url('/404') })));
    expect(failure).toMatchObject({ type: 'http_status', retryable: false });
    expect(failure.retryAfterMs).toBeUndefined();
  });

  it('accepts the statuses listed in expected_status', async () => {
    expect(
      await httpStep.run(invocation({ url: url('/404'), expected_status: [404] })),
    ).toMatchObject({ kind: 'completed', output: { status: 404 } });
    const failure = await failureOf(
      httpStep.run(invocation({ url: url('/json'), expected_status: [201] })),
    );
    expect(failure).toMatchObject({ type: 'http_status', retryable: false });
  });

  it('retries a refused connection as a network error', async () => {
    const closed = await startServer('127.0.0.1', route);
    if (!closed) throw new Error('cannot listen on 127.0.0.1');
    const port = closed.port;
    await stopServer(closed);
    const failure = await failureOf(httpStep.run(invocation({ url: `http://127.0.0.1:${port}/` })));
    expect(failure).toMatchObject({ type: 'network_error', retryable: true });
    expect(failure.message).toMatch(/ECONNREFUSED/);
  });

  it('stops a slow response when the invocation is aborted', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(new Error('attempt timed out')), 100);
    const failure = await failureOf(
      httpStep.run(invocation({ url: url('/slow') }, { signal: controller.signal })),
    );
    expect(failure.type).toBe('aborted');
    expect(main.requests).toBe(1);
  });

  it('stops a body that never ends when the invocation is aborted', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const failure = await failureOf(
      httpStep.run(invocation({ url: url('/slow-body') }, { signal: controller.signal })),
    );
    expect(failure.type).toBe('aborted');
  });

  it('turns timeout_ms into a retryable network error', async () => {
    const failure = await failureOf(
      httpStep.run(invocation({ url: url('/slow'), timeout_ms: 100 })),
    );
    expect(failure).toMatchObject({ type: 'network_error', retryable: true });
    expect(failure.message).toMatch(/timed out/);
  });

  it('refuses a response larger than the limit, streamed or declared', async () => {
    for (const path of ['/big', '/big-declared']) {
      const failure = await failureOf(
        httpStep.run(invocation({ url: url(path) }, { maxBytes: 4096 })),
      );
      expect(failure).toMatchObject({ type: 'response_too_large', retryable: false });
    }
  });

  it('follows a redirect on the same host', async () => {
    expect(await httpStep.run(invocation({ url: url('/redirect-same') }))).toMatchObject({
      kind: 'completed',
      output: { status: 200, body: { hello: 'world' } },
    });
  });

  it('turns a POST into a GET on 303', async () => {
    const outcome = await httpStep.run(
      invocation({ url: url('/redirect-post'), method: 'POST', body: { a: 1 } }),
    );
    expect(outcome).toMatchObject({ output: { body: { method: 'GET', body: '' } } });
  });

  it('gives up after five redirects', async () => {
    const failure = await failureOf(httpStep.run(invocation({ url: url('/redirect-loop') })));
    expect(failure).toMatchObject({ type: 'http_redirect', retryable: false });
    expect(main.requests).toBe(6);
  });

  it('drops credentials when a redirect changes origin', async () => {
    const outcome = await httpStep.run(
      invocation(
        {
          url: url('/redirect-localhost'),
          method: 'POST',
          headers: { authorization: 'Bearer secret', 'x-keep': 'yes' },
          body: 'payload',
        },
        { allow: ['127.0.0.1', 'localhost'] },
      ),
    );
    expect(outcome.kind).toBe('completed');
    if (outcome.kind !== 'completed') return;
    const echoed = (outcome.output as { body: { headers: Record<string, string>; body: string } })
      .body;
    expect(echoed.headers.authorization).toBeUndefined();
    expect(echoed.headers['x-keep']).toBe('yes');
    expect(echoed.body).toBe('payload');
  });

  it('refuses a redirect to a loopback address that is not allowlisted', async () => {
    const failure = await failureOf(httpStep.run(invocation({ url: url('/redirect-other') })));
    expect(failure).toMatchObject({ type: 'ssrf_blocked', retryable: false });
    expect(main.requests).toBe(1);
    if (other) expect(other.connections).toBe(0);
  });

  it('refuses a redirect to a non-HTTP scheme', async () => {
    const failure = await failureOf(httpStep.run(invocation({ url: url('/redirect-file') })));
    expect(failure).toMatchObject({ type: 'ssrf_blocked', retryable: false });
  });

  it.each([
    [{}],
    [{ url: 'ftp://127.0.0.1/' }],
    [{ url: 'not a url' }],
    [{ url: 'http://127.0.0.1/', method: 'GE T' }],
    [{ url: 'http://127.0.0.1/', headers: { a: { b: 1 } } }],
    [{ url: 'http://127.0.0.1/', timeout_ms: -5 }],
    [{ url: 'http://127.0.0.1/', expected_status: ['200'] }],
  ])('rejects %j as invalid_config', async (config) => {
    const failure = await failureOf(httpStep.run(invocation(config)));
    expect(failure).toMatchObject({ type: 'invalid_config', retryable: false });
  });
});

describe('http step with an empty allowlist', () => {
  const refused = async (target: string): Promise<void> => {
    const failure = await failureOf(httpStep.run(invocation({ url: target }, { allow: [] })));
    expect(failure).toMatchObject({ type: 'ssrf_blocked', retryable: false });
  };

  it('refuses 127.0.0.1 before connecting', async () => {
    await refused(url('/json'));
    expect(main.connections).toBe(0);
  });

  it('refuses ::1 before connecting', async () => {
    await refused(`http://[::1]:${ipv6?.port ?? main.port}/json`);
    expect(main.connections).toBe(0);
    if (ipv6) expect(ipv6.connections).toBe(0);
  });

  it('refuses localhost at lookup time, before connecting', async () => {
    await refused(`http://localhost:${main.port}/json`);
    expect(main.connections).toBe(0);
  });

  it('refuses loopback written as a number or in octal/hex', async () => {
    await refused(`http://2130706433:${main.port}/json`);
    await refused(`http://0177.0.0.1:${main.port}/json`);
    await refused(`http://0x7f.1:${main.port}/json`);
    expect(main.connections).toBe(0);
  });

  it('refuses an IPv4-mapped IPv6 loopback', async () => {
    await refused(`http://[::ffff:127.0.0.1]:${main.port}/json`);
    expect(main.connections).toBe(0);
  });
});

describe('http step with a host name allowlisted', () => {
  it('resolves it through the guarded lookup and connects', async () => {
    const outcome = await httpStep.run(
      invocation({ url: `http://localhost:${main.port}/json` }, { allow: ['localhost'] }),
    );
    expect(outcome).toMatchObject({ kind: 'completed', output: { status: 200 } });
  });
});
