import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CountingServer } from '../helpers/counting-server.js';
import { useTestApp } from '../helpers/test-app.js';
import { createWorkflow, startExecution, waitForExecution } from '../helpers/workflows.js';

const ctx = useTestApp({ HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1' });
const server = new CountingServer();
let baseUrl = '';
let seenAuthorization: string | undefined;
const SECRET = 'sk-live-4f1b2c3d';

beforeAll(async () => {
  process.env.WF_SECRET_PARTNER_TOKEN = SECRET;
  server.route('/partner', (request, response) => {
    seenAuthorization = request.headers.authorization;
    response.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  baseUrl = await server.listen();
});

afterAll(async () => {
  delete process.env.WF_SECRET_PARTNER_TOKEN;
  await server.close();
});

describe('secrets in step config', () => {
  it('an http step sends $secret() values that the definition, output and execution never show', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'partner call',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'call',
          name: 'call',
          step_type: 'http',
          config: {
            url: `${baseUrl}/partner`,
            headers: { authorization: "{% 'Bearer ' & $secret('PARTNER_TOKEN') %}" },
          },
        },
      ],
    });
    const execution = await waitForExecution(ctx.app, await startExecution(ctx.app, workflowId));
    expect(execution.status).toBe('completed');
    expect(seenAuthorization).toBe(`Bearer ${SECRET}`);
    const definition = await ctx.app.inject({ method: 'GET', url: `/workflows/${workflowId}` });
    expect(definition.body).not.toContain(SECRET);
    expect(JSON.stringify(execution)).not.toContain(SECRET);
  });

  it('refuses $secret() outside http steps, so no output can echo it', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'echo attempt',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'echo',
          name: 'echo',
          step_type: 'noop',
          config: { leak: "{% $secret('PARTNER_TOKEN') %}" },
        },
      ],
    });
    const execution = await waitForExecution(ctx.app, await startExecution(ctx.app, workflowId));
    expect(execution.status).toBe('failed');
    expect(JSON.stringify(execution)).not.toContain(SECRET);
  });
});
