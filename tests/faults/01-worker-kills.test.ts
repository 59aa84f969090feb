import { describe, expect, it } from 'vitest';
import { freePort } from '../helpers/private-servers.js';
import type { ServiceProcess } from '../helpers/service-process.js';
import {
  alive,
  createWorkflow,
  fanOutWorkflow,
  randomBetween,
  sleep,
  submitExecutions,
  useFaultScenario,
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
    const slots: Array<{
      process: ServiceProcess | undefined;
      readyAt: number;
      restarting?: Promise<void>;
    }> = await Promise.all([fleet.api(port).then(() => fleet.worker()), fleet.worker()]).then(
      (workers) => workers.map((process) => ({ process, readyAt: Date.now() })),
    );

    const workflowId = await createWorkflow(apiUrl, fanOutWorkflow(server.url));
    const loadStarted = Date.now();
    const submitting = submitExecutions({
      baseUrl: () => apiUrl,
      workflowId,
      count: EXECUTIONS,
      concurrency: 8,
      spreadMs: 25_000,
    });

    // Every 1-3 s a random worker is SIGKILLed and a new one started in its place. Only a
    // worker that has run for at least a second is a candidate, so every kill hits one that
    // has taken jobs (boot takes seconds; killing one still booting would interrupt nothing).
    let kills = 0;
    let restarts = 0;
    const seasoned = () =>
      slots.filter(
        (slot) => slot.process && alive(slot.process) && Date.now() - slot.readyAt >= 1000,
      );
    while (kills < KILLS) {
      await sleep(randomBetween(1000, 3000));
      const giveUpAt = Date.now() + 90_000;
      while (seasoned().length === 0) {
        if (Date.now() > giveUpAt) throw new Error('no worker came back up within 90 s');
        await sleep(100);
      }
      const candidates = seasoned();
      const slot = candidates[Math.floor(Math.random() * candidates.length)];
      if (!slot?.process) continue;
      await slot.process.kill('SIGKILL');
      kills += 1;
      slot.process = undefined;
      slot.restarting = fleet.worker().then((process) => {
        slot.process = process;
        slot.readyAt = Date.now();
        restarts += 1;
      });
    }
    const killPhase = Date.now() - loadStarted;
    const submitted = await submitting;
    await Promise.all(slots.map((slot) => slot.restarting));
    expect(submitted.failed, JSON.stringify(submitted.answers)).toBe(0);

    await waitAllTerminal(databaseUrl, submitted.accepted, 240_000);
    const drained = Date.now() - loadStarted;
    const report = await scenario.checkInvariants(submitted.accepted, apiUrl);
    scenario.recordFigures(
      report,
      { started, kills, restarts },
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
