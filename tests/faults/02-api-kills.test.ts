import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/private-servers.js';
import type { ServiceProcess } from '../helpers/service-process.js';
import {
  createWorkflow,
  httpStep,
  randomBetween,
  request,
  sleep,
  useFaultScenario,
} from './harness.js';
import { waitAllTerminal } from './invariants.js';

const LANES = 4;
const MAX_REQUESTS = 600;
const KILLS = 5;

const scenario = useFaultScenario('2-api-kills', { prefixLetters: 'fa' });

describe('the API process SIGKILLed during a stream of execute requests', () => {
  it('keeps every acknowledged execution and leaves no half-written one', async () => {
    const { databaseUrl, fleet, server } = scenario;
    const started = Date.now();
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    let [api] = await Promise.all([fleet.api(port), fleet.worker()]);
    const workflowId = await createWorkflow(apiUrl, {
      name: 'three calls',
      workflow_type: 'sequential',
      steps: ['one', 'two', 'three'].map((id) => httpStep(server.url, id)),
    });

    // Four lanes send requests back to back, so requests are in flight whenever the API dies.
    // A refused connection never reached the server and is tried again; any other failure
    // (the connection died mid-request) is final, and whatever it left behind (nothing, or a
    // whole execution whose answer was lost) stays visible to the invariants.
    const accepted: string[] = [];
    const answers: Record<string, number> = {};
    let sent = 0;
    let failedInFlight = 0;
    let streaming = true;
    const lanes = Array.from({ length: LANES }, async () => {
      while (streaming && sent < MAX_REQUESTS) {
        try {
          const answer = await request(`${apiUrl}/workflows/${workflowId}/execute`, {
            method: 'POST',
            body: { input_data: { sent } },
            timeoutMs: 30_000,
          });
          sent += 1;
          answers[answer.status] = (answers[answer.status] ?? 0) + 1;
          if (answer.status === 202) accepted.push((answer.body as { id: string }).id);
          await sleep(30);
        } catch (error) {
          const code = (error as { cause?: { code?: string } }).cause?.code;
          if (code === 'ECONNREFUSED') {
            await sleep(100);
            continue;
          }
          sent += 1;
          failedInFlight += 1;
          answers.error = (answers.error ?? 0) + 1;
        }
      }
    });
    let kills = 0;
    let restarts = 0;
    while (kills < KILLS) {
      await sleep(randomBetween(2000, 4000));
      await (api as ServiceProcess).kill('SIGKILL');
      kills += 1;
      api = await fleet.api(port);
      restarts += 1;
    }
    await sleep(1000);
    streaming = false;
    await Promise.all(lanes);

    await waitAllTerminal(databaseUrl, undefined, 240_000);
    const report = await scenario.checkInvariants(accepted, apiUrl);
    scenario.recordFigures(
      report,
      { started, kills, restarts },
      {
        requests: sent,
        acknowledged: accepted.length,
        failed_in_flight: failedInFlight,
        committed_unacknowledged: report.unacknowledged,
      },
    );
    expect(report.problems).toEqual([]);
    // The kills landed on requests in flight; everything else was acknowledged.
    expect(failedInFlight).toBeGreaterThan(0);
    expect(accepted.length + failedInFlight).toBe(sent);
    expect(Object.keys(answers).filter((status) => status !== '202' && status !== 'error')).toEqual(
      [],
    );
  });
});
