import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { projectRoot } from '../../src/project.js';
import { until } from '../helpers/counting-server.js';
import { useTestApp } from '../helpers/test-app.js';
import { SEED_EXAMPLE } from '../helpers/workflows.js';

// The seed README's three usage examples, sent over real HTTP as written, with
// examples/worker.ts doing the `validation`, `transformation` and `storage` steps.
const ctx = useTestApp();
let baseUrl = '';
let worker: ChildProcess | undefined;
let workerLog = '';

beforeAll(async () => {
  await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  const address = ctx.app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  baseUrl = `http://127.0.0.1:${address.port}`;
  worker = spawn(
    process.execPath,
    ['--import', 'tsx', path.join(projectRoot, 'examples/worker.ts')],
    {
      cwd: projectRoot,
      env: { ...process.env, WORKFLOW_SERVICE_URL: baseUrl },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  worker.stdout?.on('data', (chunk: Buffer) => {
    workerLog += chunk.toString();
  });
  worker.stderr?.on('data', (chunk: Buffer) => {
    workerLog += chunk.toString();
  });
  await until(() => workerLog.includes('polling'), 20_000, 'the example worker to start');
});

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const exited = new Promise((resolve) => worker?.once('exit', resolve));
    worker.kill('SIGTERM');
    await exited;
  }
});

async function json(response: Response): Promise<Record<string, unknown>> {
  return (await response.json()) as Record<string, unknown>;
}

describe('the seed README usage examples', () => {
  it('create, execute and monitor a sequential workflow, end to end', async () => {
    // "Create a Sequential Workflow": the seed's workflow_data, verbatim (tests/helpers/workflows.ts)
    const workflowData = SEED_EXAMPLE;
    const created = await fetch(`${baseUrl}/workflows`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(workflowData),
    });
    expect(created.status).toBe(201);
    const workflowId = (await json(created)).id as string;

    // "Execute a Workflow"
    const executionData = {
      input_data: { source_file: 'data.csv', processing_rules: 'rules.json' },
    };
    const started = await fetch(`${baseUrl}/workflows/${workflowId}/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(executionData),
    });
    expect(started.status).toBe(202);
    const executionId = (await json(started)).id as string;

    // "Monitor Execution"
    let execution: Record<string, unknown> = {};
    await until(
      async () => {
        execution = await json(await fetch(`${baseUrl}/executions/${executionId}`));
        return execution.status === 'completed' || execution.status === 'failed';
      },
      30_000,
      `execution to finish (worker log: ${workerLog})`,
    );
    expect(execution.status).toBe('completed');
    expect(execution.step_results).toMatchObject({
      data_validation: { valid: true, schema: 'data_schema.json' },
      data_transformation: { transformed: true, source: 'data.csv' },
      data_storage: { stored: true, destination: 'database' },
    });
    const stats = await fetch(`${baseUrl}/workflows/${workflowId}/stats`);
    expect(stats.status).toBe(200);
    expect(await json(stats)).toMatchObject({ execution_count: 1, success_count: 1 });
  });
});
