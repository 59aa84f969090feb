import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFailed } from 'vitest';
import { freePort } from '../helpers/private-servers.js';
import { createTestDatabase, deleteRedisPrefix, type TestDatabase } from '../helpers/test-app.js';
import { recordFigures } from './figures.js';
import {
  createWorkflow,
  Fleet,
  httpStep,
  request,
  serviceEnv,
  sideEffectPath,
  sleep,
} from './harness.js';
import { checkInvariants, installAudit, waitAllTerminal } from './invariants.js';
import { SideEffectServer } from './side-effect-server.js';

const SCENARIO = '7-graceful-shutdown';
const GRACE_MS = 6000;
const CONCURRENCY = 8;
const LONG_POLLS = 3;
const LOAD_BEFORE_SIGTERM_MS = 5000;

let database: TestDatabase | undefined;
let prefix = '';
let fleet: Fleet | undefined;
// Slow side effects, so that steps are mid-call when the process is told to stop.
const server = new SideEffectServer({ minDelayMs: 100, maxDelayMs: 600 });

beforeAll(async () => {
  database = await createTestDatabase();
  prefix = `fg${randomBytes(4).toString('hex')}`;
  await installAudit(database.url);
  await server.listen();
  fleet = new Fleet(
    serviceEnv(
      { databaseUrl: database.url, redisUrl: inject('redisUrl'), prefix },
      { SERVICE_ROLE: 'all', SHUTDOWN_GRACE_MS: String(GRACE_MS), WORKER_CONCURRENCY: '20' },
    ),
  );
});

afterAll(async () => {
  if (process.env.FAULT_SAVE_LOGS) fleet?.saveLogs(SCENARIO);
  await fleet?.killAll();
  await server.close();
  if (prefix) await deleteRedisPrefix(prefix);
  await database?.drop();
});

interface Sent {
  startedAt: number;
  endedAt: number;
  outcome: number | 'error';
  error?: string;
}

describe('SIGTERM during load', () => {
  it('finishes in-flight requests, loses no accepted work and exits within its grace period', async () => {
    const db = database as TestDatabase;
    const services = fleet as Fleet;
    onTestFailed(() => {
      console.log(`logs: ${services.saveLogs(SCENARIO)}`);
    });
    const started = Date.now();
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    const first = await services.api(port, { SERVICE_ROLE: 'all' });
    const workflowId = await createWorkflow(apiUrl, {
      name: 'three slow calls',
      workflow_type: 'sequential',
      steps: ['one', 'two', 'three'].map((id) => httpStep(server.url, id)),
    });

    const sent: Sent[] = [];
    const accepted: string[] = [];
    let loading = true;
    let index = 0;
    const lanes = Array.from({ length: CONCURRENCY }, async () => {
      while (loading) {
        const startedAt = Date.now();
        index += 1;
        try {
          const answer = await request(`${apiUrl}/workflows/${workflowId}/execute`, {
            method: 'POST',
            body: { input_data: { index } },
            timeoutMs: 30_000,
          });
          sent.push({ startedAt, endedAt: Date.now(), outcome: answer.status });
          if (answer.status === 202) accepted.push((answer.body as { id: string }).id);
          await sleep(100);
        } catch (error) {
          sent.push({
            startedAt,
            endedAt: Date.now(),
            outcome: 'error',
            error:
              error instanceof Error ? `${error.message} ${String(error.cause)}` : String(error),
          });
          // The server is gone: stop this lane (a refused connection answers at once).
          await sleep(50);
        }
      }
    });
    await sleep(LOAD_BEFORE_SIGTERM_MS - 1000);
    // Long polls of external workers (no task will come) are in flight too: shutdown must
    // answer them early rather than wait out their wait_seconds.
    const polls = Array.from({ length: LONG_POLLS }, async (_, index) => {
      const startedAt = Date.now();
      try {
        const answer = await request(`${apiUrl}/tasks/poll`, {
          method: 'POST',
          body: { step_types: ['nothing-to-do'], worker_id: `poller-${index}`, wait_seconds: 25 },
          timeoutMs: 30_000,
        });
        return { startedAt, endedAt: Date.now(), outcome: answer.status } as Sent;
      } catch (error) {
        return { startedAt, endedAt: Date.now(), outcome: 'error', error: String(error) } as Sent;
      }
    });
    await sleep(1000);
    const sigtermAt = Date.now();
    first.child.kill('SIGTERM');
    const exitCode = await first.exited;
    const exitMs = Date.now() - sigtermAt;
    loading = false;
    await Promise.all(lanes);
    const longPolls = await Promise.all(polls);

    // Requests the server was already working on when SIGTERM came (sent a moment before,
    // not yet answered) must all get their answer.
    const inFlight = [...sent, ...longPolls].filter(
      (request) => request.startedAt < sigtermAt - 20 && request.endedAt > sigtermAt,
    );
    const inFlightFailed = inFlight.filter((request) => request.outcome === 'error');

    // A new process picks up whatever the stopped one handed back.
    await services.api(port, { SERVICE_ROLE: 'all' });
    await waitAllTerminal(db.url, accepted, 120_000);
    const report = await checkInvariants({
      databaseUrl: db.url,
      accepted,
      sideEffects: { calls: server.calls, pathOf: sideEffectPath },
      apiUrl,
    });
    recordFigures(SCENARIO, {
      executions: report.executions,
      kills: 0,
      restarts: 1,
      rerun_attempts: report.rerunAttempts,
      lost: report.lost,
      duplicated_completions: report.duplicatedCompletions,
      seconds: Math.round((Date.now() - started) / 1000),
      grace_ms: GRACE_MS,
      exit_ms: exitMs,
      exit_code: exitCode ?? -1,
      requests: sent.length,
      in_flight_at_sigterm: inFlight.length,
      in_flight_failed: inFlightFailed.length,
      long_polls_answered: longPolls.filter((poll) => poll.outcome === 200).length,
    });
    expect(report.problems).toEqual([]);
    expect(exitCode).toBe(0);
    expect(exitMs).toBeLessThanOrEqual(GRACE_MS);
    expect(inFlightFailed).toEqual([]);
    expect(longPolls.map((poll) => poll.outcome)).toEqual(Array(LONG_POLLS).fill(200));
    // Nothing but acknowledgements and, once shutting down, 503s and refused connections.
    expect(
      sent.filter(
        (request) =>
          request.outcome !== 202 && request.outcome !== 503 && request.startedAt < sigtermAt - 20,
      ),
    ).toEqual([]);
  });
});
