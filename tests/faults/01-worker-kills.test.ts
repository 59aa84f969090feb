import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFailed } from 'vitest';
import { freePort } from '../helpers/private-servers.js';
import type { ServiceProcess } from '../helpers/service-process.js';
import { createTestDatabase, deleteRedisPrefix, type TestDatabase } from '../helpers/test-app.js';
import { recordFigures } from './figures.js';
import {
  alive,
  createWorkflow,
  Fleet,
  fanOutWorkflow,
  randomBetween,
  serviceEnv,
  sideEffectPath,
  sleep,
  submitExecutions,
} from './harness.js';
import { checkInvariants, installAudit, waitAllTerminal } from './invariants.js';
import { SideEffectServer } from './side-effect-server.js';

const SCENARIO = '1-worker-kills';
const EXECUTIONS = 300;
const KILLS = 20;

let database: TestDatabase | undefined;
let prefix = '';
let fleet: Fleet | undefined;
const server = new SideEffectServer({ minDelayMs: 5, maxDelayMs: 60 });

beforeAll(async () => {
  database = await createTestDatabase();
  prefix = `fk${randomBytes(4).toString('hex')}`;
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

describe('worker processes SIGKILLed again and again', () => {
  it(`loses nothing and completes nothing twice: ${EXECUTIONS} executions, ${KILLS} kills`, async () => {
    const db = database as TestDatabase;
    const services = fleet as Fleet;
    onTestFailed(() => {
      console.log(`logs: ${services.saveLogs(SCENARIO)}`);
    });
    const started = Date.now();
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    const slots: Array<{
      process: ServiceProcess | undefined;
      readyAt: number;
      restarting?: Promise<void>;
    }> = await Promise.all([
      services.api(port).then(() => services.worker()),
      services.worker(),
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
      slot.restarting = services.worker().then((process) => {
        slot.process = process;
        slot.readyAt = Date.now();
        restarts += 1;
      });
    }
    const killPhase = Date.now() - loadStarted;
    const submitted = await submitting;
    await Promise.all(slots.map((slot) => slot.restarting));
    expect(submitted.failed, JSON.stringify(submitted.answers)).toBe(0);

    await waitAllTerminal(db.url, submitted.accepted, 240_000);
    const drained = Date.now() - loadStarted;
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
      kill_phase_seconds: Math.round(killPhase / 1000),
      all_ended_after_seconds: Math.round(drained / 1000),
      step_runs: report.runs,
      side_effect_calls: report.sideEffectCalls,
      repeated_side_effects: report.repeatedSideEffects,
    });
    expect(report.problems).toEqual([]);
    expect(report.executions).toBe(EXECUTIONS);
    expect(submitted.accepted).toHaveLength(EXECUTIONS);
    // The kills really interrupted work: some attempts ran again.
    expect(report.rerunAttempts).toBeGreaterThan(0);
  });
});
