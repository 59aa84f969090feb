import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { CountingServer } from '../helpers/counting-server.js';
import { type Exposition, metricValue, parsePrometheus } from '../helpers/monitoring.js';
import { testEnvironment, useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  startExecution,
  stepStatuses,
  waitForExecution,
  waitUntil,
} from '../helpers/workflows.js';

const ctx = useTestApp({ HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1', SWEEP_INTERVAL_MS: '200' });

const server = new CountingServer().route('/flaky', (_request, response, call) => {
  // A retryable 500 the first time, then an answer.
  response.writeHead(call === 1 ? 500 : 200, { 'content-type': 'application/json' });
  response.end(JSON.stringify({ call }));
});
let baseUrl: string;

beforeAll(async () => {
  baseUrl = await server.listen();
});
afterAll(async () => {
  await server.close();
});

async function scrape(app = ctx.app): Promise<Exposition> {
  const response = await app.inject({ method: 'GET', url: '/metrics' });
  expect(response.statusCode, response.body).toBe(200);
  expect(response.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheus(response.body);
}

describe('GET /metrics', () => {
  it('serves valid Prometheus text with every metric family declared', async () => {
    const metrics = await scrape();
    const expected: Array<[string, string]> = [
      ['http_request_duration_seconds', 'histogram'],
      ['workflow_executions_started_total', 'counter'],
      ['workflow_executions_completed_total', 'counter'],
      ['workflow_executions_failed_total', 'counter'],
      ['workflow_executions_cancelled_total', 'counter'],
      ['workflow_executions_timed_out_total', 'counter'],
      ['workflow_step_duration_seconds', 'histogram'],
      ['workflow_step_attempts_total', 'counter'],
      ['workflow_step_retries_total', 'counter'],
      ['workflow_queue_jobs', 'gauge'],
      ['workflow_workers_online', 'gauge'],
      ['workflow_recovery_sweeps_total', 'counter'],
      ['workflow_recovery_sweep_actions_total', 'counter'],
      ['process_cpu_user_seconds_total', 'counter'],
    ];
    for (const [name, type] of expected) expect(metrics.types.get(name), name).toBe(type);
    // Queue depth is read on scrape, for every state.
    for (const state of ['waiting', 'active', 'delayed', 'failed']) {
      const sample = metrics.samples.find(
        (s) => s.name === 'workflow_queue_jobs' && s.labels.state === state,
      );
      expect(sample?.labels.queue, state).toBe('steps');
    }
    expect(metricValue(metrics, 'workflow_workers_online', { queue: 'steps' })).toBeGreaterThan(0);
  });

  it('moves the engine counters as executions run', async () => {
    const { app } = ctx;
    const before = await scrape();
    const sequential = await createWorkflow(app, {
      name: 'metrics sequential',
      workflow_type: 'sequential',
      steps: [
        { id: 'a', name: 'A', step_type: 'noop' },
        {
          id: 'call',
          name: 'Call',
          step_type: 'http',
          config: { url: `${baseUrl}/flaky` },
          retry_count: 2,
          retry_backoff: { type: 'fixed', delay_ms: 10 },
        },
      ],
    });
    const parallel = await createWorkflow(app, {
      name: 'metrics parallel',
      workflow_type: 'parallel',
      steps: [
        {
          id: 'check',
          name: 'Check',
          step_type: 'validate',
          config: { data: 'text', schema: { type: 'number' } },
        },
      ],
    });
    const holding = await createWorkflow(app, {
      name: 'metrics holding',
      workflow_type: 'sequential',
      steps: [{ id: 'hold', name: 'Hold', step_type: 'delay', config: { seconds: 60 } }],
    });
    const expiring = await createWorkflow(app, {
      name: 'metrics expiring',
      workflow_type: 'loop',
      config: { timeout_seconds: 1, loop: { max_iterations: 1 } },
      steps: [{ id: 'hold', name: 'Hold', step_type: 'delay', config: { seconds: 60 } }],
    });

    expect((await waitForExecution(app, await startExecution(app, sequential))).status).toBe(
      'completed',
    );
    expect((await waitForExecution(app, await startExecution(app, parallel))).status).toBe(
      'failed',
    );
    const held = await startExecution(app, holding);
    await waitForExecution(app, held, (execution) => stepStatuses(execution).hold === 'waiting');
    await app.inject({ method: 'POST', url: `/executions/${held}/cancel` });
    expect((await waitForExecution(app, held)).status).toBe('cancelled');
    // The recovery sweep times this one out.
    expect((await waitForExecution(app, await startExecution(app, expiring))).status).toBe(
      'timed_out',
    );

    const delta = (metrics: Exposition, name: string, labels: Record<string, string> = {}) =>
      metricValue(metrics, name, labels) - metricValue(before, name, labels);
    const expectations: Array<[string, Record<string, string>, number]> = [
      ['workflow_executions_started_total', { workflow_type: 'sequential' }, 2],
      ['workflow_executions_started_total', { workflow_type: 'parallel' }, 1],
      ['workflow_executions_started_total', { workflow_type: 'loop' }, 1],
      ['workflow_executions_completed_total', { workflow_type: 'sequential' }, 1],
      ['workflow_executions_failed_total', { workflow_type: 'parallel' }, 1],
      ['workflow_executions_cancelled_total', { workflow_type: 'sequential' }, 1],
      ['workflow_executions_timed_out_total', { workflow_type: 'loop' }, 1],
      ['workflow_step_attempts_total', { step_type: 'http' }, 2],
      ['workflow_step_retries_total', { step_type: 'http' }, 1],
      ['workflow_step_attempts_total', { step_type: 'noop' }, 1],
      ['workflow_step_retries_total', { step_type: 'noop' }, 0],
      ['workflow_step_attempts_total', { step_type: 'validate' }, 1],
      ['workflow_step_attempts_total', { step_type: 'delay' }, 2],
      ['workflow_step_duration_seconds_count', { step_type: 'noop', status: 'completed' }, 1],
      ['workflow_step_duration_seconds_count', { step_type: 'http', status: 'completed' }, 1],
      ['workflow_step_duration_seconds_count', { step_type: 'validate', status: 'failed' }, 1],
    ];
    let metrics = before;
    const timedOutBySweep = () =>
      delta(metrics, 'workflow_recovery_sweep_actions_total', { action: 'timed_out_executions' });
    const mismatches = () => [
      ...expectations
        .map(([name, labels, want]) => [name, labels, want, delta(metrics, name, labels)])
        .filter(([, , want, got]) => want !== got),
      // A sweep pass reports its actions when the whole pass ends, after its commits are visible.
      ...(timedOutBySweep() >= 1 ? [] : [['timed_out_executions', {}, '>= 1', timedOutBySweep()]]),
    ];
    // Counters are fed by the event relay after each commit: poll until they caught up.
    await waitUntil(
      async () => {
        metrics = await scrape();
        return mismatches().length === 0;
      },
      `the counters moved as expected; still off: ${JSON.stringify(mismatches())}`,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}: ${JSON.stringify(mismatches())}`);
    });
    expect(timedOutBySweep()).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics, 'workflow_recovery_sweeps_total')).toBeGreaterThan(0);
  });

  it('labels HTTP durations with the route pattern, not the raw URL', async () => {
    const metrics = await scrape();
    const executes = metrics.samples.filter(
      (s) =>
        s.name === 'http_request_duration_seconds_count' &&
        s.labels.route === '/workflows/:id/execute',
    );
    expect(executes.map((s) => [s.labels.method, s.labels.status_code])).toEqual([['POST', '202']]);
    expect(executes[0]?.value).toBeGreaterThanOrEqual(4);
    const routes = new Set(
      metrics.samples.filter((s) => s.labels.route !== undefined).map((s) => s.labels.route),
    );
    for (const route of routes) expect(route).not.toMatch(/wf_|ex_/);
    await ctx.app.inject({ method: 'GET', url: '/no/such/path' });
    const after = await scrape();
    expect(
      metricValue(after, 'http_request_duration_seconds_count', {
        route: 'unmatched',
        status_code: '404',
      }),
    ).toBeGreaterThanOrEqual(1);
  });

  describe('a second app in the same process', () => {
    let other: Awaited<ReturnType<typeof buildApp>> | undefined;
    afterAll(async () => {
      await other?.close();
    });

    it('has a registry of its own', async () => {
      other = await buildApp(
        loadConfig(testEnvironment(ctx.database, `${ctx.prefix}m`, { SERVICE_ROLE: 'api' })),
      );
      const metrics = await scrape(other);
      expect(metricValue(metrics, 'http_request_duration_seconds_count')).toBe(0);
      expect(metricValue(metrics, 'workflow_executions_started_total')).toBe(0);
    });
  });
});
