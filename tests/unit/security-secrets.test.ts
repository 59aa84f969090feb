import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpStep } from '../../src/engine/steps/http.js';
import { type ExpressionContext, StepFailure } from '../../src/engine/steps/types.js';
import { resolveTemplates } from '../../src/engine/templates.js';

/**
 * `$secret()` end to end through the http step: the credential reaches the server, and
 * neither the step's output nor its failure message carries it. The config is resolved the
 * way the step runner does it, with `stepType`.
 */

const TOKEN = 'unit-secret-7d1f0c9a';
const HOOK = 'hookpath-5e2b8a41';
const seen: string[] = [];
let server: http.Server;
let port = 0;

const context: ExpressionContext = {
  input: { id: 7 },
  steps: {},
  iteration: 0,
  execution: { id: 'ex', workflow_id: 'wf', workflow_version: 1 },
};

beforeAll(async () => {
  process.env.WF_SECRET_UNIT_TOKEN = TOKEN;
  process.env.WF_SECRET_UNIT_HOOK = HOOK;
  server = http.createServer((request, response) => {
    seen.push(`${request.url} ${request.headers.authorization ?? ''}`);
    const status = request.url?.includes('fail') ? 500 : 200;
    response.writeHead(status, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ ok: status === 200 }));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  delete process.env.WF_SECRET_UNIT_TOKEN;
  delete process.env.WF_SECRET_UNIT_HOOK;
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function run(config: Record<string, unknown>, stepType = 'http') {
  const resolved = (await resolveTemplates(config, context, {
    timeoutMs: 1000,
    basePath: 'config',
    stepType,
  })) as Record<string, unknown>;
  return httpStep.run({
    step: { id: 'call', type: stepType, agent_id: null },
    config: resolved,
    context,
    signal: new AbortController().signal,
    attempt: 1,
    env: {
      httpAllowedHosts: ['127.0.0.1'],
      httpMaxResponseBytes: 1024 * 1024,
      expressionTimeoutMs: 1000,
    },
  });
}

describe('$secret() through the http step', () => {
  it('sends the secret and keeps it out of the output', async () => {
    const outcome = await run({
      url: `http://127.0.0.1:${port}/ok`,
      headers: { authorization: "{% 'Bearer ' & $secret('UNIT_TOKEN') %}" },
    });
    expect(seen.at(-1)).toBe(`/ok Bearer ${TOKEN}`);
    expect(outcome.kind).toBe('completed');
    expect(JSON.stringify(outcome)).not.toContain(TOKEN);
  });

  it('keeps a secret URL path out of failure messages', async () => {
    let failure: unknown;
    try {
      await run({ url: `{% 'http://127.0.0.1:${port}/fail/' & $secret('UNIT_HOOK') %}` });
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(StepFailure);
    expect(seen.at(-1)).toContain(HOOK);
    expect(
      JSON.stringify({ message: (failure as Error).message, ...(failure as object) }),
    ).not.toContain(HOOK);
    expect((failure as Error).message).toContain('[secret]');
  });

  it('is refused in the config of steps that echo their config', async () => {
    await expect(
      resolveTemplates({ v: "{% $secret('UNIT_TOKEN') %}" }, context, {
        timeoutMs: 1000,
        stepType: 'noop',
      }),
    ).rejects.toThrow(/only available/);
    // Without a step type (validation, other callers) there is no $secret at all.
    await expect(
      resolveTemplates({ v: "{% $secret('UNIT_TOKEN') %}" }, context, { timeoutMs: 1000 }),
    ).rejects.toThrow();
  });
});
