import { describe, expect, it } from 'vitest';
import {
  apiAndTwoWorkers,
  createWorkflow,
  httpStep,
  killWorkersRepeatedly,
  request,
  sleep,
  submitAll,
  useFaultScenario,
} from './harness.js';
import { waitAllTerminal } from './invariants.js';

/**
 * Bulk operations bring state of their own (docs/ARCHITECTURE.md, "Bulk actions"): an
 * operation, its snapshot of matched executions and each item's outcome, worked off by the
 * worker processes under a lease. Here every execution of a workflow is paused in bulk while
 * it runs, then resumed in bulk, and the workers doing both are SIGKILLed throughout: each
 * operation completes (taken over after each kill) with every matched execution acted on or
 * skipped exactly once, no execution stays paused, and every one completes once.
 */

const EXECUTIONS = 150;
const KILLS = 5;

const scenario = useFaultScenario('11-bulk-kills', {
  prefixLetters: 'bk',
  // Small batches and one action at a time: the operations last long enough to be killed.
  env: { BULK_BATCH_SIZE: '10', BULK_PARALLEL: '1' },
  sideEffects: { minDelayMs: 50, maxDelayMs: 150 },
});

interface Operation {
  status: string;
  matched: number;
  done: number;
  skipped: number;
  failed: number;
  skipped_by_reason: Record<string, number>;
}

async function runOperation(apiUrl: string, body: Record<string, unknown>): Promise<Operation> {
  const started = await request(`${apiUrl}/executions/bulk`, { method: 'POST', body });
  expect(started.status, JSON.stringify(started.body)).toBe(202);
  const id = (started.body as { id: string }).id;
  const deadline = Date.now() + 180_000;
  for (;;) {
    const answer = await request(`${apiUrl}/operations/${id}`, {});
    const op = answer.body as Operation;
    if (answer.status === 200 && op.status !== 'running') return op;
    if (Date.now() > deadline)
      throw new Error(`operation ${id} still running: ${JSON.stringify(op)}`);
    await sleep(200);
  }
}

describe('bulk pause and resume while workers are SIGKILLed', () => {
  it(`acts on each execution once and completes all ${EXECUTIONS}: ${KILLS} kills`, async () => {
    const { databaseUrl, fleet, server } = scenario;
    const started = Date.now();
    const { apiUrl, slots } = await apiAndTwoWorkers(fleet);
    const workflowId = await createWorkflow(apiUrl, {
      name: 'paused in bulk',
      workflow_type: 'sequential',
      steps: ['a', 'b', 'c', 'd'].map((id, index, ids) =>
        httpStep(server.url, id, index > 0 ? [ids[index - 1] as string] : undefined),
      ),
    });
    const submitted = await submitAll(apiUrl, workflowId, EXECUTIONS);

    const killing = killWorkersRepeatedly(fleet, slots, KILLS);
    const filter = { workflow_id: workflowId };
    const paused = await runOperation(apiUrl, { action: 'pause', filter });
    const resumed = await runOperation(apiUrl, { action: 'resume', filter });
    const killed = await killing;
    await Promise.all(slots.map((slot) => slot.restarting));

    await waitAllTerminal(databaseUrl, submitted.accepted, 240_000);
    const report = await scenario.checkInvariants(submitted.accepted, apiUrl);
    scenario.recordFigures(
      report,
      { started, ...killed },
      {
        step_runs: report.runs,
        side_effect_calls: report.sideEffectCalls,
        paused_in_bulk: paused.done,
        resumed_in_bulk: resumed.done,
      },
    );
    expect(report.problems).toEqual([]);
    expect(report.executions).toBe(EXECUTIONS);
    for (const op of [paused, resumed]) {
      expect(op.status).toBe('completed');
      expect(op.matched).toBe(EXECUTIONS);
      expect(op.done + op.skipped).toBe(EXECUTIONS);
      expect(op.failed).toBe(0);
    }
    // The resume lets go of what the pause held (one whose last step was running may have
    // ended while paused).
    expect(resumed.done).toBeLessThanOrEqual(paused.done);
  });
});
