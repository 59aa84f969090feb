import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { freePort, PrivateRedis } from '../helpers/private-servers.js';
import { createTestDatabase, type TestDatabase } from '../helpers/test-app.js';
import { recordFigures } from './figures.js';
import {
  createWorkflow,
  Fleet,
  fanOutWorkflow,
  serviceEnv,
  sideEffectPath,
  sleep,
  submitExecutions,
} from './harness.js';
import { checkInvariants, installAudit, waitAllTerminal } from './invariants.js';
import { SideEffectServer } from './side-effect-server.js';

const SCENARIO = '3-redis-lost';
const EXECUTIONS = 200;
const RESTARTS = 2;

// Redis is killed and restarted empty: this file's own redis-server, never the shared one.
let redis: PrivateRedis | undefined;
let database: TestDatabase | undefined;
let fleet: Fleet | undefined;
const server = new SideEffectServer();

beforeAll(async () => {
  redis = await PrivateRedis.start();
  database = await createTestDatabase();
  await installAudit(database.url);
  await server.listen();
  fleet = new Fleet(
    serviceEnv({ databaseUrl: database.url, redisUrl: redis.url, prefix: 'faults' }),
  );
});

afterAll(async () => {
  await fleet?.killAll();
  await server.close();
  await redis?.stop();
  await database?.drop();
});

describe('Redis restarted without persistence during a run', () => {
  it(`rebuilds the queue from Postgres: ${EXECUTIONS} executions, Redis lost ${RESTARTS} times`, async () => {
    const db = database as TestDatabase;
    const services = fleet as Fleet;
    const privateRedis = redis as PrivateRedis;
    onTestFailed(() => {
      console.log(`logs: ${services.saveLogs(SCENARIO)}`);
    });
    const started = Date.now();
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    await Promise.all([services.api(port), services.worker(), services.worker()]);
    const workflowId = await createWorkflow(apiUrl, fanOutWorkflow(server.url));

    // Requests carry an Idempotency-Key and are repeated until acknowledged, as a careful
    // client does; every planned execution must end up accepted exactly once.
    const loadStarted = Date.now();
    const submitting = submitExecutions({
      baseUrl: () => apiUrl,
      workflowId,
      count: EXECUTIONS,
      concurrency: 8,
      spreadMs: 20_000,
      retryForMs: 60_000,
      keyPrefix: 'redis-lost',
    });
    let kills = 0;
    let restarts = 0;
    for (const at of [6000, 14_000].slice(0, RESTARTS)) {
      await sleep(Math.max(at - (Date.now() - loadStarted), 0));
      await privateRedis.kill();
      kills += 1;
      await sleep(2000);
      await privateRedis.restart();
      restarts += 1;
    }
    const submitted = await submitting;
    expect(submitted.failed, JSON.stringify(submitted.answers)).toBe(0);

    await waitAllTerminal(db.url, undefined, 240_000);
    const report = await checkInvariants({
      databaseUrl: db.url,
      accepted: submitted.accepted,
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
      redis_restarts: restarts,
      sweep_requeued: services.sumLogField('recovery sweep acted', 'requeued'),
      answers: JSON.stringify(submitted.answers),
    });
    expect(report.problems).toEqual([]);
    expect(submitted.accepted).toHaveLength(EXECUTIONS);
    expect(report.executions).toBe(EXECUTIONS);
    // Only acknowledgements, replays and 503 (dependency down): never a 500, never a hang.
    for (const status of Object.keys(submitted.answers)) {
      expect(['200', '202', '503']).toContain(status);
    }
  });
});
