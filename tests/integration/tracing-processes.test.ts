import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTracing, stopTracing } from '../../src/monitoring/tracing.js';
import { CountingServer } from '../helpers/counting-server.js';
import type { DecodedSpan } from '../helpers/otlp-protobuf.js';
import { OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { type ServiceProcess, startServiceProcess } from '../helpers/service-process.js';
import { deleteRedisPrefix, testEnvironment, useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  startExecution,
  waitForExecution,
  waitUntil,
} from '../helpers/workflows.js';

/**
 * Tracing across processes (issue 18, "Proof"; README "Tracing"): this process is the API
 * (and the OTLP receiver, and the peer the http steps call); two worker processes run the
 * steps and export their spans over OTLP/HTTP. One worker is killed while an item of a
 * fan-out is in flight; Redis is then wiped and the failed execution retried. Everything must
 * land in the one trace the execute request's `traceparent` began.
 */

const receiver = new OtlpReceiver();
const peer = new CountingServer();
const ctx = useTestApp({ SERVICE_ROLE: 'api', HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1' });
const workers: ServiceProcess[] = [];
const seenTraceparents: string[] = [];
let otlpUrl: string;
let baseUrl: string;

beforeAll(async () => {
  otlpUrl = await receiver.listen();
  // The first call of item 2 never answers: its worker is killed while it waits.
  peer.route('/item/2', (_request, response, call) => {
    if (call > 1) response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  // Never answers: the execution calling it is cancelled.
  peer.route('/hang', () => {});
  peer.route('/traced', (request, response) => {
    seenTraceparents.push(String(request.headers.traceparent));
    response.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
  // Fails both attempts of the first run; answers once the execution is retried.
  peer.route('/flaky', (_request, response, call) => {
    response.writeHead(call <= 2 ? 500 : 200, { 'content-type': 'application/json' }).end('{}');
  });
  baseUrl = await peer.listen();
  // This process starts executions: it chooses their trace context (no spans of its own).
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = otlpUrl;
  process.env.OTEL_EXPORTER_OTLP_PROTOCOL = 'http/json';
  process.env.OTEL_BSP_SCHEDULE_DELAY = '100';
  expect(startTracing('workflow-api')).toBe(true);
  // Read when the exporter was made: the workers started later choose their own.
  delete process.env.OTEL_EXPORTER_OTLP_PROTOCOL;
});

afterAll(async () => {
  await Promise.all(workers.map((worker) => worker.kill('SIGTERM')));
  await stopTracing();
  delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
  delete process.env.OTEL_BSP_SCHEDULE_DELAY;
  await peer.close();
  await receiver.close();
});

/** A worker exporting to the receiver; `http/json` unless `protocol` is null (the default). */
function workerEnvironment(name: string, protocol: string | null = 'http/json') {
  return testEnvironment(ctx.database, ctx.prefix, {
    SERVICE_ROLE: 'worker',
    HTTP_STEP_ALLOWED_HOSTS: '127.0.0.1',
    // A killed worker's job goes to another within seconds.
    JOB_LOCK_MS: '2000',
    OTEL_EXPORTER_OTLP_ENDPOINT: otlpUrl,
    ...(protocol ? { OTEL_EXPORTER_OTLP_PROTOCOL: protocol } : {}),
    OTEL_BSP_SCHEDULE_DELAY: '100',
    OTEL_SERVICE_NAME: name,
  });
}

/** Runs the workflow to completion in a trace of its own; what arrived over protobuf of it. */
async function runToCompletion(workflowId: string): Promise<() => DecodedSpan[]> {
  const traceId = randomBytes(16).toString('hex');
  const executionId = await startExecution(
    ctx.app,
    workflowId,
    {},
    { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` },
  );
  const ended = await waitForExecution(ctx.app, executionId, undefined, 30_000);
  expect(ended.status).toBe('completed');
  return () => receiver.protobufSpans.filter((span) => span.traceId === traceId);
}

const attemptsOf = (spans: ReceivedSpan[], stepId: string) =>
  spans.filter((span) => span.attributes['workflow.step.id'] === stepId);

describe('tracing across processes', () => {
  it('puts an execution run by two workers, a kill, a Redis loss and a retry in one trace', async () => {
    workers.push(await startServiceProcess(workerEnvironment('worker-a')));
    const workflowId = await createWorkflow(ctx.app, {
      name: 'traced fan-out',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'fan',
          name: 'Fan out',
          step_type: 'http',
          config: { url: `{% '${baseUrl}/item/' & $string(item) %}` },
          for_each: 'input.items',
          for_each_concurrency: 3,
        },
        { id: 'call', name: 'Call', step_type: 'http', config: { url: `${baseUrl}/traced` } },
        {
          id: 'flaky',
          name: 'Flaky',
          step_type: 'http',
          config: { url: `${baseUrl}/flaky` },
          retry_count: 1,
          retry_backoff: { type: 'fixed', delay_ms: 100, max_delay_ms: 100 },
        },
      ],
    });
    const traceId = randomBytes(16).toString('hex');
    const callerSpanId = randomBytes(8).toString('hex');
    const executionId = await startExecution(
      ctx.app,
      workflowId,
      { items: [1, 2, 3] },
      { traceparent: `00-${traceId}-${callerSpanId}-01` },
    );

    // Kill worker A while item 2 is in flight; worker B takes its job over.
    await waitUntil(async () => peer.count('/item/2') === 1, 'item 2 in flight', 30_000);
    workers.push(await startServiceProcess(workerEnvironment('worker-b')));
    await (workers.shift() as ServiceProcess).kill('SIGKILL');
    const failed = await waitForExecution(ctx.app, executionId, undefined, 60_000);
    expect(failed.status, JSON.stringify(failed.error)).toBe('failed');

    // Redis lost, then the execution retried: its trace context lives in Postgres.
    await deleteRedisPrefix(ctx.prefix);
    const retried = await ctx.app.inject({
      method: 'POST',
      url: `/executions/${executionId}/retry`,
    });
    expect(retried.statusCode, retried.body).toBeLessThan(300);
    const completed = await waitForExecution(
      ctx.app,
      executionId,
      (execution) => execution.status === 'completed',
      60_000,
    );
    expect(completed.status).toBe('completed');

    await waitUntil(
      () => attemptsOf(receiver.inTrace(traceId), 'flaky').length === 3,
      'the retried attempt exported',
      20_000,
    );
    const spans = receiver.inTrace(traceId);
    const executionSpans = spans.filter((span) => span.name.startsWith('execution '));
    expect(executionSpans).toHaveLength(1);
    const executionSpan = executionSpans[0] as ReceivedSpan;
    expect(executionSpan.parentSpanId).toBe(callerSpanId);
    expect(executionSpan.attributes).toMatchObject({
      'workflow.id': workflowId,
      'workflow.version': 1,
      'workflow.execution.id': executionId,
      'workflow.execution.status': 'failed',
    });

    // Every step attempt, whichever process ran it, is a child of the execution span.
    const attempts = spans.filter((span) => span !== executionSpan);
    for (const span of attempts) {
      expect(span.parentSpanId, span.name).toBe(executionSpan.spanId);
      expect(span.attributes['workflow.execution.id']).toBe(executionId);
      expect(span.attributes['workflow.step.type']).toBe('http');
    }
    expect(new Set(attempts.map((span) => span.service))).toEqual(
      new Set(['worker-a', 'worker-b']),
    );

    // The killed worker's attempt of item 2 shows as interrupted, then its re-run completed.
    const item2 = attempts.filter((span) => span.attributes['workflow.step.item_index'] === 1);
    expect(item2.map((span) => span.attributes['workflow.step.status']).sort()).toEqual([
      'completed',
      'interrupted',
    ]);
    const interrupted = item2.find((span) => span.statusCode === 2);
    expect(interrupted?.attributes['error.type']).toBe('interrupted');
    expect(attemptsOf(attempts, 'fan').length).toBe(4);

    // The http step sent its attempt's context to the service it called.
    const call = attemptsOf(attempts, 'call');
    expect(call).toHaveLength(1);
    expect(seenTraceparents).toEqual([`00-${traceId}-${call[0]?.spanId}-01`]);

    // Both failed attempts and the retried one, after the Redis loss, in the same trace.
    const flaky = attemptsOf(attempts, 'flaky');
    expect(flaky.map((span) => span.attributes['workflow.step.status'])).toEqual([
      'failed',
      'failed',
      'completed',
    ]);
    expect(flaky.map((span) => span.attributes['workflow.step.attempt'])).toEqual([1, 2, 3]);
    expect(flaky[0]?.attributes['error.type']).toBeTypeOf('string');
  }, 180_000);

  it('exports http/protobuf by default', async () => {
    // Only the new worker may run the step: it is the one without a protocol set.
    await Promise.all(workers.splice(0).map((worker) => worker.kill('SIGTERM')));
    workers.push(await startServiceProcess(workerEnvironment('worker-proto', null)));
    const workflowId = await createWorkflow(ctx.app, {
      name: 'traced over protobuf',
      workflow_type: 'sequential',
      steps: [
        { id: 'only', name: 'Only', step_type: 'http', config: { url: `${baseUrl}/traced` } },
      ],
    });
    const inTrace = await runToCompletion(workflowId);
    await waitUntil(() => inTrace().length === 2, 'both spans over protobuf', 20_000);
    expect(receiver.contentTypes).toContain('application/x-protobuf');
    const execution = inTrace().find((span) => span.name.startsWith('execution '));
    const step = inTrace().find((span) => span.name === 'step only');
    expect(step?.parentSpanId).toBe(execution?.spanId);
    expect(step?.service).toBe('worker-proto');
  }, 90_000);

  it('sends the execution span of a cancelled execution from the process that cancelled it', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'traced and cancelled',
      workflow_type: 'sequential',
      steps: [{ id: 'hang', name: 'Hang', step_type: 'http', config: { url: `${baseUrl}/hang` } }],
    });
    const traceId = randomBytes(16).toString('hex');
    const callerSpanId = randomBytes(8).toString('hex');
    const executionId = await startExecution(
      ctx.app,
      workflowId,
      {},
      {
        traceparent: `00-${traceId}-${callerSpanId}-01`,
      },
    );
    await waitUntil(() => peer.count('/hang') === 1, 'the call in flight', 30_000);
    const cancelled = await ctx.app.inject({
      method: 'POST',
      url: `/executions/${executionId}/cancel`,
    });
    expect(cancelled.statusCode, cancelled.body).toBeLessThan(300);

    // This (API) process sent the execution span over http/json; the worker its attempt's.
    await waitUntil(() => receiver.inTrace(traceId).length === 1, 'the execution span', 20_000);
    const execution = receiver.inTrace(traceId)[0] as ReceivedSpan;
    expect(execution.service).toBe('workflow-api');
    expect(execution.parentSpanId).toBe(callerSpanId);
    expect(execution.attributes['workflow.execution.status']).toBe('cancelled');
    expect(execution.statusCode).toBe(2);
    const step = () => receiver.protobufSpans.find((span) => span.traceId === traceId);
    await waitUntil(() => step() !== undefined, 'the aborted attempt span', 20_000);
    expect(step()?.parentSpanId).toBe(execution.spanId);
  }, 90_000);

  it('puts a sub-workflow in its parent execution trace, under the parent execution span', async () => {
    const child = await createWorkflow(ctx.app, {
      name: 'traced child',
      workflow_type: 'sequential',
      steps: [
        { id: 'leaf', name: 'Leaf', step_type: 'http', config: { url: `${baseUrl}/traced` } },
      ],
    });
    const parent = await createWorkflow(ctx.app, {
      name: 'traced parent',
      workflow_type: 'sequential',
      steps: [{ id: 'sub', name: 'Sub', step_type: 'subworkflow', config: { workflow_id: child } }],
    });
    const inTrace = await runToCompletion(parent);
    const named = (name: string) => inTrace().find((span) => span.name === name);
    await waitUntil(
      () => named(`execution ${parent}`) !== undefined && named(`execution ${child}`) !== undefined,
      'both execution spans',
      20_000,
    );
    expect(named(`execution ${child}`)?.parentSpanId).toBe(named(`execution ${parent}`)?.spanId);
    await waitUntil(() => named('step leaf') !== undefined, 'the child step span', 20_000);
    expect(named('step leaf')?.parentSpanId).toBe(named(`execution ${child}`)?.spanId);
  }, 90_000);

  it("continues an event publisher's trace in the executions the event starts", async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'traced on events',
      workflow_type: 'event_driven',
      status: 'active',
      config: { trigger: { event: 'order.traced' } },
      steps: [
        { id: 'leaf', name: 'Leaf', step_type: 'http', config: { url: `${baseUrl}/traced` } },
      ],
    });
    const traceId = randomBytes(16).toString('hex');
    const publisherSpanId = randomBytes(8).toString('hex');
    const published = await ctx.app.inject({
      method: 'POST',
      url: '/events',
      headers: { traceparent: `00-${traceId}-${publisherSpanId}-01` },
      payload: { type: 'order.traced', data: {} },
    });
    expect(published.statusCode, published.body).toBe(202);
    const [started] = published.json().started_executions as string[];
    const ended = await waitForExecution(ctx.app, started as string, undefined, 30_000);
    expect(ended.status).toBe('completed');
    const named = (name: string) =>
      receiver.protobufSpans.find((span) => span.traceId === traceId && span.name === name);
    await waitUntil(() => named(`execution ${workflowId}`) !== undefined, 'its span', 20_000);
    expect(named(`execution ${workflowId}`)?.parentSpanId).toBe(publisherSpanId);
  }, 90_000);
});
