import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/private-servers.js';
import {
  createWorkflow,
  fanOutWorkflow,
  killWorkersRepeatedly,
  submitExecutions,
  useFaultScenario,
  type WorkerSlot,
} from './harness.js';
import { waitAllTerminal } from './invariants.js';

const EXECUTIONS = 300;
const KILLS = 20;

const scenario = useFaultScenario('1-worker-kills', {
  prefixLetters: 'fk',
  sideEffects: { minDelayMs: 5, maxDelayMs: 60 },
});

describe('worker processes SIGKILLed again and again', () => {
  it(`loses nothing and completes nothing twice: ${EXECUTIONS} executions, ${KILLS} kills`, async () => {
    const { databaseUrl, fleet, server } = scenario;
    const started = Date.now();
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    const slots: WorkerSlot[] = await Promise.all([
      fleet.api(port).then(() => fleet.worker()),
      fleet.worker(),
    ]).then((workers) => workers.map((process) => ({ process, readyAt: Date.now() })));

    const workflowId = await createWorkflow(apiUrl, fanOutWorkflow(server.url));
    const loadStarted = Date.now();
    const submitting = submitExecutions({
      baseUrl: () => apiUrl,
      workflowId,
      count: EXECUTIONS,
      concurrency: 8,
      spreadMs: 25_000,
    });

    const killed = await killWorkersRepeatedly(fleet, slots, KILLS);
    const killPhase = Date.now() - loadStarted;
    const submitted = await submitting;
    await Promise.all(slots.map((slot) => slot.restarting));
    expect(submitted.failed, JSON.stringify(submitted.answers)).toBe(0);

    await waitAllTerminal(databaseUrl, submitted.accepted, 240_000);
    const drained = Date.now() - loadStarted;
    const report = await scenario.checkInvariants(submitted.accepted, apiUrl);
    scenario.recordFigures(
      report,
      { started, ...killed },
      {
        kill_phase_seconds: Math.round(killPhase / 1000),
        all_ended_after_seconds: Math.round(drained / 1000),
        step_runs: report.runs,
        side_effect_calls: report.sideEffectCalls,
        repeated_side_effects: report.repeatedSideEffects,
      },
    );
    expect(report.problems).toEqual([]);
    expect(report.executions).toBe(EXECUTIONS);
    expect(submitted.accepted).toHaveLength(EXECUTIONS);
    // The kills really interrupted work: some attempts ran again.
    expect(report.rerunAttempts).toBeGreaterThan(0);
  });
});
