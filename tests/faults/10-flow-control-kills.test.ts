import { describe, expect, it } from 'vitest';
import {
  apiAndTwoWorkers,
  createWorkflow,
  httpStep,
  killWorkersRepeatedly,
  request,
  submitAll,
  useFaultScenario,
} from './harness.js';
import { waitAllTerminal } from './invariants.js';

/**
 * Flow control brings state of its own (docs/ARCHITECTURE.md, "Flow control"): queued
 * executions admitted per key, runs holding slots of a named limit, hand-offs under advisory
 * locks. Workers are SIGKILLed while executions queue for `config.concurrency` and their steps
 * wait for a shared limit: the peer never sees more calls at once than either limit allows,
 * a killed worker's slot comes back, and every execution completes once.
 */

const EXECUTIONS = 120;
const GROUPS = 4;
const PER_GROUP = 2;
const SHARED = 3;
const KILLS = 6;

const scenario = useFaultScenario('10-flow-control-kills', {
  prefixLetters: 'fc',
  sideEffects: {
    minDelayMs: 20,
    maxDelayMs: 80,
    // Every call counts against the shared limit, and in its execution's group.
    groupsOf: (url) => {
      const group = new URL(url, 'http://peer').searchParams.get('g');
      return group === null ? [] : ['shared', `group-${group}`];
    },
  },
});

function limitedWorkflow(sideEffectUrl: string): Record<string, unknown> {
  const step = (id: string, dependencies?: string[]) => {
    const base = httpStep(sideEffectUrl, id, dependencies);
    return {
      ...base,
      config: {
        url: `{% '${sideEffectUrl}/' & execution.id & '/${id}?g=' & $string(input.index % ${GROUPS}) %}`,
      },
      limits: [{ name: 'fault-api' }],
    };
  };
  return {
    name: 'limited under kills',
    workflow_type: 'sequential',
    config: { concurrency: { limit: PER_GROUP, key: `$string(input.index % ${GROUPS})` } },
    steps: [step('reserve'), step('charge', ['reserve']), step('notify', ['charge'])],
  };
}

describe('workers SIGKILLed while executions queue for their limits', () => {
  it(`never exceeds a limit and completes every execution once: ${EXECUTIONS} executions, ${KILLS} kills`, async () => {
    const { databaseUrl, fleet, server } = scenario;
    const started = Date.now();
    const { apiUrl, slots } = await apiAndTwoWorkers(fleet);

    const limit = await request(`${apiUrl}/limits/fault-api`, {
      method: 'PUT',
      body: { max_concurrent: SHARED },
    });
    expect([200, 201]).toContain(limit.status);
    const workflowId = await createWorkflow(apiUrl, limitedWorkflow(server.url));
    const submitted = await submitAll(apiUrl, workflowId, EXECUTIONS);
    const killed = await killWorkersRepeatedly(fleet, slots, KILLS);
    await Promise.all(slots.map((slot) => slot.restarting));

    await waitAllTerminal(databaseUrl, submitted.accepted, 240_000);
    const report = await scenario.checkInvariants(submitted.accepted, apiUrl);
    const most = Object.fromEntries(server.mostInFlight);
    scenario.recordFigures(
      report,
      { started, ...killed },
      {
        step_runs: report.runs,
        side_effect_calls: report.sideEffectCalls,
        most_calls_at_once: most.shared ?? 0,
        most_calls_at_once_per_group: Math.max(
          ...Array.from({ length: GROUPS }, (_, group) => most[`group-${group}`] ?? 0),
        ),
      },
    );
    expect(report.problems).toEqual([]);
    expect(report.executions).toBe(EXECUTIONS);
    expect(most.shared).toBeLessThanOrEqual(SHARED);
    for (let group = 0; group < GROUPS; group += 1) {
      expect(most[`group-${group}`], `group ${group}`).toBeLessThanOrEqual(PER_GROUP);
    }
    expect(report.rerunAttempts).toBeGreaterThan(0);
  });
});
