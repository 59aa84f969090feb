import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CountingServer } from '../helpers/counting-server.js';
import { useTestApp } from '../helpers/test-app.js';
import { createWorkflow, startExecution, waitForExecution } from '../helpers/workflows.js';

/**
 * Secrets never leave: what a remote server echoes of a request is scrubbed before the step
 * records it, and a credential-carrying header is not sent on to another origin.
 */

const ctx = useTestApp({ HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1' });
const SECRET = 'sk-echo-8e21/a"c7<f0>';
const main = new CountingServer();
const elsewhere = new CountingServer();
let mainUrl = '';
let elsewhereUrl = '';
const received = new Map<string, IncomingMessage['headers']>();

function land(request: IncomingMessage, response: ServerResponse): void {
  received.set((request.url ?? '').split('?')[0] as string, request.headers);
  response.writeHead(200, { 'content-type': 'application/json' }).end('{"landed":true}');
}

beforeAll(async () => {
  process.env.WF_SECRET_ECHO_TOKEN = SECRET;
  mainUrl = await main.listen();
  elsewhereUrl = await elsewhere.listen();
  // A not-found page that quotes the request, as many do: raw, JSON and HTML-escaped.
  main.route('/missing', (request, response) => {
    const auth = request.headers.authorization ?? '';
    response
      .writeHead(404, { 'content-type': 'text/html', 'x-echo': auth })
      .end(
        `<h1>Not found</h1><p>${auth.replace(/[<>"&]/g, (c) => `&#${c.charCodeAt(0)};`)}</p>` +
          `<pre>${JSON.stringify(request.headers)}</pre><a href="/?t=${encodeURIComponent(auth)}">`,
      );
  });
  main.route('/away', (_request, response) => {
    response.writeHead(302, { location: `${elsewhereUrl}/landed-away` }).end();
  });
  main.route('/stay', (_request, response) => {
    response.writeHead(307, { location: '/landed-here' }).end();
  });
  main.route('/landed-here', land);
  elsewhere.route('/landed-away', land);
});

afterAll(async () => {
  delete process.env.WF_SECRET_ECHO_TOKEN;
  await Promise.all([main.close(), elsewhere.close()]);
});

async function runCall(url: string) {
  const workflowId = await createWorkflow(ctx.app, {
    name: `call ${url}`,
    workflow_type: 'sequential',
    steps: [
      {
        id: 'call',
        name: 'call',
        step_type: 'http',
        retry_count: 0,
        config: {
          url,
          headers: {
            authorization: "{% 'Bearer ' & $secret('ECHO_TOKEN') %}",
            'x-api-token': "{% $secret('ECHO_TOKEN') %}",
            'x-trace': 'plain-value',
          },
        },
      },
    ],
  });
  return waitForExecution(ctx.app, await startExecution(ctx.app, workflowId));
}

describe('secrets never leave', () => {
  it('scrubs a secret that a 404 page echoes from the recorded step error', async () => {
    const execution = await runCall(`${mainUrl}/missing`);
    expect(execution.status).toBe('failed');
    const text = JSON.stringify(execution);
    expect(text).toContain('HTTP 404');
    expect(text).toContain('[secret]');
    for (const form of [SECRET, JSON.stringify(SECRET).slice(1, -1), encodeURIComponent(SECRET)])
      expect(text).not.toContain(form);
    const stream = await ctx.app.inject({
      method: 'GET',
      url: `/executions/${execution.id}`,
    });
    expect(stream.body).toContain('[secret]');
    expect(stream.body).not.toContain(SECRET);
  });

  it('drops every secret-valued header on a redirect to another origin', async () => {
    const execution = await runCall(`${mainUrl}/away`);
    expect(execution.status).toBe('completed');
    const headers = received.get('/landed-away');
    expect(headers).toBeDefined();
    expect(headers?.authorization).toBeUndefined();
    expect(headers?.['x-api-token']).toBeUndefined();
    expect(headers?.['x-trace']).toBe('plain-value');
  });

  it('keeps them on a redirect within the same origin', async () => {
    const execution = await runCall(`${mainUrl}/stay`);
    expect(execution.status).toBe('completed');
    const headers = received.get('/landed-here');
    expect(headers?.authorization).toBe(`Bearer ${SECRET}`);
    expect(headers?.['x-api-token']).toBe(SECRET);
    expect(headers?.['x-trace']).toBe('plain-value');
  });
});
