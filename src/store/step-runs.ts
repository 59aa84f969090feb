import type { ClaimedRun, ParkedWait, StepErrorRecord, StepRunRow } from '../domain/execution.js';
import { UNFINISHED_STEP_STATUSES } from '../domain/statuses.js';
import type { Queryable } from './db.js';
import {
  CLEAR_WAIT,
  FOR_EACH_AGGREGATE,
  firstAttempt,
  qualified,
  RUN_COLUMNS,
} from './execution-columns.js';
import {
  LEASED_STEP_STATUSES,
  SQL_CLAIMABLE_RUNS,
  SQL_RUNNING_EXECUTIONS,
} from './sql-statuses.js';

/** SQL for step runs: create, expand, queue, claim, lock, park, retry, end and cancel them.
 * Every function takes the pool or a transaction. */

/** The steps' own runs of one iteration (no for_each items: their steps' runs count them). */
export async function loadIterationRuns(
  db: Queryable,
  executionId: string,
  iteration: number,
): Promise<StepRunRow[]> {
  const { rows } = await db.query<StepRunRow>({
    name: 'load-iteration-runs',
    text: `SELECT ${RUN_COLUMNS} FROM step_executions
            WHERE execution_id = $1 AND iteration = $2 AND item_index = -1 ORDER BY id`,
    values: [executionId, iteration],
  });
  return rows;
}

/**
 * Folds the appended count deltas of expanded for_each steps into their own runs
 * (wf_fold_item_counts) and returns those runs. The caller holds the execution's lock, which
 * keeps items' one-statement completions out until it commits: the counts are exact.
 */
export async function foldItemCounts(
  db: Queryable,
  parentIds: readonly number[],
): Promise<StepRunRow[]> {
  if (parentIds.length === 0) return [];
  await db.query({
    name: 'fold-item-counts',
    text: 'SELECT wf_fold_item_counts($1::bigint[])',
    values: [parentIds],
  });
  return loadRuns(db, parentIds);
}

/** Runs by id, as they stand now in the caller's transaction. */
export async function loadRuns(db: Queryable, runIds: readonly number[]): Promise<StepRunRow[]> {
  if (runIds.length === 0) return [];
  const { rows } = await db.query<StepRunRow>({
    name: 'load-runs',
    text: `SELECT ${RUN_COLUMNS} FROM step_executions WHERE id = ANY($1::bigint[]) ORDER BY id`,
    values: [runIds],
  });
  return rows;
}

/**
 * Creates the runs of one iteration, in definition order: pending, but for `queued`, which
 * start queued for their first attempt (as queueRuns would leave them).
 */
export async function insertIterationRuns(
  db: Queryable,
  executionId: string,
  iteration: number,
  stepIds: readonly string[],
  queued: readonly string[] = [],
): Promise<StepRunRow[]> {
  const { rows } = await db.query<StepRunRow>({
    name: 'insert-iteration-runs',
    text: `INSERT INTO step_executions (execution_id, step_id, iteration, status, attempt, queued_at)
           SELECT $1, step_id, $2, ${firstAttempt('step_id', '$4')}
             FROM unnest($3::text[]) WITH ORDINALITY AS s(step_id, position)
            ORDER BY position
           RETURNING ${RUN_COLUMNS}`,
    values: [executionId, iteration, stepIds, queued],
  });
  return rows;
}

/** Item runs inserted at a time, ahead of their start (wf_materialise_items). */
export const ITEM_BATCH = 1000;

/**
 * Expands a for_each step: marks its own run running with its item list, from which item runs
 * are inserted in batches as they are about to start (startItems). Returns the step's run.
 */
export async function expandForEach(
  db: Queryable,
  parent: StepRunRow,
  items: readonly unknown[],
): Promise<StepRunRow[]> {
  const { rows } = await db.query<StepRunRow>(
    `UPDATE step_executions
        SET status = 'running', item_count = $2, items = $3, items_materialised = 0,
            items_active = 0, items_waiting = 0, items_done = 0, items_failed = 0,
            started_at = now(), updated_at = now()
      WHERE id = $1
      RETURNING ${RUN_COLUMNS}`,
    [parent.id, items.length, JSON.stringify(items)],
  );
  return rows;
}

/** Queues the next `count` items of an expanded for_each step, lowest index first. */
export async function startItems(
  db: Queryable,
  parentId: number,
  count: number,
): Promise<StepRunRow[]> {
  const { rows } = await db.query<StepRunRow>({
    name: 'start-items',
    text: `SELECT ${RUN_COLUMNS} FROM wf_start_items($1, $2, $3)`,
    values: [parentId, count, ITEM_BATCH],
  });
  return rows;
}

/** The first failed (or cancelled) item of a for_each step, by index. */
export async function firstFailedItem(
  db: Queryable,
  parent: StepRunRow,
): Promise<Pick<StepRunRow, 'item_index' | 'status' | 'error'> | null> {
  const { rows } = await db.query<Pick<StepRunRow, 'item_index' | 'status' | 'error'>>(
    `SELECT item_index, status, error FROM step_executions
      WHERE execution_id = $1 AND step_id = $2 AND iteration = $3 AND item_index >= 0
        AND status IN ('failed', 'cancelled')
      ORDER BY item_index LIMIT 1`,
    [parent.execution_id, parent.step_id, parent.iteration],
  );
  return rows[0] ?? null;
}

/**
 * Completes a for_each step whose items all ended well: its output is their outputs in index
 * order, gathered in one statement (never through this process item by item).
 */
export async function completeForEach(db: Queryable, parentId: number): Promise<StepRunRow | null> {
  const { rows } = await db.query<StepRunRow>(
    `UPDATE step_executions p
        SET status = 'completed', items = NULL, completed_at = now(), lease_id = NULL,
            updated_at = now(),
            output = (SELECT COALESCE(jsonb_agg(CASE WHEN i.status = 'completed' THEN i.output
                                                     ELSE 'null'::jsonb END ORDER BY i.item_index),
                                      '[]'::jsonb)
                        FROM step_executions i
                       WHERE i.execution_id = p.execution_id AND i.step_id = p.step_id
                         AND i.iteration = p.iteration AND i.item_index >= 0)
      WHERE p.id = $1
      RETURNING ${qualified('p', RUN_COLUMNS)}`,
    [parentId],
  );
  return rows[0] ?? null;
}

/** Queues runs for their next attempt; the rows carry the attempt numbers to put on the jobs. */
export async function queueRuns(db: Queryable, runIds: readonly number[]): Promise<StepRunRow[]> {
  if (runIds.length === 0) return [];
  const { rows } = await db.query<StepRunRow>({
    name: 'queue-runs',
    text: `UPDATE step_executions
              SET status = 'queued', attempt = attempt + 1, queued_at = now(), wake_at = NULL,
                  lease_id = NULL, wait_reason = NULL, ${CLEAR_WAIT}, updated_at = now()
            WHERE id = ANY($1::bigint[])
            RETURNING ${RUN_COLUMNS}`,
    values: [runIds],
  });
  return rows;
}

/**
 * Claims a pending run for its next attempt on behalf of the worker whose transaction made it
 * ready, which runs it as soon as that transaction commits (wf_claim_run_inline).
 */
export async function claimRunInline(
  db: Queryable,
  runId: number,
  leaseId: string,
  timeoutSeconds: number,
): Promise<StepRunRow | null> {
  const { rows } = await db.query<StepRunRow>({
    name: 'claim-run-inline',
    text: `SELECT ${RUN_COLUMNS} FROM wf_claim_run_inline($1, $2, $3)`,
    values: [runId, leaseId, timeoutSeconds],
  });
  return rows[0] ?? null;
}

export async function skipRuns(
  db: Queryable,
  runIds: readonly number[],
  reason: string,
): Promise<StepRunRow[]> {
  if (runIds.length === 0) return [];
  const { rows } = await db.query<StepRunRow>(
    `UPDATE step_executions SET status = 'skipped', wait_reason = $2, completed_at = now(), updated_at = now()
      WHERE id = ANY($1::bigint[])
      RETURNING ${RUN_COLUMNS}`,
    [runIds, reason],
  );
  return rows;
}

/** Ends a run that no worker holds (for_each aggregate, condition or expression failures). */
export async function finishRun(
  db: Queryable,
  runId: number,
  outcome: { status: 'completed'; output: unknown } | { status: 'failed'; error: StepErrorRecord },
): Promise<StepRunRow | null> {
  const { rows } = await db.query<StepRunRow>(
    `UPDATE step_executions
        SET status = $2, output = $3, error = $4, completed_at = now(), lease_id = NULL,
            started_at = COALESCE(started_at, now()), items = NULL, updated_at = now()
      WHERE id = $1
      RETURNING ${RUN_COLUMNS}`,
    [
      runId,
      outcome.status,
      outcome.status === 'completed' ? JSON.stringify(outcome.output ?? null) : null,
      outcome.status === 'failed' ? JSON.stringify(outcome.error) : null,
    ],
  );
  return rows[0] ?? null;
}

/**
 * Claims a run for one attempt: a new lease fences off any older holder (a stale worker or
 * a redelivered job). Returns null when the attempt is no longer current or the execution
 * is not running (cancelled, paused, finished): the job is then dropped.
 * A claim that finds the run still `running` under another lease takes over a claim that
 * never recorded (its process died, or, rarely, lost its job while alive): it counts one
 * more crashed claim, which the worker weighs against MAX_CRASHED_CLAIMS. A claim from any
 * other status starts a fresh count (docs/ARCHITECTURE.md, "Durability").
 */
export async function claimRun(
  db: Queryable,
  runId: number,
  attempt: number,
  leaseId: string,
  timeoutSeconds: number,
): Promise<ClaimedRun | null> {
  const { rows } = await db.query<ClaimedRun>({
    name: 'claim-run',
    text: `WITH claimed AS (
       UPDATE step_executions s
          SET status = 'running', lease_id = $3, started_at = COALESCE(s.started_at, now()),
              deadline_at = now() + make_interval(secs => $4::int),
              -- A retry's due time is spent once it runs; a sleep's stays, so a woken delay
              -- that is re-run after a crash completes instead of sleeping again.
              wake_at = CASE WHEN s.status = 'queued' THEN NULL ELSE s.wake_at END,
              crashed_claims = CASE WHEN s.status <> 'running' THEN 0
                                    WHEN s.lease_id IS DISTINCT FROM $3 THEN s.crashed_claims + 1
                                    ELSE s.crashed_claims END,
              updated_at = now()
         FROM workflow_executions e
        WHERE s.id = $1 AND s.attempt = $2 AND NOT ${FOR_EACH_AGGREGATE} AND s.wait_kind IS NULL
          AND (s.status IN ${SQL_CLAIMABLE_RUNS} OR (s.status = 'waiting' AND s.wake_at IS NOT NULL))
          AND e.id = s.execution_id AND e.status IN ${SQL_RUNNING_EXECUTIONS}
       RETURNING ${qualified('s', RUN_COLUMNS)}, s.crashed_claims, e.workflow_id, e.workflow_version,
                 e.input_data, e.priority, e.concurrency_key
     )
     -- The claimed row's own change is invisible to this snapshot: its status is patched in.
     SELECT c.*,
            (SELECT jsonb_agg(jsonb_build_object(
                      'id', r.id, 'step_id', r.step_id, 'item_index', r.item_index,
                      'status', CASE WHEN r.id = c.id THEN c.status ELSE r.status END,
                      'output', r.output, 'item_count', r.item_count,
                      'items_active', r.items_active, 'items_waiting', r.items_waiting,
                      'items_done', r.items_done, 'items_failed', r.items_failed) ORDER BY r.id)
               FROM step_executions r
              WHERE r.execution_id = c.execution_id AND r.iteration = c.iteration
                AND r.item_index = -1) AS iteration_runs
       FROM claimed c`,
    values: [runId, attempt, leaseId, timeoutSeconds],
  });
  return rows[0] ?? null;
}

/** Locks a run if its attempt is still the given one and unfinished (for the sweep). */
export async function lockRunAttempt(
  db: Queryable,
  runId: number,
  attempt: number,
): Promise<StepRunRow | null> {
  const { rows } = await db.query<StepRunRow>(
    `SELECT * FROM step_executions s
      WHERE id = $1 AND attempt = $2 AND status = ANY($3::text[]) AND NOT ${FOR_EACH_AGGREGATE}
        FOR UPDATE`,
    [runId, attempt, LEASED_STEP_STATUSES],
  );
  return rows[0] ?? null;
}

/**
 * What resume must put back on the queue: queued runs (their jobs were dropped while paused)
 * and sleeping runs (a wake-up that came due while paused was dropped too).
 */
export async function listHeldRuns(db: Queryable, executionId: string): Promise<StepRunRow[]> {
  const { rows } = await db.query<StepRunRow>(
    `SELECT * FROM step_executions
      WHERE execution_id = $1
        AND (status = 'queued' OR (status = 'waiting' AND wake_at IS NOT NULL))`,
    [executionId],
  );
  return rows;
}

/**
 * Checks that a lease is still current, locking the run for the caller's transaction.
 * `startedAt`, for a run claimed inline (its claim left its start open), records when its
 * attempt started in the same statement.
 */
export async function lockLeasedRun(
  db: Queryable,
  runId: number,
  leaseId: string,
  startedAt?: Date,
): Promise<StepRunRow | null> {
  const fenced = 'id = $1 AND lease_id = $2 AND status = ANY($3::text[])';
  const { rows } = await db.query<StepRunRow>(
    startedAt === undefined
      ? {
          text: `SELECT * FROM step_executions WHERE ${fenced} FOR UPDATE`,
          values: [runId, leaseId, LEASED_STEP_STATUSES],
        }
      : {
          text: `UPDATE step_executions SET started_at = COALESCE(started_at, $4)
                  WHERE ${fenced} RETURNING *`,
          values: [runId, leaseId, LEASED_STEP_STATUSES, startedAt],
        },
  );
  return rows[0] ?? null;
}

/** A failed attempt that will be retried: same run, next attempt, due at `runAt`. */
export async function scheduleRetry(
  db: Queryable,
  runId: number,
  error: StepErrorRecord,
  runAt: Date,
): Promise<{ attempt: number }> {
  const { rows } = await db.query<{ attempt: number }>(
    `UPDATE step_executions
        SET status = 'queued', attempt = attempt + 1, error = $2, wake_at = $3, lease_id = NULL,
            wait_reason = $4, ${CLEAR_WAIT}, queued_at = now(), updated_at = now()
      WHERE id = $1
      RETURNING attempt`,
    [runId, JSON.stringify(error), runAt, `retry after: ${error.message}`.slice(0, 500)],
  );
  return { attempt: rows[0]?.attempt ?? 0 };
}

export async function failRun(db: Queryable, runId: number, error: StepErrorRecord): Promise<void> {
  await finishRun(db, runId, { status: 'failed', error });
}

/** Parks a run: a durable sleep (wake_at) or a wait for something outside the engine. */
export async function parkRun(
  db: Queryable,
  runId: number,
  park: {
    reason: string;
    wakeAt: Date | null;
    output?: unknown;
    wait?: ParkedWait;
  },
): Promise<void> {
  await db.query(
    `UPDATE step_executions
        SET status = 'waiting', wait_reason = $2, wake_at = $3,
            output = COALESCE($4::jsonb, output), wait_kind = $5, wait_spec = $6,
            worker_id = NULL, heartbeat_at = NULL, updated_at = now()
      WHERE id = $1`,
    [
      runId,
      park.reason,
      park.wakeAt,
      park.output === undefined ? null : JSON.stringify(park.output),
      park.wait?.kind ?? null,
      park.wait ? JSON.stringify(park.wait.spec) : null,
    ],
  );
}

/** Cancels every unfinished run of an execution; returns how many were stopped. */
export async function cancelUnfinishedRuns(
  db: Queryable,
  executionId: string,
  reason: string,
): Promise<number> {
  const { rowCount } = await db.query(
    `UPDATE step_executions
        SET status = 'cancelled', lease_id = NULL, wait_reason = $2, completed_at = now(), updated_at = now()
      WHERE execution_id = $1 AND status = ANY($3::text[])`,
    [executionId, reason, UNFINISHED_STEP_STATUSES],
  );
  // No general path runs after this to fold the cancelled items' counts: fold them now.
  await db.query(
    `SELECT wf_fold_item_counts(ARRAY(SELECT id FROM step_executions
                                        WHERE execution_id = $1 AND item_index = -1
                                          AND item_count IS NOT NULL))`,
    [executionId],
  );
  return rowCount ?? 0;
}
