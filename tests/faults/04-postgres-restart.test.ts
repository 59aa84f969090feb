import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/private-servers.js';
import {
  createWorkflow,
  fanOutWorkflow,
  request,
  sleep,
  submitExecutions,
  useFaultScenario,
} from './harness.js';
import { waitAllTerminal } from './invariants.js';

const EXECUTIONS = 200;
const OUTAGE_MS = 4000;

// Postgres is stopped in immediate mode and started again: this file's own cluster (own port
// and data directory), never the shared server the other test files use.
const scenario = useFaultScenario('4-postgres-restart', {
  prefixLetters: 'fp',
  privatePostgres: true,
});

interface Probe {
  startedAt: number;
  endedAt: number;
  status: number | 'error';
  retryAfter: string | null;
}

describe('Postgres restarted (immediate mode) during a run', () => {
  it(`readiness says 503 during the outage and all ${EXECUTIONS} executions complete after it`, async () => {
    const { databaseUrl, fleet, server, privatePostgres: postgres } = scenario;
    const started = Date.now();
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    await Promise.all([fleet.api(port), fleet.worker(), fleet.worker()]);
    const workflowId = await createWorkflow(apiUrl, fanOutWorkflow(server.url));

    const probes: Probe[] = [];
    let probing = true;
    const prober = (async () => {
      while (probing) {
        const startedAt = Date.now();
        try {
          const answer = await request(`${apiUrl}/health/ready`, { timeoutMs: 5000 });
          probes.push({
            startedAt,
            endedAt: Date.now(),
            status: answer.status,
            retryAfter: answer.headers.get('retry-after'),
          });
        } catch {
          probes.push({ startedAt, endedAt: Date.now(), status: 'error', retryAfter: null });
        }
        await sleep(200);
      }
    })();

    const submitting = submitExecutions({
      baseUrl: () => apiUrl,
      workflowId,
      count: EXECUTIONS,
      concurrency: 8,
      spreadMs: 20_000,
      retryForMs: 90_000,
      keyPrefix: 'pg-restart',
    });
    await sleep(7000);
    await postgres.stopImmediate();
    const downAt = Date.now();
    await sleep(OUTAGE_MS);
    const upAt = Date.now();
    await postgres.begin();
    const submitted = await submitting;
    await waitAllTerminal(databaseUrl, undefined, 240_000);
    const recoveredMs = Date.now() - upAt;
    probing = false;
    await prober;

    const report = await scenario.checkInvariants(submitted.accepted, apiUrl);
    const duringOutage = probes.filter(
      (probe) => probe.startedAt >= downAt && probe.endedAt <= upAt,
    );
    const slowest = Math.max(...probes.map((probe) => probe.endedAt - probe.startedAt));
    scenario.recordFigures(
      report,
      { started, kills: 1, restarts: 1 },
      {
        postgres_restarts: 1,
        outage_ms: OUTAGE_MS,
        all_ended_seconds_after_restart: Math.round(recoveredMs / 1000),
        readiness_probes: probes.length,
        readiness_503_during_outage: duringOutage.filter((probe) => probe.status === 503).length,
        readiness_slowest_ms: slowest,
        answers: JSON.stringify(submitted.answers),
      },
    );
    expect(report.problems).toEqual([]);
    expect(submitted.failed, JSON.stringify(submitted.answers)).toBe(0);
    expect(submitted.accepted).toHaveLength(EXECUTIONS);
    expect(report.executions).toBe(EXECUTIONS);
    // Readiness: 200 or 503 (with Retry-After), never an error or a hang; 503 while Postgres is down.
    expect(probes.filter((probe) => probe.status !== 200 && probe.status !== 503)).toEqual([]);
    expect(probes.filter((probe) => probe.status === 503 && !probe.retryAfter)).toEqual([]);
    expect(duringOutage.length).toBeGreaterThan(0);
    expect(duringOutage.filter((probe) => probe.status !== 503)).toEqual([]);
    expect(slowest).toBeLessThan(5000);
    expect(probes.at(-1)?.status).toBe(200);
    // Execute answered 202, 200 (replay) or 503: never a 500, never a hang.
    for (const status of Object.keys(submitted.answers)) {
      expect(['200', '202', '503']).toContain(status);
    }
  });
});
