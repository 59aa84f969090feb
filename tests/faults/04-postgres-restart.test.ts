import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFailed } from 'vitest';
import { ensureDatabase } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrate.js';
import { freePort, PrivatePostgres } from '../helpers/private-servers.js';
import { deleteRedisPrefix } from '../helpers/test-app.js';
import { recordFigures } from './figures.js';
import {
  createWorkflow,
  Fleet,
  fanOutWorkflow,
  request,
  serviceEnv,
  sideEffectPath,
  sleep,
  submitExecutions,
} from './harness.js';
import { checkInvariants, installAudit, waitAllTerminal } from './invariants.js';
import { SideEffectServer } from './side-effect-server.js';

const SCENARIO = '4-postgres-restart';
const EXECUTIONS = 200;
const OUTAGE_MS = 4000;

// Postgres is stopped in immediate mode and started again: this file's own cluster (own port
// and data directory), never the shared server the other test files use.
let cluster: PrivatePostgres | undefined;
let prefix = '';
let fleet: Fleet | undefined;
const server = new SideEffectServer();

beforeAll(async () => {
  cluster = await PrivatePostgres.start();
  const databaseUrl = cluster.url();
  await ensureDatabase(databaseUrl);
  await migrate(databaseUrl, pino({ level: 'silent' }));
  await installAudit(databaseUrl);
  prefix = `fp${randomBytes(4).toString('hex')}`;
  await server.listen();
  fleet = new Fleet(serviceEnv({ databaseUrl, redisUrl: inject('redisUrl'), prefix }));
});

afterAll(async () => {
  if (process.env.FAULT_SAVE_LOGS) fleet?.saveLogs(SCENARIO);
  await fleet?.killAll();
  await server.close();
  if (prefix) await deleteRedisPrefix(prefix);
  await cluster?.destroy();
});

interface Probe {
  startedAt: number;
  endedAt: number;
  status: number | 'error';
  retryAfter: string | null;
}

describe('Postgres restarted (immediate mode) during a run', () => {
  it(`readiness says 503 during the outage and all ${EXECUTIONS} executions complete after it`, async () => {
    const postgres = cluster as PrivatePostgres;
    const databaseUrl = postgres.url();
    const services = fleet as Fleet;
    onTestFailed(() => {
      console.log(`logs: ${services.saveLogs(SCENARIO)}`);
    });
    const started = Date.now();
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    await Promise.all([services.api(port), services.worker(), services.worker()]);
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

    const report = await checkInvariants({
      databaseUrl,
      accepted: submitted.accepted,
      sideEffects: { calls: server.calls, pathOf: sideEffectPath },
      apiUrl,
    });
    const duringOutage = probes.filter(
      (probe) => probe.startedAt >= downAt && probe.endedAt <= upAt,
    );
    const slowest = Math.max(...probes.map((probe) => probe.endedAt - probe.startedAt));
    recordFigures(SCENARIO, {
      executions: report.executions,
      kills: 1,
      restarts: 1,
      rerun_attempts: report.rerunAttempts,
      lost: report.lost,
      duplicated_completions: report.duplicatedCompletions,
      seconds: Math.round((Date.now() - started) / 1000),
      postgres_restarts: 1,
      outage_ms: OUTAGE_MS,
      all_ended_seconds_after_restart: Math.round(recoveredMs / 1000),
      readiness_probes: probes.length,
      readiness_503_during_outage: duringOutage.filter((probe) => probe.status === 503).length,
      readiness_slowest_ms: slowest,
      answers: JSON.stringify(submitted.answers),
    });
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
