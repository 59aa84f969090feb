import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/private-servers.js';
import type { ServiceProcess } from '../helpers/service-process.js';
import {
  alive,
  createWorkflow,
  fanOutWorkflow,
  sleep,
  submitExecutions,
  useFaultScenario,
} from './harness.js';
import { waitAllTerminal } from './invariants.js';

const EXECUTIONS = 100;
/** The service's default: the pill's process may die this often, plus once. */
const MAX_CRASHED_CLAIMS = 3;
/** How long the pill's call is held before its workers die: attempts claimed together with
 * the pill (redelivered by the same stalled check) finish first, so the kills do not follow
 * them from one worker generation to the next as they follow the pill. */
const HOLD_MS = 1500;

const scenario = useFaultScenario('8-poison-pill', {
  prefixLetters: 'fp',
  sideEffects: { minDelayMs: 5, maxDelayMs: 60 },
});

interface Slot {
  process: ServiceProcess | undefined;
  restarting?: Promise<void>;
}
const slots: Slot[] = [];
let kills = 0;
let restarts = 0;
let pillCalls = 0;

/** SIGKILLs the workers alive now (one of them holds the pill's call) and starts new ones. */
async function killWorkers(): Promise<void> {
  await sleep(HOLD_MS);
  for (const slot of slots) {
    if (!slot.process || !alive(slot.process)) continue;
    await slot.process.kill('SIGKILL');
    kills += 1;
    slot.process = undefined;
    slot.restarting = scenario.fleet.worker().then((process) => {
      slot.process = process;
      restarts += 1;
    });
  }
}

// The pill's outside world: each call means a worker is running the pill, and that worker
// dies, as if the step had OOM-killed it. The call is never answered.
const pill = createServer(() => {
  pillCalls += 1;
  void killWorkers();
});

afterAll(async () => {
  pill.closeAllConnections();
  await new Promise((resolve) => pill.close(resolve));
});

describe('a poison pill: a step that kills its worker every time it runs', () => {
  it(`fails as crashed after a bounded number of kills; ${EXECUTIONS} other executions complete`, async () => {
    const { databaseUrl, fleet, server } = scenario;
    const started = Date.now();
    await new Promise<void>((resolve) => pill.listen(0, '127.0.0.1', resolve));
    const pillUrl = `http://127.0.0.1:${(pill.address() as AddressInfo).port}`;
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    const workers = await Promise.all([fleet.api(port).then(() => fleet.worker()), fleet.worker()]);
    slots.push(...workers.map((process) => ({ process })));

    const workflowId = await createWorkflow(apiUrl, fanOutWorkflow(server.url));
    const pillWorkflowId = await createWorkflow(apiUrl, {
      name: 'poison pill',
      workflow_type: 'sequential',
      steps: [
        {
          id: 'pill',
          name: 'pill',
          step_type: 'http',
          config: { url: `{% '${pillUrl}/' & execution.id %}` },
          timeout_seconds: 120,
          retry_count: 5,
        },
      ],
    });
    const submitting = submitExecutions({
      baseUrl: () => apiUrl,
      workflowId,
      count: EXECUTIONS,
      concurrency: 8,
      spreadMs: 40_000,
    });
    await sleep(2000);
    const pillSubmitted = await submitExecutions({
      baseUrl: () => apiUrl,
      workflowId: pillWorkflowId,
      count: 1,
      concurrency: 1,
    });
    const pillId = pillSubmitted.accepted[0] as string;
    expect(pillId).toBeDefined();
    const submitted = await submitting;
    expect(submitted.failed, JSON.stringify(submitted.answers)).toBe(0);

    await waitAllTerminal(databaseUrl, [...submitted.accepted, pillId], 240_000);
    // The workers are no longer killed: wait out any restart, then check nothing calls again.
    await Promise.all(slots.map((slot) => slot.restarting));
    const callsAtEnd = pillCalls;
    await sleep(3000);
    expect(pillCalls).toBe(callsAtEnd);

    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    const pillRun = await client
      .query<{ status: string; error: { type: string; message: string; retryable: boolean } }>(
        `SELECT s.status, s.error FROM step_executions s WHERE s.execution_id = $1`,
        [pillId],
      )
      .finally(() => client.end());
    expect(pillRun.rows).toHaveLength(1);
    expect(pillRun.rows[0]?.status).toBe('failed');
    expect(pillRun.rows[0]?.error).toMatchObject({ type: 'crashed', retryable: false });
    expect(pillRun.rows[0]?.error.message).toContain(`died ${MAX_CRASHED_CLAIMS + 1} times`);
    // Its handler ran once per claim that found no crash limit passed: a bounded number.
    expect(pillCalls).toBe(MAX_CRASHED_CLAIMS + 1);

    const report = await scenario.checkInvariants(submitted.accepted, apiUrl);
    scenario.recordFigures(
      report,
      { started, kills, restarts },
      {
        pill_calls: pillCalls,
        step_runs: report.runs,
        side_effect_calls: report.sideEffectCalls,
        repeated_side_effects: report.repeatedSideEffects,
      },
    );
    // The pill failed on purpose; everything else holds for every execution.
    expect(report.problems.filter((problem) => !problem.includes(pillId))).toEqual([]);
    expect(report.executions).toBe(EXECUTIONS + 1);
    expect(submitted.accepted).toHaveLength(EXECUTIONS);
    expect(kills).toBeLessThanOrEqual(2 * (MAX_CRASHED_CLAIMS + 1));
  });
});
