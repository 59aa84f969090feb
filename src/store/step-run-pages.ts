import type { StepRunRow } from '../domain/execution.js';
import type { StepStatus } from '../domain/statuses.js';
import { InvalidCursorError } from '../errors.js';
import type { Queryable } from './db.js';
import { qualified, RUN_COLUMNS } from './execution-columns.js';
import { SQL_ACTIVE_RUNS } from './sql-statuses.js';

/**
 * Reads of an execution's step runs for the API that stay bounded however large its fan-outs:
 * the execution view (item runs of large for_each steps counted, not listed) and pages of
 * runs in id order (keyset).
 */

/** Item runs of one for_each step in one iteration, counted by status. */
export interface ItemCount {
  step_id: string;
  iteration: number;
  status: StepStatus;
  count: number;
}

/** The run columns, but a for_each step's own output (every item's output) when it has more
 * than the `$n` parameter's items: the item runs hold those outputs, a page at a time. */
const viewRunColumns = (maxItemsParameter: string): string =>
  RUN_COLUMNS.replace(
    /\boutput\b/,
    `CASE WHEN item_count > ${maxItemsParameter} THEN NULL ELSE output END AS output`,
  );

/** The own run of the same step and iteration as `s`. */
const OWN_RUN_OF_ITEM = `JOIN step_executions p ON p.execution_id = s.execution_id
  AND p.step_id = s.step_id AND p.iteration = s.iteration AND p.item_index = -1`;

/**
 * An execution's runs for its view: every step's own run, the item runs of for_each steps
 * with at most `maxItems` items, and the item runs of larger ones only as counts by status.
 */
export async function listRunsForView(
  db: Queryable,
  executionId: string,
  maxItems: number,
): Promise<{ runs: StepRunRow[]; itemCounts: ItemCount[] }> {
  const own = await db.query<StepRunRow>(
    `SELECT ${viewRunColumns('$2')} FROM step_executions
      WHERE execution_id = $1 AND item_index < 0 ORDER BY iteration, id`,
    [executionId, maxItems],
  );
  const counts = (run: StepRunRow) => run.item_count !== null;
  if (!own.rows.some(counts)) return { runs: own.rows, itemCounts: [] };
  const [items, itemCounts] = await Promise.all([
    db.query<StepRunRow>(
      `SELECT ${qualified('s', RUN_COLUMNS)} FROM step_executions s ${OWN_RUN_OF_ITEM}
        WHERE s.execution_id = $1 AND s.item_index >= 0 AND COALESCE(p.item_count, 0) <= $2
        ORDER BY s.iteration, s.id`,
      [executionId, maxItems],
    ),
    db.query<ItemCount>(
      `SELECT s.step_id, s.iteration, s.status, count(*)::int AS count
         FROM step_executions s ${OWN_RUN_OF_ITEM}
        WHERE s.execution_id = $1 AND s.item_index >= 0 AND p.item_count > $2
        GROUP BY s.step_id, s.iteration, s.status`,
      [executionId, maxItems],
    ),
  ]);
  // Items not inserted yet (they are, in batches, as they are about to start) are pending.
  const notInserted = own.rows
    .filter(
      (run) => (run.item_count ?? 0) > maxItems && run.items_materialised < (run.item_count ?? 0),
    )
    .map((run) => ({
      step_id: run.step_id,
      iteration: run.iteration,
      status: 'pending' as const,
      count: (run.item_count ?? 0) - run.items_materialised,
    }));
  return { runs: [...own.rows, ...items.rows], itemCounts: [...itemCounts.rows, ...notInserted] };
}

export interface RunPageQuery {
  stepId?: string | undefined;
  status?: StepStatus | undefined;
  /** The id of the last run of the previous page. */
  afterId?: number | undefined;
  /** Rows to read: the page size plus one, which says whether another page follows. */
  limit: number;
  /** A for_each step's own run with more items than this is read without its output. */
  maxItems: number;
}

/**
 * Runs of an execution in id order (the order they were created: each iteration's own runs
 * in definition order, then each for_each step's item runs in batches as they are about to
 * start, in item order; items not yet inserted are not listed),
 * after `afterId`, with the workflow version they run; null when there is no such execution.
 */
export async function listRunPage(
  db: Queryable,
  executionId: string,
  query: RunPageQuery,
): Promise<{ workflowId: string; version: number; runs: StepRunRow[] } | null> {
  const execution = await db.query<{ workflow_id: string; workflow_version: number }>(
    'SELECT workflow_id, workflow_version FROM workflow_executions WHERE id = $1',
    [executionId],
  );
  const found = execution.rows[0];
  if (!found) return null;
  const { rows } = await db.query<StepRunRow>(
    `SELECT ${viewRunColumns('$6')} FROM step_executions
      WHERE execution_id = $1 AND id > $2
        AND ($3::text IS NULL OR step_id = $3) AND ($4::text IS NULL OR status = $4)
      ORDER BY id LIMIT $5`,
    [
      executionId,
      query.afterId ?? 0,
      query.stepId ?? null,
      query.status ?? null,
      query.limit,
      query.maxItems,
    ],
  );
  return { workflowId: found.workflow_id, version: found.workflow_version, runs: rows };
}

const RUN_CURSOR_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** The opaque cursor of the page after run `id`. */
export function encodeRunCursor(id: number): string {
  return Buffer.from(JSON.stringify({ r: id })).toString('base64url');
}

/** The run id a cursor from encodeRunCursor names; InvalidCursorError for anything else. */
export function decodeRunCursor(cursor: string): number {
  if (RUN_CURSOR_PATTERN.test(cursor)) {
    try {
      const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
      const id = (value as { r?: unknown } | null)?.r;
      // Only the exact text this service issues: no extra keys, spacing or padding.
      if (
        Number.isSafeInteger(id) &&
        (id as number) > 0 &&
        encodeRunCursor(id as number) === cursor
      ) {
        return id as number;
      }
    } catch {
      // fall through: any decoding failure is the same client error
    }
  }
  throw new InvalidCursorError('decode it from next_cursor of a previous page');
}

/**
 * Item counts of expanded for_each steps, by their own run's id: the counts kept on the run
 * plus the deltas not folded into it yet (docs/ARCHITECTURE.md, "Fan-outs").
 */
export async function itemProgress(
  db: Queryable,
  parentIds: readonly number[],
): Promise<Map<number, { active: number; waiting: number; done: number; failed: number }>> {
  if (parentIds.length === 0) return new Map();
  const { rows } = await db.query<{
    id: string;
    active: number;
    waiting: number;
    done: number;
    failed: number;
  }>(
    `SELECT p.id, p.items_active + COALESCE(d.active, 0) AS active,
            p.items_waiting + COALESCE(d.waiting, 0) AS waiting,
            p.items_done + COALESCE(d.done, 0) AS done, p.items_failed + COALESCE(d.failed, 0) AS failed
       FROM step_executions p
       LEFT JOIN (SELECT parent_id, sum(active)::int AS active, sum(waiting)::int AS waiting,
                         sum(done)::int AS done, sum(failed)::int AS failed
                    FROM for_each_item_deltas WHERE parent_id = ANY($1::bigint[])
                   GROUP BY parent_id) d ON d.parent_id = p.id
      WHERE p.id = ANY($1::bigint[])`,
    [parentIds],
  );
  return new Map(rows.map(({ id, ...counts }) => [Number(id), counts]));
}

/**
 * Steps queued and due now whose executions have a higher priority (a smaller number) than
 * `priority`: what goes before a queued step of that priority. The partial index on active
 * runs bounds the scan to runs in flight.
 */
export async function queuedAhead(db: Queryable, priority: number): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n
       FROM step_executions s JOIN workflow_executions e ON e.id = s.execution_id
      WHERE s.status IN ${SQL_ACTIVE_RUNS} AND s.status = 'queued'
        AND (s.wake_at IS NULL OR s.wake_at <= now()) AND e.priority < $1`,
    [priority],
  );
  return rows[0]?.n ?? 0;
}
