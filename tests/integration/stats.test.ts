import { Redis } from 'ioredis';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { testEnvironment, useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  type ExecutionBody,
  startExecution,
  stepStatuses,
  waitForExecution,
} from '../helpers/workflows.js';

// Long enough that no cached figure expires in the middle of a test on a slow machine.
const ctx = useTestApp({ STATS_CACHE_SECONDS: '30' });

/** a (noop) -> check (validate input.value is a number) -> hold (60 s delay when input.hold). */
const MIXED_WORKFLOW = {
  name: 'stats mix',
  workflow_type: 'sequential',
  steps: [
    { id: 'a', name: 'A', step_type: 'noop' },
    {
      id: 'check',
      name: 'Check',
      step_type: 'validate',
      config: { data: '{% input.value %}', schema: { type: 'number' } },
    },
    {
      id: 'hold',
      name: 'Hold',
      step_type: 'delay',
      condition: 'input.hold = true',
      config: { seconds: 60 },
    },
  ],
};

/** percentile_cont: linear interpolation between the closest ranks. */
/** The percentiles and per-step figures are cached a few seconds: drop them to read anew. */
async function forgetWindow(workflowId: string): Promise<void> {
  const redis = new Redis(inject('redisUrl'));
  try {
    await redis.del(`${ctx.prefix}:cache:stats:workflow-window:${workflowId}`);
  } finally {
    redis.disconnect();
  }
}

function percentile(values: number[], fraction: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  const rank = fraction * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  const lowValue = sorted[low] as number;
  return lowValue + (rank - low) * ((sorted[high] as number) - lowValue);
}

let workflowId: string;

describe('GET /workflows/{id}/stats', () => {
  const ended: ExecutionBody[] = [];

  it('counts a known mix of successes, failures and cancels, and a running execution', async () => {
    const { app } = ctx;
    workflowId = await createWorkflow(app, MIXED_WORKFLOW);

    const empty = await app.inject({ method: 'GET', url: `/workflows/${workflowId}/stats` });
    expect(empty.statusCode, empty.body).toBe(200);
    expect(empty.json()).toMatchObject({
      execution_count: 0,
      success_rate: null,
      average_duration_seconds: null,
      last_execution_at: null,
      steps: [
        { step_id: 'a', runs: 0 },
        { step_id: 'check', runs: 0 },
        { step_id: 'hold', runs: 0 },
      ],
    });

    const inputs = [{ value: 1 }, { value: 2 }, { value: 'bad' }, { value: 3 }, { value: 'x' }];
    const ids = [];
    for (const input of inputs) ids.push(await startExecution(app, workflowId, input));
    for (const id of ids) ended.push(await waitForExecution(app, id));
    expect(ended.map((execution) => execution.status)).toEqual([
      'completed',
      'completed',
      'failed',
      'completed',
      'failed',
    ]);

    // One more that holds in its delay step: it runs until cancelled.
    const held = await startExecution(app, workflowId, { value: 4, hold: true });
    await waitForExecution(app, held, (execution) => stepStatuses(execution).hold === 'waiting');
    const running = (
      await app.inject({ method: 'GET', url: `/workflows/${workflowId}/stats` })
    ).json();
    expect(running).toMatchObject({
      execution_count: 6,
      finished_count: 5,
      running_count: 1,
      success_count: 3,
      failure_count: 2,
    });

    const cancel = await app.inject({ method: 'POST', url: `/executions/${held}/cancel` });
    expect(cancel.statusCode, cancel.body).toBe(200);
    ended.push(await waitForExecution(app, held));
  });

  it('matches the executions actually run', async () => {
    const { app } = ctx;
    await forgetWindow(workflowId);
    const response = await app.inject({ method: 'GET', url: `/workflows/${workflowId}/stats` });
    expect(response.statusCode, response.body).toBe(200);
    const stats = response.json();
    expect(stats).toMatchObject({
      workflow_id: workflowId,
      name: 'stats mix',
      workflow_type: 'sequential',
      execution_count: 6,
      finished_count: 6,
      success_count: 3,
      failure_count: 2,
      cancelled_count: 1,
      timed_out_count: 0,
      running_count: 0,
      executions_by_status: {
        pending: 0,
        running: 0,
        waiting: 0,
        paused: 0,
        completed: 3,
        failed: 2,
        cancelled: 1,
        timed_out: 0,
      },
      success_rate: 0.5,
      window_executions: 6,
    });

    const durations = ended.map((execution) => {
      const body = execution as ExecutionBody & { duration_seconds: number };
      return Number(body.duration_seconds);
    });
    const mean = durations.reduce((sum, value) => sum + value, 0) / durations.length;
    expect(stats.average_duration_seconds).toBeCloseTo(mean, 2);
    expect(stats.p50_duration_seconds).toBeCloseTo(percentile(durations, 0.5), 2);
    expect(stats.p95_duration_seconds).toBeCloseTo(percentile(durations, 0.95), 2);
    const newest = ended.map((execution) => execution.started_at as string).sort();
    expect(Date.parse(stats.last_execution_at)).toBeGreaterThanOrEqual(
      Date.parse(newest[newest.length - 1] as string) - 1000,
    );

    const steps = Object.fromEntries(
      (stats.steps as Array<{ step_id: string; average_duration_seconds: number | null }>).map(
        (step) => [step.step_id, step],
      ),
    );
    expect(steps.a).toMatchObject({
      name: 'A',
      step_type: 'noop',
      runs: 6,
      completed: 6,
      failures: 0,
      retries: 0,
      attempts: 6,
    });
    expect(steps.check).toMatchObject({
      step_type: 'validate',
      runs: 6,
      completed: 4,
      failures: 2,
      retries: 0,
      attempts: 6,
    });
    // Skipped by its condition three times; cancelled with the two failed executions (it was
    // still pending) and with the cancelled one (it was sleeping).
    expect(steps.hold).toMatchObject({
      step_type: 'delay',
      runs: 1,
      completed: 0,
      failures: 0,
      skipped: 3,
      cancelled: 3,
      attempts: 1,
    });
    expect(steps.a?.average_duration_seconds).toBeGreaterThanOrEqual(0);
    expect(steps.hold?.average_duration_seconds).toBeNull();
  });

  it("keeps the seed's counter columns on the workflow true", async () => {
    const { app } = ctx;
    const workflow = (await app.inject({ method: 'GET', url: `/workflows/${workflowId}` })).json();
    const stats = (
      await app.inject({ method: 'GET', url: `/workflows/${workflowId}/stats` })
    ).json();
    // The seed's counters count ended executions; failures include timeouts.
    expect(workflow.execution_count).toBe(stats.finished_count);
    expect(workflow.success_count).toBe(stats.success_count);
    expect(workflow.failure_count).toBe(stats.failure_count);
    // Kept incrementally with two decimals, so within rounding of the exact average.
    expect(
      Math.abs(workflow.average_duration_seconds - stats.average_duration_seconds),
    ).toBeLessThan(0.02);
    expect(workflow.completed_at).not.toBeNull();
  });

  it('answers 404 problem details for an unknown workflow', async () => {
    const response = await ctx.app.inject({ method: 'GET', url: '/workflows/wf_nope/stats' });
    expect(response.statusCode).toBe(404);
    expect(response.headers['content-type']).toContain('application/problem+json');
    expect(response.json()).toMatchObject({ status: 404, code: 'WF_ERR_WORKFLOW_NOT_FOUND' });
  });
});

describe('GET /stats', () => {
  it('reports workflows, executions, throughput, queues and workers', async () => {
    const { app } = ctx;
    await createWorkflow(app, {
      name: 'parallel one',
      workflow_type: 'parallel',
      status: 'active',
    });
    // Start with an empty cache: earlier figures may be cached for a few seconds.
    const redis = new Redis(inject('redisUrl'));
    try {
      await redis.del(`${ctx.prefix}:cache:stats:system`);
    } finally {
      redis.disconnect();
    }
    const response = await app.inject({ method: 'GET', url: '/stats' });
    expect(response.statusCode, response.body).toBe(200);
    const stats = response.json();
    expect(stats.workflows).toMatchObject({
      total: 2,
      by_status: { draft: 1, active: 1, paused: 0, archived: 0 },
      by_type: { sequential: 1, parallel: 1, conditional: 0, event_driven: 0, loop: 0 },
    });
    expect(stats.executions).toMatchObject({
      total: 6,
      running: 0,
      by_status: { completed: 3, failed: 2, cancelled: 1, running: 0 },
      started_last_hour: 6,
      started_last_day: 6,
      finished_last_hour: 6,
      finished_last_day: 6,
    });
    expect(stats.throughput).toEqual({
      started_per_minute_last_hour: 0.1,
      finished_per_minute_last_5_minutes: 1.2,
      finished_per_minute_last_hour: 0.1,
    });
    // a: 6 runs, check: 6, hold: 1 run ended + 5 ended without starting (skipped, cancelled).
    expect(stats.steps.finished_last_hour).toBe(18);
    expect(stats.steps.average_queue_latency_seconds).toBeGreaterThanOrEqual(0);
    expect(stats.steps.average_duration_seconds).toBeGreaterThanOrEqual(0);
    expect(stats.queues).toHaveLength(1);
    expect(stats.queues[0]).toMatchObject({ name: 'steps', active: 0, failed: 0 });
    expect(stats.workers_online).toBeGreaterThanOrEqual(1);
  });

  it('is cached in Redis for a few seconds', async () => {
    const { app } = ctx;
    const first = (await app.inject({ method: 'GET', url: '/stats' })).json();
    const second = (await app.inject({ method: 'GET', url: '/stats' })).json();
    expect(second.generated_at).toBe(first.generated_at);
    const redis = new Redis(inject('redisUrl'));
    try {
      const ttl = await redis.ttl(`${ctx.prefix}:cache:stats:system`);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(ctx.config.STATS_CACHE_SECONDS);
    } finally {
      redis.disconnect();
    }
  });

  describe('with Redis unreachable (a closed port on loopback)', () => {
    let app: Awaited<ReturnType<typeof buildApp>> | undefined;
    afterAll(async () => {
      await app?.close();
    });

    it('still answers, without queue figures', async () => {
      app = await buildApp(
        loadConfig(
          testEnvironment(ctx.database, `${ctx.prefix}r`, {
            REDIS_URL: 'redis://127.0.0.1:1/0',
            SERVICE_ROLE: 'api',
          }),
        ),
      );
      const response = await app.inject({ method: 'GET', url: '/stats' });
      expect(response.statusCode, response.body).toBe(200);
      expect(response.json()).toMatchObject({
        executions: { total: 6 },
        queues: null,
        workers_online: null,
      });
      const workflowStats = await app.inject({ method: 'GET', url: '/workflows/wf_nope/stats' });
      expect(workflowStats.statusCode).toBe(404);
    });
  });
});

// Last: it runs one more execution, which the service-wide figures above do not expect.
describe('GET /workflows/{id}/stats, window cache', () => {
  it('serves the window figures from a short cache while every count stays live', async () => {
    const { app } = ctx;
    const read = async () =>
      (await app.inject({ method: 'GET', url: `/workflows/${workflowId}/stats` })).json();
    const before = await read();
    await waitForExecution(app, await startExecution(app, workflowId, { value: 5 }));
    const cached = await read();
    expect(cached.execution_count).toBe(before.execution_count + 1);
    expect(cached.success_count).toBe(before.success_count + 1);
    expect(cached.window_executions).toBe(before.window_executions);
    expect(cached.window_generated_at).toBe(before.window_generated_at);
    expect(Date.parse(cached.generated_at)).toBeGreaterThan(Date.parse(cached.window_generated_at));

    await forgetWindow(workflowId);
    const fresh = await read();
    expect(fresh.window_executions).toBe(before.window_executions + 1);
    expect(fresh.steps[0]).toMatchObject({ step_id: 'a', runs: before.steps[0].runs + 1 });
  });
});
