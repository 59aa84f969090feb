import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/private-servers.js';
import {
  createWorkflow,
  fanOutWorkflow,
  sleep,
  submitExecutions,
  useFaultScenario,
} from './harness.js';
import { waitAllTerminal } from './invariants.js';

const EXECUTIONS = 200;
const RESTARTS = 2;

// Redis is killed and restarted empty: this file's own redis-server, never the shared one.
const scenario = useFaultScenario('3-redis-lost', { prefixLetters: 'fr', privateRedis: true });

/** Runs queued or running (each has, or had, a job in Redis). */
async function countUnfinishedRuns(databaseUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ count: number }>(
      `SELECT count(*)::int AS count FROM step_executions WHERE status IN ('queued', 'running')`,
    );
    return rows[0]?.count ?? 0;
  } finally {
    await client.end();
  }
}

describe('Redis restarted without persistence during a run', () => {
  it(`rebuilds the queue from Postgres: ${EXECUTIONS} executions, Redis lost ${RESTARTS} times`, async () => {
    const { databaseUrl, fleet, server, privateRedis } = scenario;
    const started = Date.now();
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    await Promise.all([fleet.api(port), fleet.worker(), fleet.worker()]);
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
    let jobsLost = 0;
    for (const at of [6000, 14_000].slice(0, RESTARTS)) {
      await sleep(Math.max(at - (Date.now() - loadStarted), 0));
      await privateRedis.kill();
      kills += 1;
      // Every unfinished run had its job in the Redis that is now gone.
      jobsLost += await countUnfinishedRuns(databaseUrl);
      await sleep(2000);
      await privateRedis.restart();
      restarts += 1;
    }
    const submitted = await submitting;
    expect(submitted.failed, JSON.stringify(submitted.answers)).toBe(0);

    await waitAllTerminal(databaseUrl, undefined, 240_000);
    const report = await scenario.checkInvariants(submitted.accepted, apiUrl);
    scenario.recordFigures(
      report,
      { started, kills, restarts },
      {
        redis_restarts: restarts,
        jobs_lost_with_redis: jobsLost,
        answers: JSON.stringify(submitted.answers),
      },
    );
    expect(report.problems).toEqual([]);
    expect(submitted.accepted).toHaveLength(EXECUTIONS);
    expect(report.executions).toBe(EXECUTIONS);
    // Redis really took work with it: runs whose jobs were gone finished all the same.
    expect(jobsLost).toBeGreaterThan(0);
    // Only acknowledgements, replays and 503 (dependency down): never a 500, never a hang.
    for (const status of Object.keys(submitted.answers)) {
      expect(['200', '202', '503']).toContain(status);
    }
  });
});
