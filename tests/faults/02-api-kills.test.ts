import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFailed } from 'vitest';
import { freePort } from '../helpers/private-servers.js';
import type { ServiceProcess } from '../helpers/service-process.js';
import { createTestDatabase, deleteRedisPrefix, type TestDatabase } from '../helpers/test-app.js';
import { recordFigures } from './figures.js';
import {
  createWorkflow,
  Fleet,
  httpStep,
  randomBetween,
  request,
  serviceEnv,
  sideEffectPath,
  sleep,
} from './harness.js';
import { checkInvariants, installAudit, waitAllTerminal } from './invariants.js';
import { SideEffectServer } from './side-effect-server.js';

const SCENARIO = '2-api-kills';
const LANES = 4;
const MAX_REQUESTS = 600;
const KILLS = 5;

let database: TestDatabase | undefined;
let prefix = '';
let fleet: Fleet | undefined;
const server = new SideEffectServer();

beforeAll(async () => {
  database = await createTestDatabase();
  prefix = `fa${randomBytes(4).toString('hex')}`;
  await installAudit(database.url);
  await server.listen();
  fleet = new Fleet(
    serviceEnv({ databaseUrl: database.url, redisUrl: inject('redisUrl'), prefix }),
  );
});

afterAll(async () => {
  if (process.env.FAULT_SAVE_LOGS) fleet?.saveLogs(SCENARIO);
  await fleet?.killAll();
  await server.close();
  if (prefix) await deleteRedisPrefix(prefix);
  await database?.drop();
});

describe('the API process SIGKILLed during a stream of execute requests', () => {
  it('keeps every acknowledged execution and leaves no half-written one', async () => {
    const db = database as TestDatabase;
    const services = fleet as Fleet;
    onTestFailed(() => {
      console.log(`logs: ${services.saveLogs(SCENARIO)}`);
    });
    const started = Date.now();
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    let [api] = await Promise.all([services.api(port), services.worker()]);
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
      api = await services.api(port);
      restarts += 1;
    }
    await sleep(1000);
    streaming = false;
    await Promise.all(lanes);

    await waitAllTerminal(db.url, undefined, 240_000);
    const report = await checkInvariants({
      databaseUrl: db.url,
      accepted,
      sideEffects: { calls: server.calls, pathOf: sideEffectPath },
      apiUrl,
    });
    recordFigures(SCENARIO, {
      executions: report.executions,
      kills,
      restarts,
      rerun_attempts: report.rerunAttempts,
      lost: report.lost,
      duplicated_completions: report.duplicatedCompletions,
      seconds: Math.round((Date.now() - started) / 1000),
      requests: sent,
      acknowledged: accepted.length,
      failed_in_flight: failedInFlight,
      committed_unacknowledged: report.unacknowledged,
    });
    expect(report.problems).toEqual([]);
    // The kills landed on requests in flight; everything else was acknowledged.
    expect(failedInFlight).toBeGreaterThan(0);
    expect(accepted.length + failedInFlight).toBe(sent);
    expect(Object.keys(answers).filter((status) => status !== '202' && status !== 'error')).toEqual(
      [],
    );
  });
});
