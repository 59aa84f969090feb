import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CountingServer, until } from '../helpers/counting-server.js';
import { type ServiceProcess, startServiceProcess } from '../helpers/service-process.js';
import { testEnvironment, useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  startExecution,
  stepStatuses,
  waitForExecution,
} from '../helpers/workflows.js';

// This process serves the API only; steps run in worker processes that the test kills.
const ctx = useTestApp({ SERVICE_ROLE: 'api', HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1' });
const server = new CountingServer();
let baseUrl = '';
const workers: ServiceProcess[] = [];

function workerEnvironment(): Record<string, string> {
  return testEnvironment(ctx.database, ctx.prefix, {
    SERVICE_ROLE: 'worker',
    HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1',
    // A killed worker's job lock lapses quickly, so another worker takes the job over.
    JOB_LOCK_MS: '2000',
    SWEEP_INTERVAL_MS: '500',
    SWEEP_STALE_AFTER_MS: '3000',
    LOG_LEVEL: 'info',
  });
}

beforeAll(async () => {
  // The first call of /b hangs: the worker holding it is killed mid-step.
  server.route('/b', (_request, response, call) => {
    if (call > 1) response.writeHead(200, { 'content-type': 'application/json' }).end('{"b":true}');
  });
  baseUrl = await server.listen();
});

afterAll(async () => {
  for (const worker of workers) await worker.kill('SIGKILL');
  await server.close();
});

describe('crash recovery', () => {
  it('finishes an execution whose worker was SIGKILLed mid-step, re-running only the interrupted step', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'three calls',
      workflow_type: 'sequential',
      steps: ['a', 'b', 'c'].map((id) => ({
        id,
        name: id,
        step_type: 'http',
        config: { url: `${baseUrl}/${id}` },
        timeout_seconds: 120,
      })),
    });
    const first = await startServiceProcess(workerEnvironment());
    workers.push(first);
    const executionId = await startExecution(ctx.app, workflowId);
    await until(() => server.count('/b') === 1, 20_000, 'step b to start');

    expect(await first.kill('SIGKILL')).toBeNull();
    workers.push(await startServiceProcess(workerEnvironment()));

    const execution = await waitForExecution(ctx.app, executionId, undefined, 45_000);
    expect(execution.status, JSON.stringify(execution)).toBe('completed');
    expect(stepStatuses(execution)).toEqual({ a: 'completed', b: 'completed', c: 'completed' });
    // Completed steps ran exactly once; only the interrupted one ran again (at-least-once).
    expect(server.count('/a')).toBe(1);
    expect(server.count('/b')).toBe(2);
    expect(server.count('/c')).toBe(1);
    // Two process starts (up to 30 s each on a loaded machine) plus the waits above.
  }, 150_000);
});
