import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crashedAttempt } from '../../src/engine/state/record-attempt.js';
import { type ServiceProcess, startServiceProcess } from '../helpers/service-process.js';
import { testEnvironment, useTestApp } from '../helpers/test-app.js';
import { createWorkflow, startExecution, waitForExecution } from '../helpers/workflows.js';

// API only: no worker of this process takes the jobs, so the test claims runs itself, as
// workers whose processes then die would, and starts a real worker process when it wants one.
const ctx = useTestApp({ SERVICE_ROLE: 'api' });
let db: pg.Client;
const workers: ServiceProcess[] = [];

beforeAll(async () => {
  db = new pg.Client({ connectionString: ctx.database.url });
  await db.connect();
});

afterAll(async () => {
  for (const worker of workers) await worker.kill('SIGKILL');
  await db?.end();
});

async function queuedRun(executionId: string) {
  const { rows } = await db.query<{ id: number; attempt: number; crashed_claims: number }>(
    'SELECT id, attempt, crashed_claims FROM step_executions WHERE execution_id = $1',
    [executionId],
  );
  expect(rows).toHaveLength(1);
  return rows[0] as { id: number; attempt: number; crashed_claims: number };
}

async function oneStepExecution(name: string): Promise<string> {
  const workflowId = await createWorkflow(ctx.app, {
    name,
    workflow_type: 'sequential',
    steps: [{ id: 'only', name: 'only', step_type: 'noop', config: {}, retry_count: 3 }],
  });
  return startExecution(ctx.app, workflowId);
}

/** A new worker's claim of the attempt: a fresh lease, as after the previous one died. */
async function claim(run: { id: number; attempt: number }) {
  const claimed = await ctx.app.engineParts.state.claimAttempt(
    run.id,
    run.attempt,
    randomUUID(),
    60,
  );
  if (!claimed) throw new Error(`run ${run.id} attempt ${run.attempt} was not claimable`);
  return claimed;
}

describe('crashed claims: attempts whose process died', () => {
  it('counts claims that find the attempt abandoned, and fails the run past the limit', async () => {
    const executionId = await oneStepExecution('pill in the store');
    const run = await queuedRun(executionId);
    const { state } = ctx.app.engineParts;

    // The first claim takes a queued run: nothing was abandoned.
    const first = await claim(run);
    expect(first.crashed_claims).toBe(0);
    // Each further claim finds the run still running under a lease nobody recorded.
    const counts = [];
    let last = first;
    for (let died = 1; died <= 3; died += 1) {
      last = await claim(run);
      counts.push(last.crashed_claims);
      expect(crashedAttempt(state, last)).toBeNull();
    }
    expect(counts).toEqual([1, 2, 3]);
    // The same lease claiming again (a repeated statement) is not a new crash.
    const again = await state.claimAttempt(run.id, run.attempt, last.lease_id as string, 60);
    expect(again?.crashed_claims).toBe(3);

    // The fifth claim: the process died four times, more than MAX_CRASHED_CLAIMS (3).
    const pill = await claim(run);
    expect(pill.crashed_claims).toBe(4);
    const result = crashedAttempt(state, pill);
    expect(result?.error).toMatchObject({ type: 'crashed', retryable: false });
    expect(result?.error.message).toContain('died 4 times');
    if (!result) throw new Error('unreachable');
    // Recorded through the normal path: the run fails (not retried), so does the execution.
    const effects = await state.recordAttempt(
      pill.id,
      pill.execution_id,
      { leaseId: pill.lease_id as string },
      result,
    );
    expect(effects).not.toBeNull();
    const execution = await waitForExecution(ctx.app, executionId);
    expect(execution.status).toBe('failed');
    expect(execution.steps[0]?.error).toMatchObject({ type: 'crashed' });
    expect(execution.steps[0]?.attempts).toBe(1);
  });

  it('starts the count again when an attempt is recorded', async () => {
    const executionId = await oneStepExecution('crash then retry');
    const run = await queuedRun(executionId);
    const { state } = ctx.app.engineParts;
    await claim(run);
    await claim(run);
    const third = await claim(run);
    expect(third.crashed_claims).toBe(2);
    // The live holder records a retryable failure: a new attempt, queued.
    const effects = await state.recordAttempt(
      third.id,
      third.execution_id,
      { leaseId: third.lease_id as string },
      {
        kind: 'failed',
        error: { message: 'flaky', type: 'test', retryable: true, attempt: third.attempt },
        retryAfterMs: 0,
      },
    );
    expect(effects?.jobs).toHaveLength(1);
    const retried = await queuedRun(executionId);
    expect(retried.attempt).toBe(run.attempt + 1);
    const fresh = await claim(retried);
    expect(fresh.crashed_claims).toBe(0);
  });

  it('a worker process fails a run abandoned too often as crashed instead of running it', async () => {
    const executionId = await oneStepExecution('pill for a worker');
    const run = await queuedRun(executionId);
    // Four claims that never recorded: the first, then three that found it abandoned. The
    // run's job is still in the queue (nobody consumed it); the worker's claim is the fifth.
    for (let claims = 0; claims < 4; claims += 1) await claim(run);
    workers.push(
      await startServiceProcess(
        testEnvironment(ctx.database, ctx.prefix, {
          SERVICE_ROLE: 'worker',
          LOG_LEVEL: 'info',
        }),
        'engine started',
        // A loaded machine boots a process slowly.
        90_000,
      ),
    );
    const execution = await waitForExecution(ctx.app, executionId, undefined, 45_000);
    expect(execution.status).toBe('failed');
    expect(execution.steps[0]?.error).toMatchObject({ type: 'crashed' });
    expect(execution.steps[0]?.error?.message).toContain('MAX_CRASHED_CLAIMS=3');
    // The handler never ran: a noop's output would be there.
    expect(execution.steps[0]?.output ?? null).toBeNull();
  }, 180_000);
});
