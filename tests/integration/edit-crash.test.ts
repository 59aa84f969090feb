import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort } from '../helpers/private-servers.js';
import { type ServiceProcess, startServiceProcess } from '../helpers/service-process.js';
import { testEnvironment, useDatabaseClient, useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  NUMBER_CHECK_STEP,
  startExecution,
  waitForExecution,
  waitUntil,
} from '../helpers/workflows.js';

/**
 * An edited retry is one transaction (README "Edit and resume"): the process applying it is
 * killed after it changed the input and reopened the runs but before it committed, and
 * nothing of it remains; asked again, it applies once.
 */

const ctx = useTestApp();
const database = useDatabaseClient(ctx);
const processes: ServiceProcess[] = [];
const clients: pg.Client[] = [];

afterAll(async () => {
  await Promise.all(processes.map((service) => service.kill('SIGKILL')));
  await Promise.all(clients.map((client) => client.end()));
});

async function count(sql: string, values: unknown[]): Promise<number> {
  const { rows } = await database.db.query<{ n: number }>(sql, values);
  return rows[0]?.n ?? 0;
}

/** Backends of this database whose statement waits for a lock on execution_actions. */
const BLOCKED_RECORDS = `SELECT count(*)::int AS n FROM pg_stat_activity
  WHERE datname = current_database() AND wait_event_type = 'Lock'
    AND query LIKE 'INSERT INTO execution_actions%'`;

describe('edited retry under a process kill', () => {
  it('applies once or not at all', async () => {
    const workflowId = await createWorkflow(ctx.app, {
      name: 'edit crash',
      workflow_type: 'sequential',
      steps: [NUMBER_CHECK_STEP],
    });
    const id = await startExecution(ctx.app, workflowId, { n: 'x' });
    await waitForExecution(ctx.app, id, (e) => e.status === 'failed');

    const port = await freePort();
    const service = await startServiceProcess(
      testEnvironment(ctx.database, ctx.prefix, {
        SERVICE_ROLE: 'api',
        SERVICE_PORT: String(port),
      }),
      'workflow service listening',
      60_000,
    );
    processes.push(service);
    const url = `http://127.0.0.1:${port}`;

    // Holds back the edit's last statement (its record) while the rest is done, uncommitted.
    const locker = new pg.Client({ connectionString: ctx.database.url });
    clients.push(locker);
    await locker.connect();
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE execution_actions IN EXCLUSIVE MODE');
    const request = fetch(`${url}/executions/${id}/retry`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input_data: { n: '3' }, reason: 'fix' }),
    }).catch((error: unknown) => error);
    await waitUntil(async () => (await count(BLOCKED_RECORDS, [])) === 1, 'the edit waits');
    await service.kill('SIGKILL');
    await request;
    await locker.query('ROLLBACK');
    // The killed process's transaction ends when Postgres finds its client gone.
    await waitUntil(async () => (await count(BLOCKED_RECORDS, [])) === 0, 'the edit is gone');
    await waitUntil(
      async () =>
        (await count(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND state = 'idle in transaction'`,
          [],
        )) === 0,
      'no transaction is left open',
    );

    const { rows } = await database.db.query<{ status: string; input_data: unknown }>(
      'SELECT status, input_data FROM workflow_executions WHERE id = $1',
      [id],
    );
    expect(rows[0]).toEqual({ status: 'failed', input_data: { n: 'x' } });
    const reopened = `SELECT count(*)::int AS n FROM step_executions
      WHERE execution_id = $1 AND first_attempt > 1`;
    expect(await count(reopened, [id])).toBe(0);
    const recorded = 'SELECT count(*)::int AS n FROM execution_actions WHERE execution_id = $1';
    expect(await count(recorded, [id])).toBe(0);

    // Asked again, it applies once.
    const retry = await ctx.app.inject({
      method: 'POST',
      url: `/executions/${id}/retry`,
      payload: { input_data: { n: '3' }, reason: 'fix' },
    });
    expect(retry.statusCode, retry.body).toBe(200);
    const done = await waitForExecution(ctx.app, id);
    expect(done.status).toBe('completed');
    expect(await count(recorded, [id])).toBe(1);
    expect(await count(reopened, [id])).toBe(1);
  });
});
