import type pg from 'pg';
import { FINISHED_EXECUTION_STATUSES, isIn } from '../../src/domain/statuses.js';
import { sleep } from '../lib/util.js';
import { median } from './engine.js';

/**
 * What the for_each workload (foreach.ts) observes besides the fan-out itself: how long small
 * executions take meanwhile, and what the execution view and a page of step runs cost.
 */

/** Calls compared in alternation, each side this many times. */
const VIEW_ROUNDS = 3;

export interface ProbeLatencies {
  samples: number;
  medianMs: number;
  maxMs: number;
  /** Not ended when measured: their time so far counts in median and max (a lower bound). */
  unfinished: number;
  /** Ended other than completed. */
  failed: number;
}

/** Median of alternated calls, and the size of the last answer. */
export interface CallFigures {
  ms: number;
  bytes: number;
}

export interface ViewFigures {
  execution: CallFigures;
  smallExecution: CallFigures;
  steps: CallFigures;
  smallSteps: CallFigures;
  /** Items completed when measured, out of the fan-out's items. */
  itemsDone: number;
  /** False when the fan-out completed before a poll saw half its items done. */
  duringFanout: boolean;
}

/** Times of creation -> completion of `ids`, after waiting up to `settleMs` for them to end. */
export async function probeLatencies(
  pool: pg.Pool,
  ids: readonly string[],
  settleMs: number,
): Promise<ProbeLatencies> {
  const read = async () =>
    (
      await pool.query<{ status: string; ms: number }>(
        `SELECT status, extract(epoch FROM coalesce(completed_at, clock_timestamp()) - created_at)::float8 * 1000 AS ms
           FROM workflow_executions WHERE id = ANY($1::text[])`,
        [ids],
      )
    ).rows;
  const settleBy = performance.now() + settleMs;
  let rows = await read();
  while (
    rows.some((row) => !isIn(FINISHED_EXECUTION_STATUSES, row.status)) &&
    performance.now() < settleBy
  ) {
    await sleep(200);
    rows = await read();
  }
  const times = rows.map((row) => row.ms);
  return {
    samples: rows.length,
    medianMs: median(times),
    maxMs: times.length > 0 ? Math.max(...times) : Number.NaN,
    unfinished: rows.filter((row) => !isIn(FINISHED_EXECUTION_STATUSES, row.status)).length,
    failed: rows.filter(
      (row) => isIn(FINISHED_EXECUTION_STATUSES, row.status) && row.status !== 'completed',
    ).length,
  };
}

export async function timedGet(
  base: string,
  route: string,
): Promise<CallFigures & { text: string }> {
  const started = performance.now();
  const response = await fetch(`${base}${route}`);
  const text = await response.text();
  const ms = performance.now() - started;
  if (response.status !== 200) {
    throw new Error(`GET ${route} answered ${response.status}: ${text.slice(0, 500)}`);
  }
  return { ms, bytes: Buffer.byteLength(text), text };
}

/** `route` and `baseline` alternated VIEW_ROUNDS times: medians and last sizes. */
async function compareGets(
  base: string,
  route: string,
  baseline: string,
): Promise<[CallFigures, CallFigures]> {
  const a: CallFigures[] = [];
  const b: CallFigures[] = [];
  for (let round = 0; round < VIEW_ROUNDS; round += 1) {
    a.push(await timedGet(base, route));
    b.push(await timedGet(base, baseline));
  }
  const summary = (calls: CallFigures[]) => ({
    ms: median(calls.map((call) => call.ms)),
    bytes: calls[calls.length - 1]?.bytes ?? 0,
  });
  return [summary(a), summary(b)];
}

export async function measureViews(
  base: string,
  fanoutId: string,
  smallId: string,
  itemsDone: number,
  duringFanout: boolean,
): Promise<ViewFigures> {
  const [execution, smallExecution] = await compareGets(
    base,
    `/executions/${fanoutId}`,
    `/executions/${smallId}`,
  );
  const [steps, smallSteps] = await compareGets(
    base,
    `/executions/${fanoutId}/steps?limit=100`,
    `/executions/${smallId}/steps?limit=100`,
  );
  return { execution, smallExecution, steps, smallSteps, itemsDone, duringFanout };
}

export interface PolledView {
  status: string;
  error: string | null;
  steps?: Array<{
    item_index: number | null;
    status: string;
    items?: { by_status: Record<string, number> };
  }>;
}

/** Completed items in a view: the summary of a large fan-out, else its item runs. */
export function itemsCompleted(view: PolledView): number {
  const steps = view.steps ?? [];
  const own = steps.find((step) => step.item_index === null);
  if (own?.items) return own.items.by_status.completed ?? 0;
  return steps.filter((step) => step.item_index !== null && step.status === 'completed').length;
}
