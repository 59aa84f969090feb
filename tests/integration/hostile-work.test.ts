import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/private-servers.js';
import { type ServiceProcess, startServiceProcess } from '../helpers/service-process.js';
import {
  createTestDatabase,
  deleteRedisPrefix,
  type TestDatabase,
  testEnvironment,
} from '../helpers/test-app.js';
import type { ExecutionBody } from '../helpers/workflows.js';

/*
 * Hostile work against a real service process (src/server.ts under tsx, so the sandbox's
 * worker entry loads as it does with `npm run dev`): hostile expressions each fail their own
 * execution, and a large fan-out runs to its end, while an ordinary execution completes and
 * readiness keeps answering 200.
 */

const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
let database: TestDatabase;
let prefix: string;
let service: ServiceProcess;
let base: string;

async function call(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${base}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
}

async function start(
  name: string,
  condition: string,
  b: Record<string, unknown> = { step_type: 'noop', config: { v: 1 }, condition },
): Promise<string> {
  const created = await call('POST', '/workflows', {
    name,
    workflow_type: 'sequential',
    steps: [
      { id: 'a', name: 'A', step_type: 'noop', config: {} },
      { id: 'b', name: 'B', ...b },
    ],
  });
  expect(created.status, await created.clone().text()).toBe(201);
  const { id } = (await created.json()) as { id: string };
  const started = await call('POST', `/workflows/${id}/execute`, { input_data: { go: true } });
  expect(started.status, await started.clone().text()).toBe(202);
  return ((await started.json()) as { id: string }).id;
}

/** Samples readiness every 200 ms while `work` runs: each answer's status and time. */
async function sampleReadiness<T>(
  work: () => Promise<T>,
): Promise<{ result: T; samples: { status: number; ms: number }[] }> {
  const samples: { status: number; ms: number }[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const started = Date.now();
      const response = await call('GET', '/health/ready');
      await response.arrayBuffer();
      samples.push({ status: response.status, ms: Date.now() - started });
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  })();
  try {
    return { result: await work(), samples };
  } finally {
    sampling = false;
    await sampler;
  }
}

async function finished(id: string, timeoutMs = 60_000): Promise<ExecutionBody> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const execution = (await (await call('GET', `/executions/${id}`)).json()) as ExecutionBody;
    if (TERMINAL.has(execution.status)) return execution;
    if (Date.now() > deadline) throw new Error(`execution ${id} still ${execution.status}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

beforeAll(async () => {
  database = await createTestDatabase();
  prefix = `t${randomBytes(5).toString('hex')}`;
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  service = await startServiceProcess(
    {
      ...testEnvironment(database, prefix),
      SERVICE_PORT: String(port),
      // Generous: on a busy machine the memory breaches must not hit the soft time guard first.
      EXPRESSION_TIMEOUT_MS: '8000',
      EXPRESSION_MEMORY_MB: '64',
    },
    'engine started',
    60_000,
  );
});

afterAll(async () => {
  if (service) {
    const code = await service.kill('SIGTERM');
    expect(code, service.output()).toBe(0);
  }
  if (prefix) await deleteRedisPrefix(prefix);
  if (database) await database.drop();
});

describe('expression hardening', () => {
  it('fails hostile conditions by their limit while the service stays ready', async () => {
    const samples: number[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const response = await call('GET', '/health/ready');
        samples.push(response.status);
        await response.arrayBuffer();
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    })();
    try {
      const regex = await start('regex', '$contains($pad("", 4000, "a"), /a*a*b/)');
      const huge = await start('huge', '$length($pad("", 200000000)) > 0');
      const ordinary = await start('ordinary', '$boolean(input.go)');
      const [regexRun, hugeRun, ordinaryRun] = await Promise.all([
        finished(regex),
        finished(huge),
        finished(ordinary),
      ]);
      expect(ordinaryRun.status, JSON.stringify(ordinaryRun)).toBe('completed');
      for (const [run, limit] of [
        [regexRun, 'time limit'],
        [hugeRun, 'memory limit'],
      ] as const) {
        expect(run.status, JSON.stringify(run)).toBe('failed');
        const step = run.steps.find((item) => item.step_id === 'b');
        expect(step?.status).toBe('failed');
        expect(step?.error?.message).toContain(limit);
      }
    } finally {
      sampling = false;
      await sampler;
    }
    expect(samples.length).toBeGreaterThan(0);
    expect(samples.every((status) => status === 200)).toBe(true);
    expect(service.output()).not.toContain('FATAL');
  });

  it('fails every hostile expression as expression_limit while the service answers within 1 s', async () => {
    const pid = service.child.pid;
    const { samples } = await sampleReadiness(async () => {
      const hostile = [
        await start('pad', '$length($pad("", 200000000)) > 0'),
        await start(
          'doubling',
          '$substring($reduce([1..27], function($acc, $i){ $acc & $acc }, "x"), 1, 2) = "y"',
        ),
        await start(
          'append',
          '($a := [1..4000000]; $count($append($append($a, $a), $append($a, $a))) > 0)',
        ),
        // 20,000 characters: the backtracking takes minutes, so the hard limit always stops it
        // (4,000 end in about 10 s, when the soft guard reports an ordinary D1012 instead).
        await start('transform', '', {
          step_type: 'transform',
          config: { expression: '$contains($pad("", 20000, "a"), /a*a*b/)' },
        }),
        await start('template', '', {
          step_type: 'noop',
          config: { v: '{% $length($pad("", 200000000)) %}' },
        }),
      ];
      const ordinary = await start('ordinary alongside', '$boolean(input.go)');
      const runs = await Promise.all([...hostile, ordinary].map((id) => finished(id, 120_000)));
      const ordinaryRun = runs.pop() as ExecutionBody;
      expect(ordinaryRun.status, JSON.stringify(ordinaryRun)).toBe('completed');
      for (const run of runs) {
        expect(run.status, JSON.stringify(run)).toBe('failed');
        const step = run.steps.find((item) => item.step_id === 'b');
        expect(step?.status, JSON.stringify(run)).toBe('failed');
        expect(step?.error, JSON.stringify(run)).toMatchObject({
          type: 'expression_limit',
          retryable: false,
        });
        expect(step?.error?.message).toMatch(/(time|memory|output) limit/);
      }
    });
    expectAliveAndReady(pid, samples);
  }, 180_000);

  it('runs a 20,000-item fan-out to its end while an ordinary execution completes alongside', async () => {
    const pid = service.child.pid;
    const items = 20_000;
    const created = await call('POST', '/workflows', {
      name: 'large fan-out',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'each',
          name: 'Each',
          step_type: 'noop',
          for_each: `[0..${items - 1}]`,
          for_each_concurrency: 100,
        },
      ],
    });
    expect(created.status, await created.clone().text()).toBe(201);
    const { id: workflowId } = (await created.json()) as { id: string };
    const { samples } = await sampleReadiness(async () => {
      const started = await call('POST', `/workflows/${workflowId}/execute`, {});
      expect(started.status, await started.clone().text()).toBe(202);
      const fanOut = ((await started.json()) as { id: string }).id;
      // Once items run, an ordinary execution starts and ends while the fan-out still runs:
      // its steps do not queue behind the fan-out's items.
      for (let polls = 0; ; polls += 1) {
        const view = (await (await call('GET', `/executions/${fanOut}`)).json()) as ExecutionBody;
        const own = view.steps.find((step) => step.step_id === 'each') as { status: string };
        if (own.status === 'running') break;
        if (polls > 600) throw new Error(`fan-out never started: ${JSON.stringify(view)}`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      const ordinary = await finished(
        await start('ordinary beside a fan-out', '$boolean(input.go)'),
      );
      expect(ordinary.status, JSON.stringify(ordinary)).toBe('completed');
      const meanwhile = (await (
        await call('GET', `/executions/${fanOut}`)
      ).json()) as ExecutionBody;
      expect(meanwhile.status).toBe('running');
      const done = await finished(fanOut, 240_000);
      expect(done.status, JSON.stringify(done.error)).toBe('completed');
      const own = done.steps.find((step) => step.step_id === 'each') as { items?: unknown };
      expect(own.items).toEqual({ total: items, by_status: { completed: items } });
    });
    expectAliveAndReady(pid, samples);
  }, 300_000);
});

/** The service process is the one started, still running, and answered readiness quickly. */
function expectAliveAndReady(pid: number | undefined, samples: { status: number; ms: number }[]) {
  expect(service.child.pid).toBe(pid);
  expect(service.child.exitCode).toBeNull();
  expect(service.child.signalCode).toBeNull();
  expect(samples.length).toBeGreaterThan(0);
  // A liveness bound, not a speed figure: the freezes this guards against lasted 10 s and more,
  // while two shared cores under a parallel test run can delay a healthy answer past 1 s.
  expect(samples.filter((sample) => sample.status !== 200 || sample.ms >= 5000)).toEqual([]);
  expect(service.output()).not.toContain('FATAL');
}
