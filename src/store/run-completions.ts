import type { ExecutionRow, StepRunRow } from '../domain/execution.js';
import type { Queryable } from './db.js';
import { EXECUTION_COLUMNS, RUN_COLUMNS } from './execution-columns.js';

/**
 * The completions of a leased run: the plain one for a caller that locked and fenced the run,
 * and the one-statement paths (wf_complete_* functions) a worker takes on the per-step path.
 */

/** Completes a run that the caller has locked and fenced (lockLeasedRun, a wait's lock). */
export async function completeLeasedRun(
  db: Queryable,
  runId: number,
  output: unknown,
): Promise<void> {
  await db.query(
    `UPDATE step_executions
        SET status = 'completed', output = $2, error = NULL, wait_reason = NULL, lease_id = NULL,
            completed_at = now(), updated_at = now()
      WHERE id = $1`,
    [runId, JSON.stringify(output ?? null)],
  );
}

/**
 * A step's completion on the general path, in one statement: completes the run if `leaseId`
 * still holds it (else returns null and changes nothing) and returns it with the steps' own
 * runs of the execution's current iteration, as the scheduler needs them next. The statement
 * does not see what its completion of an item did to the item's step's counts: the caller
 * reads that run again (advance does). The caller holds the execution row, so no other transaction changes these runs'
 * scheduling state. `startedAt`: when the attempt's handler started (wf_complete_leased_run).
 */
export async function completeLeasedRunReadingIteration(
  db: Queryable,
  execution: Pick<ExecutionRow, 'id' | 'current_iteration'>,
  runId: number,
  leaseId: string,
  output: unknown,
  startedAt: Date,
): Promise<StepRunRow[] | null> {
  const { rows } = await db.query<StepRunRow>({
    name: 'complete-leased-run-reading-iteration',
    text: `WITH done AS (SELECT ${RUN_COLUMNS} FROM wf_complete_leased_run($1, $2, $3, $4))
           SELECT * FROM done WHERE execution_id = $5 AND iteration = $6
           UNION ALL
           SELECT ${RUN_COLUMNS} FROM step_executions s
            WHERE s.execution_id = $5 AND s.iteration = $6 AND s.id <> $1 AND s.item_index = -1
              AND EXISTS (SELECT 1 FROM done)
           ORDER BY id`,
    values: [
      runId,
      leaseId,
      JSON.stringify(output ?? null),
      startedAt,
      execution.id,
      execution.current_iteration,
    ],
  });
  return rows.some((row) => row.id === runId) ? rows : null;
}

/**
 * A worker's completion of a run whose effect it predicted from the runs it saw; `blockers`
 * are runs that must still be unfinished for the prediction to hold (see predictCompletion).
 */
export interface PredictedCompletion {
  execution: Pick<ExecutionRow, 'id' | 'current_iteration'>;
  run: { id: number; leaseId: string; output: unknown; startedAt: Date };
}

/** The parameters every wf_complete_* function starts with, in their order. */
function completionValues({ execution, run }: PredictedCompletion): unknown[] {
  return [
    execution.id,
    execution.current_iteration,
    run.id,
    run.leaseId,
    JSON.stringify(run.output ?? null),
    run.startedAt,
  ];
}

/**
 * Completes a run and claims the one run its completion makes ready, in one statement, if
 * `blockers` are all still unfinished (wf_complete_and_claim): both rows as stored. Null,
 * with nothing changed, if not.
 */
export async function completeAndClaim(
  db: Queryable,
  change: PredictedCompletion & {
    blockers: number[];
    next: { id: number; leaseId: string; timeoutSeconds: number };
  },
): Promise<{ completed: StepRunRow; claimed: StepRunRow } | null> {
  const { run, next } = change;
  const { rows } = await db.query<StepRunRow>({
    name: 'complete-and-claim',
    text: `SELECT ${RUN_COLUMNS}
             FROM wf_complete_and_claim($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
    values: [
      ...completionValues(change),
      change.blockers,
      next.id,
      next.leaseId,
      next.timeoutSeconds,
    ],
  });
  const completed = rows.find((row) => row.id === run.id);
  const claimed = rows.find((row) => row.id === next.id);
  return completed && claimed ? { completed, claimed } : null;
}

/**
 * Completes a run whose completion decides nothing yet, in one statement, if `blockers` are
 * all still unfinished and one of `active` queued or running (wf_complete_quietly): the
 * completed run as stored. Null, with nothing changed, if not.
 */
export async function completeQuietly(
  db: Queryable,
  change: PredictedCompletion & { blockers: number[]; active: number[] },
): Promise<StepRunRow | null> {
  const { rows } = await db.query<StepRunRow>({
    name: 'complete-quietly',
    text: `SELECT ${RUN_COLUMNS} FROM wf_complete_quietly($1, $2, $3, $4, $5, $6, $7, $8)`,
    values: [...completionValues(change), change.blockers, change.active],
  });
  return rows[0] ?? null;
}

/**
 * Completes the last run of an execution and ends the execution with `output`, in one
 * statement (wf_complete_and_finish): the ended execution. Null, with nothing changed, when
 * the execution no longer runs or the lease was lost.
 */
export async function completeAndFinish(
  db: Queryable,
  change: PredictedCompletion & { output: unknown },
): Promise<ExecutionRow | null> {
  const { rows } = await db.query<ExecutionRow>({
    name: 'complete-and-finish',
    text: `SELECT ${EXECUTION_COLUMNS} FROM wf_complete_and_finish($1, $2, $3, $4, $5, $6, $7)`,
    values: [...completionValues(change), JSON.stringify(change.output ?? null)],
  });
  return rows[0] ?? null;
}

/**
 * Completes a for_each item and starts the next pending item of its step in one statement,
 * when that is all the completion does (wf_complete_item): claimed under `next.leaseId` for
 * the worker, or queued without one. Item completions of one execution run side by side: no
 * statement here writes a row they share. The completed run, then the started one if any; empty, with
 * nothing changed, when the general path must decide.
 */
export async function completeItem(
  db: Queryable,
  change: PredictedCompletion & {
    parentId: number;
    itemIndex: number;
    next: { leaseId: string; timeoutSeconds: number } | null;
    batch: number;
  },
): Promise<StepRunRow[]> {
  const { rows } = await db.query<StepRunRow>({
    name: 'complete-item',
    text: `SELECT ${RUN_COLUMNS} FROM wf_complete_item($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
    values: [
      ...completionValues(change),
      change.parentId,
      change.itemIndex,
      change.next?.leaseId ?? null,
      change.next?.timeoutSeconds ?? null,
      change.batch,
    ],
  });
  return rows;
}
