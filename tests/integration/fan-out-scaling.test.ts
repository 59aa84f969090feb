import { describe, expect, it } from 'vitest';
import { ITEM_BATCH } from '../../src/store/step-runs.js';
import { useDatabaseClient, useTestApp } from '../helpers/test-app.js';
import {
  createWorkflow,
  getExecution,
  maxOverlap,
  startExecution,
  waitForExecution,
  waitUntil,
} from '../helpers/workflows.js';

/**
 * Large fan-outs (docs/ARCHITECTURE.md, "Fan-outs"): item runs are inserted in batches as they
 * are about to start, and the counts the step's own run keeps of its items (folded from
 * deltas by the general path) equal the item runs once it has run, whatever moved them (the
 * one-statement completion, the general path, pause, cancel). While items complete on the
 * one-statement path, the kept counts lag: progress is read from the item runs themselves.
 */

const ctx = useTestApp();
const database = useDatabaseClient(ctx);

interface Counts {
  item_count: number;
  items_materialised: number;
  items_active: number;
  items_waiting: number;
  items_done: number;
  items_failed: number;
}

/** The counts on the step's own run, and the same counts taken from its item runs. */
async function counts(
  executionId: string,
  stepId: string,
): Promise<{ kept: Counts; actual: Counts }> {
  const kept = await database.db.query<Counts>(
    `SELECT item_count, items_materialised, items_active, items_waiting, items_done, items_failed
       FROM step_executions WHERE execution_id = $1 AND step_id = $2 AND item_index = -1`,
    [executionId, stepId],
  );
  const actual = await database.db.query<Counts>(
    `SELECT count(*)::int AS items_materialised,
            count(*) FILTER (WHERE status IN ('queued', 'running'))::int AS items_active,
            count(*) FILTER (WHERE status = 'waiting')::int AS items_waiting,
            count(*) FILTER (WHERE status IN ('completed', 'skipped', 'failed', 'cancelled'))::int AS items_done,
            count(*) FILTER (WHERE status IN ('failed', 'cancelled'))::int AS items_failed
       FROM step_executions WHERE execution_id = $1 AND step_id = $2 AND item_index >= 0`,
    [executionId, stepId],
  );
  const row = kept.rows[0] as Counts;
  return { kept: row, actual: { ...(actual.rows[0] as Counts), item_count: row.item_count } };
}

async function itemRows(executionId: string): Promise<number> {
  const { rows } = await database.db.query<{ n: number }>(
    'SELECT count(*)::int AS n FROM step_executions WHERE execution_id = $1 AND item_index >= 0',
    [executionId],
  );
  return rows[0]?.n ?? 0;
}

function fanOut(name: string, items: number, expression: string, concurrency = 25) {
  return createWorkflow(ctx.app, {
    name,
    workflow_type: 'sequential',
    steps: [
      {
        id: 'each',
        name: 'Each',
        step_type: 'transform',
        config: { expression },
        for_each: `[0..${items - 1}]`,
        for_each_concurrency: concurrency,
      },
      { id: 'after', name: 'After', step_type: 'noop' },
    ],
  });
}

describe('a large fan-out', () => {
  it('inserts item runs in batches, runs each item once in order, and keeps exact counts', async () => {
    const items = 2 * ITEM_BATCH + 500;
    const id = await startExecution(ctx.app, await fanOut('batches', items, 'item * 2'));
    // While it runs, its item runs exist a batch at a time, never all at once.
    let seenWhileRunning = -1;
    await waitUntil(async () => {
      seenWhileRunning = await itemRows(id);
      return seenWhileRunning > 0;
    }, 'the first batch of item runs');
    expect(seenWhileRunning).toBeLessThan(items);
    expect(seenWhileRunning % ITEM_BATCH === 0 || seenWhileRunning === items).toBe(true);

    const execution = await waitForExecution(ctx.app, id, undefined, 120_000);
    expect(execution.status, JSON.stringify(execution.error)).toBe('completed');
    const each = await database.db.query<{ output: number[] }>(
      `SELECT output FROM step_executions WHERE execution_id = $1 AND step_id = 'each' AND item_index = -1`,
      [id],
    );
    expect(each.rows[0]?.output).toEqual(Array.from({ length: items }, (_, index) => index * 2));
    const { kept, actual } = await counts(id, 'each');
    expect(kept).toEqual(actual);
    expect(kept).toMatchObject({ item_count: items, items_done: items, items_failed: 0 });
    // Never more than for_each_concurrency items queued or running at one instant.
    const spans = await database.db.query<{ queued_at: Date; completed_at: Date }>(
      'SELECT queued_at, completed_at FROM step_executions WHERE execution_id = $1 AND item_index >= 0',
      [id],
    );
    const intervals = spans.rows.map((row) => ({
      started_at: row.queued_at.toISOString(),
      completed_at: row.completed_at.toISOString(),
    }));
    expect(maxOverlap(intervals)).toBeLessThanOrEqual(25);
    const view = await getExecution(ctx.app, id);
    const own = view.steps.find((step) => step.step_id === 'each') as { items?: unknown };
    expect(own.items).toEqual({ total: items, by_status: { completed: items } });
  }, 150_000);

  it('fails the step with its lowest failed item once every item has ended', async () => {
    const id = await startExecution(
      ctx.app,
      await fanOut(
        'failing items',
        1500,
        'item = 1300 or item = 1234 ? $error("item " & $string(item) & " refused") : item',
      ),
    );
    const execution = await waitForExecution(ctx.app, id, undefined, 120_000);
    expect(execution.status).toBe('failed');
    expect(execution.error).toContain('item 1234 failed');
    const { kept, actual } = await counts(id, 'each');
    expect(kept).toEqual(actual);
    expect(kept).toMatchObject({ item_count: 1500, items_done: 1500, items_failed: 2 });
  }, 150_000);

  it('holds its items while paused and finishes every one after resume', async () => {
    const items = ITEM_BATCH + 200;
    const id = await startExecution(ctx.app, await fanOut('paused', items, 'item + 1', 10));
    await waitUntil(async () => (await counts(id, 'each')).actual.items_done >= 50, 'items done');
    const paused = await ctx.app.inject({ method: 'POST', url: `/executions/${id}/pause` });
    expect(paused.statusCode, paused.body).toBe(200);
    // Attempts already running finish; none is left running while paused.
    await waitUntil(async () => {
      const { rows } = await database.db.query(
        `SELECT 1 FROM step_executions WHERE execution_id = $1 AND status = 'running' AND item_index >= 0`,
        [id],
      );
      return rows.length === 0;
    }, 'running items finished');
    const held = await counts(id, 'each');
    expect(held.kept).toEqual(held.actual);
    expect(held.kept.items_done).toBeLessThan(items);
    const resumed = await ctx.app.inject({ method: 'POST', url: `/executions/${id}/resume` });
    expect(resumed.statusCode, resumed.body).toBe(200);
    const execution = await waitForExecution(ctx.app, id, undefined, 120_000);
    expect(execution.status, JSON.stringify(execution.error)).toBe('completed');
    const { kept, actual } = await counts(id, 'each');
    expect(kept).toEqual(actual);
    expect(kept.items_done).toBe(items);
  }, 150_000);

  it('cancels every unfinished item run on cancel, counts included', async () => {
    const id = await startExecution(ctx.app, await fanOut('cancelled', 3000, 'item', 20));
    await waitUntil(async () => (await counts(id, 'each')).actual.items_done >= 20, 'items done');
    const cancelled = await ctx.app.inject({ method: 'POST', url: `/executions/${id}/cancel` });
    expect(cancelled.statusCode, cancelled.body).toBe(200);
    const execution = await waitForExecution(ctx.app, id);
    expect(execution.status).toBe('cancelled');
    const { kept, actual } = await counts(id, 'each');
    expect(kept).toEqual(actual);
    expect(kept.items_active + kept.items_waiting).toBe(0);
    expect(kept.items_done).toBe(kept.items_materialised);
  }, 150_000);
});
