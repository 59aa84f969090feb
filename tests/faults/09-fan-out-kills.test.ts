import pg from 'pg';
import { describe, expect, it } from 'vitest';
import {
  apiAndTwoWorkers,
  createWorkflow,
  forEachWorkflow,
  killWorkersRepeatedly,
  submitExecutions,
  useFaultScenario,
} from './harness.js';
import { waitAllTerminal } from './invariants.js';

/**
 * Large fan-outs bring state of their own (docs/ARCHITECTURE.md, "Fan-outs"): item runs
 * inserted in batches, counts kept as deltas and folded, items completed side by side in one
 * statement each. Workers are SIGKILLed while three fan-outs run: every item still runs to
 * completion once, and each step's counts equal its item runs.
 */

const EXECUTIONS = 3;
const ITEMS = 1500;
const CONCURRENCY = 40;
const KILLS = 6;

const scenario = useFaultScenario('9-fan-out-kills', {
  prefixLetters: 'ff',
  sideEffects: { minDelayMs: 5, maxDelayMs: 40 },
});

/** Each for_each step's kept counts against its item runs, and the deltas left unfolded. */
async function fanOutFacts(databaseUrl: string) {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const steps = await client.query<{
      execution_id: string;
      kept: string;
      actual: string;
      outputs: number;
    }>(
      `SELECT p.execution_id,
              concat_ws('/', p.items_materialised, p.items_active, p.items_waiting, p.items_done,
                        p.items_failed) AS kept,
              concat_ws('/', count(i.id), count(i.id) FILTER (WHERE i.status IN ('queued', 'running')),
                        count(i.id) FILTER (WHERE i.status = 'waiting'),
                        count(i.id) FILTER (WHERE i.status IN ('completed', 'skipped', 'failed', 'cancelled')),
                        count(i.id) FILTER (WHERE i.status IN ('failed', 'cancelled'))) AS actual,
              jsonb_array_length(p.output)::int AS outputs
         FROM step_executions p
         JOIN step_executions i ON i.execution_id = p.execution_id AND i.step_id = p.step_id
                                AND i.iteration = p.iteration AND i.item_index >= 0
        WHERE p.item_index = -1 AND p.item_count IS NOT NULL
        GROUP BY p.id`,
    );
    const deltas = await client.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM for_each_item_deltas',
    );
    return { steps: steps.rows, deltas: deltas.rows[0]?.n ?? -1 };
  } finally {
    await client.end();
  }
}

describe('workers SIGKILLed while large fan-outs run', () => {
  it(`completes every item once: ${EXECUTIONS} fan-outs of ${ITEMS} items, ${KILLS} kills`, async () => {
    const { databaseUrl, fleet, server } = scenario;
    const started = Date.now();
    const { apiUrl, slots } = await apiAndTwoWorkers(fleet);

    const workflowId = await createWorkflow(
      apiUrl,
      forEachWorkflow(server.url, ITEMS, CONCURRENCY),
    );
    const submitted = await submitExecutions({
      baseUrl: () => apiUrl,
      workflowId,
      count: EXECUTIONS,
      concurrency: EXECUTIONS,
    });
    expect(submitted.failed, JSON.stringify(submitted.answers)).toBe(0);
    const killed = await killWorkersRepeatedly(fleet, slots, KILLS);
    await Promise.all(slots.map((slot) => slot.restarting));

    await waitAllTerminal(databaseUrl, submitted.accepted, 240_000);
    const report = await scenario.checkInvariants(submitted.accepted, apiUrl);
    const facts = await fanOutFacts(databaseUrl);
    scenario.recordFigures(
      report,
      { started, ...killed },
      {
        items: EXECUTIONS * ITEMS,
        step_runs: report.runs,
        side_effect_calls: report.sideEffectCalls,
        repeated_side_effects: report.repeatedSideEffects,
        unfolded_deltas: facts.deltas,
      },
    );
    expect(report.problems).toEqual([]);
    expect(report.executions).toBe(EXECUTIONS);
    expect(facts.steps).toHaveLength(EXECUTIONS);
    for (const step of facts.steps) {
      expect(step.kept, step.execution_id).toBe(step.actual);
      expect(step.actual).toBe(`${ITEMS}/0/0/${ITEMS}/0`);
      expect(step.outputs).toBe(ITEMS);
    }
    expect(facts.deltas).toBe(0);
    expect(report.rerunAttempts).toBeGreaterThan(0);
  });
});
