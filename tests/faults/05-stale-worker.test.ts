import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/private-servers.js';
import type { ServiceProcess } from '../helpers/service-process.js';
import { createWorkflow, httpStep, sleep, submitExecutions, useFaultScenario } from './harness.js';
import { waitAllTerminal } from './invariants.js';

const EXECUTIONS = 5;
const JOB_LOCK_MS = 2000;
const FENCED = 'late result ignored: the attempt was fenced off';

/** The worker whose event loop is frozen (SIGSTOP) while it holds a step. */
let stale: ServiceProcess | undefined;
let stalledPath: string | undefined;
let resumeStale: (() => void) | undefined;
const stalled = new Promise<void>((resolve) => {
  resumeStale = resolve;
});
const scenario = useFaultScenario('5-stale-worker', {
  prefixLetters: 'fs',
  env: { JOB_LOCK_MS: String(JOB_LOCK_MS) },
  sideEffects: {
    onCall: (path, call) => {
      // The first call of a `stall` step: freeze the worker making it, mid-call, holding the
      // step and its job lock. Its answer is sent, but it cannot read it until SIGCONT.
      if (path.endsWith('/stall') && call === 1 && stalledPath === undefined && stale) {
        stalledPath = path;
        stale.child.kill('SIGSTOP');
        resumeStale?.();
      }
    },
  },
  // A failed test may leave the worker frozen.
  beforeTeardown: () => {
    if (stale?.child.pid) stale.child.kill('SIGCONT');
  },
});

describe('a worker frozen past its job lock while it holds a step', () => {
  it('is fenced off: the other worker’s result stands and the step completes once', async () => {
    const { databaseUrl, fleet, server } = scenario;
    const started = Date.now();
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    [, stale] = await Promise.all([fleet.api(port), fleet.worker()]);
    const workflowId = await createWorkflow(apiUrl, {
      name: 'stall in the middle',
      workflow_type: 'sequential',
      steps: ['before', 'stall', 'after'].map((id) => httpStep(server.url, id)),
    });
    const submitted = await submitExecutions({
      baseUrl: () => apiUrl,
      workflowId,
      count: EXECUTIONS,
      concurrency: EXECUTIONS,
    });
    expect(submitted.accepted).toHaveLength(EXECUTIONS);

    await Promise.race([
      stalled,
      sleep(60_000).then(() => {
        throw new Error('no stall step was called');
      }),
    ]);
    const frozenAt = Date.now();
    // A second worker takes the jobs over once the frozen one's locks lapse.
    await fleet.worker();
    const [executionId, stepId] = (stalledPath as string).split('/').slice(1);
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const deadline = Date.now() + 90_000;
      for (;;) {
        const { rows } = await client.query<{ status: string }>(
          'SELECT status FROM step_executions WHERE execution_id = $1 AND step_id = $2',
          [executionId, stepId],
        );
        if (rows[0]?.status === 'completed') break;
        if (Date.now() > deadline) throw new Error('the frozen step was not taken over');
        await sleep(100);
      }
    } finally {
      await client.end();
    }
    const frozenMs = Date.now() - frozenAt;
    const staleWorker = stale as ServiceProcess;
    staleWorker.child.kill('SIGCONT');
    // The stale worker now reads its (first) answer and tries to record it.
    const deadline = Date.now() + 30_000;
    while (!staleWorker.output().includes(FENCED) && Date.now() < deadline) await sleep(100);

    await waitAllTerminal(databaseUrl, submitted.accepted, 120_000);
    const report = await scenario.checkInvariants(submitted.accepted, apiUrl);
    const output = await (async () => {
      const reader = new pg.Client({ connectionString: databaseUrl });
      await reader.connect();
      try {
        const { rows } = await reader.query<{ output: { body: { call: number } } }>(
          'SELECT output FROM step_executions WHERE execution_id = $1 AND step_id = $2',
          [executionId, stepId],
        );
        return rows[0]?.output;
      } finally {
        await reader.end();
      }
    })();
    const fencedResults = staleWorker.output().split(FENCED).length - 1;
    scenario.recordFigures(
      report,
      { started, kills: 0, restarts: 0 },
      {
        frozen_ms: frozenMs,
        job_lock_ms: JOB_LOCK_MS,
        stale_results_fenced: fencedResults,
      },
    );
    expect(report.problems).toEqual([]);
    expect(frozenMs).toBeGreaterThan(JOB_LOCK_MS);
    // The stale worker's late result was refused; the recorded output is the other worker's
    // (its call, the second), and the stale call counts as the one extra side effect.
    expect(fencedResults).toBeGreaterThanOrEqual(1);
    expect(output?.body.call).toBe(2);
    expect(server.count(stalledPath as string)).toBe(2);
  });
});
