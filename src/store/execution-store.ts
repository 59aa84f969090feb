import type { ClaimedRun, ExecutionRow, StepErrorRecord, StepRunRow } from '../domain/execution.js';
import type { ExecutionStatus } from '../domain/statuses.js';
import type { WorkflowDefinition } from '../domain/workflow-definition.js';
import type { Queryable } from './db.js';
import { uncountEnded } from './workflow-counter-store.js';

/** SQL for executions and their step runs. Every function takes the pool or a transaction. */

/**
 * The step's own run of a for_each step once expanded: an aggregate of its item runs that the
 * state manager finishes itself. No worker may claim it and the sweep must never enqueue it,
 * though it is `running` with no lease and no job while its items run.
 */
const FOR_EACH_AGGREGATE = '(s.item_index = -1 AND s.item_count IS NOT NULL)';
/**
 * The columns of ExecutionRow and StepRunRow, named rather than `*`: hot statements are
 * prepared once per connection, and Postgres refuses to run a prepared statement whose result
 * type changed, as `*` would after a migration adds a column under a running service.
 */
const EXECUTION_COLUMNS = `id, workflow_id, status, input_data, output_data, step_results, started_at,
  completed_at, error, error_details, duration_seconds, created_at, updated_at, workflow_version,
  idempotency_key, current_iteration, deadline_at, parent_execution_id, parent_run_id, trigger`;
const RUN_COLUMNS = `id, execution_id, step_id, iteration, item_index, status, attempt, first_attempt,
  lease_id, item, item_count, output, error, wait_reason, wait_kind, wait_spec, worker_id,
  heartbeat_at, wake_at, deadline_at, queued_at, started_at, completed_at, created_at, updated_at`;

/** An execution as readers see it: step_results as stored once it ended, derived before
 * (steps record nothing on the execution row: see wf_step_results). */
const EXECUTION_VIEW_COLUMNS = `e.*, CASE WHEN e.status IN ('pending', 'running', 'waiting', 'paused')
  THEN wf_step_results(e.id) ELSE e.step_results END AS step_results`;

/** `columns` as `alias.column` each, for statements that join. */
function qualified(alias: string, columns: string): string {
  return columns.replace(/\w+/g, (column) => `${alias}.${column}`);
}

/**
 * status, attempt and queued_at of a new run of step `stepId`: queued for its first attempt
 * when `queued` (a text[] parameter) names it, as queueRuns would leave it, else pending.
 */
function firstAttempt(stepId: string, queued: string): string {
  const isQueued = `${stepId} = ANY(${queued}::text[])`;
  return `CASE WHEN ${isQueued} THEN 'queued' ELSE 'pending' END,
          CASE WHEN ${isQueued} THEN 1 ELSE 0 END,
          CASE WHEN ${isQueued} THEN now() END`;
}

/** A new attempt forgets what the previous one waited for. */
const CLEAR_WAIT = 'wait_kind = NULL, wait_spec = NULL, worker_id = NULL, heartbeat_at = NULL';

export async function loadDefinition(
  db: Queryable,
  workflowId: string,
  version: number,
): Promise<WorkflowDefinition | null> {
  const { rows } = await db.query<{ definition: WorkflowDefinition }>(
    'SELECT definition FROM workflow_versions WHERE workflow_id = $1 AND version = $2',
    [workflowId, version],
  );
  return rows[0]?.definition ?? null;
}

/** The workflow's status and current version: what an execute request pins. */
export async function findWorkflowHead(
  db: Queryable,
  workflowId: string,
): Promise<{ status: string; version: number; workflow_type: string } | null> {
  const { rows } = await db.query<{ status: string; version: number; workflow_type: string }>(
    'SELECT status, version, workflow_type FROM workflows WHERE id = $1',
    [workflowId],
  );
  return rows[0] ?? null;
}

export interface NewExecution {
  id: string;
  workflowId: string;
  version: number;
  input: unknown;
  idempotencyKey: string | null;
  timeoutSeconds: number | null;
  /** Set for a sub-workflow execution: the run that waits for it. */
  parent?: { executionId: string; runId: number; attempt: number } | undefined;
  /** What started it: `{type: 'api'|'event'|'schedule'|'subworkflow', ...}`. */
  trigger?: Record<string, unknown> | undefined;
}

/** Timestamps of a row that comes back as JSON, turned into Dates as pg turns them. */
const EXECUTION_DATES = ['started_at', 'completed_at', 'created_at', 'updated_at', 'deadline_at'];
const RUN_DATES = [
  'heartbeat_at',
  'wake_at',
  'deadline_at',
  'queued_at',
  'started_at',
  'completed_at',
  'created_at',
  'updated_at',
];

function revive<Row>(json: Record<string, unknown>, dates: readonly string[]): Row {
  for (const key of dates) {
    const value = json[key];
    if (typeof value === 'string') json[key] = new Date(value);
  }
  return json as Row;
}

/**
 * Inserts a running execution of the workflow version `expected` pins, counts its start for
 * the workflow (a delta, see wf_finish_execution) and inserts its first iteration's runs
 * (insertIterationRuns), in one statement. Null, with nothing written, when the workflow is
 * not at that version with a runnable status any more, or the idempotency key was used.
 */
export async function insertExecution(
  db: Queryable,
  execution: NewExecution,
  expected: { runnable: readonly string[] },
  runs: { stepIds: readonly string[]; queued: readonly string[] },
): Promise<{ row: ExecutionRow; runs: StepRunRow[] } | null> {
  const { rows } = await db.query<{
    execution: Record<string, unknown>;
    runs: Array<Record<string, unknown>> | null;
  }>({
    name: 'insert-execution',
    text: `WITH inserted AS (
             INSERT INTO workflow_executions
               (id, workflow_id, workflow_version, status, input_data, idempotency_key, started_at,
                deadline_at, parent_execution_id, parent_run_id, trigger)
             SELECT $1, w.id, w.version, 'running', $4, $5, now(),
                    CASE WHEN $6::int IS NULL THEN NULL ELSE now() + make_interval(secs => $6::int) END,
                    $7, $8, $9
               FROM workflows w
              WHERE w.id = $2 AND w.version = $3 AND w.status = ANY($10::text[])
             ON CONFLICT (workflow_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
             RETURNING ${EXECUTION_COLUMNS}
           ), counted AS (
             INSERT INTO workflow_counter_deltas (workflow_id, started_at)
             SELECT workflow_id, started_at FROM inserted
           ), runs AS (
             INSERT INTO step_executions (execution_id, step_id, iteration, status, attempt, queued_at)
             SELECT i.id, s.step_id, 0, ${firstAttempt('s.step_id', '$12')}
               FROM inserted i, unnest($11::text[]) WITH ORDINALITY AS s(step_id, position)
              ORDER BY s.position
             RETURNING ${RUN_COLUMNS}
           )
           SELECT to_jsonb(i) AS execution,
                  (SELECT jsonb_agg(to_jsonb(r) ORDER BY r.id) FROM runs r) AS runs
             FROM inserted i`,
    values: [
      execution.id,
      execution.workflowId,
      execution.version,
      JSON.stringify(execution.input ?? {}),
      execution.idempotencyKey,
      execution.timeoutSeconds,
      execution.parent?.executionId ?? null,
      execution.parent?.runId ?? null,
      JSON.stringify({
        ...(execution.trigger ?? { type: 'api' }),
        ...(execution.parent ? { parent_attempt: execution.parent.attempt } : {}),
      }),
      expected.runnable,
      runs.stepIds,
      runs.queued,
    ],
  });
  const inserted = rows[0];
  if (!inserted) return null;
  return {
    row: revive<ExecutionRow>(inserted.execution, EXECUTION_DATES),
    runs: (inserted.runs ?? []).map((run) => revive<StepRunRow>(run, RUN_DATES)),
  };
}

export async function findByIdempotencyKey(
  db: Queryable,
  workflowId: string,
  key: string,
): Promise<ExecutionRow | null> {
  const { rows } = await db.query<ExecutionRow>(
    'SELECT * FROM workflow_executions WHERE workflow_id = $1 AND idempotency_key = $2',
    [workflowId, key],
  );
  return rows[0] ?? null;
}

export async function getExecution(db: Queryable, id: string): Promise<ExecutionRow | null> {
  const { rows } = await db.query<ExecutionRow>(
    `SELECT ${EXECUTION_VIEW_COLUMNS} FROM workflow_executions e WHERE e.id = $1`,
    [id],
  );
  return rows[0] ?? null;
}

/** Locks the execution row: every state change of an execution serialises on it. */
export async function lockExecution(db: Queryable, id: string): Promise<ExecutionRow | null> {
  const { rows } = await db.query<ExecutionRow>({
    name: 'lock-execution',
    text: `SELECT ${EXECUTION_COLUMNS} FROM workflow_executions WHERE id = $1 FOR UPDATE`,
    values: [id],
  });
  return rows[0] ?? null;
}

export interface ExecutionFilters {
  workflowId?: string | undefined;
  status?: ExecutionStatus | undefined;
  createdAfter?: Date | undefined;
  createdBefore?: Date | undefined;
  /** Keyset position: rows strictly after (created_at, id) in descending order. */
  after?: { createdAt: string; id: string } | undefined;
  limit: number;
}

/** Newest first; the created_at text keeps microseconds so the cursor never skips a row. */
export async function listExecutions(
  db: Queryable,
  filters: ExecutionFilters,
): Promise<Array<ExecutionRow & { created_at_key: string }>> {
  const { rows } = await db.query<ExecutionRow & { created_at_key: string }>(
    `SELECT ${EXECUTION_VIEW_COLUMNS},
            to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created_at_key
       FROM workflow_executions e
      WHERE ($1::text IS NULL OR workflow_id = $1)
        AND ($2::text IS NULL OR status = $2)
        AND ($3::timestamptz IS NULL OR created_at >= $3)
        AND ($4::timestamptz IS NULL OR created_at < $4)
        AND ($5::timestamptz IS NULL OR (created_at, id) < ($5::timestamptz, $6::text))
      ORDER BY created_at DESC, id DESC
      LIMIT $7`,
    [
      filters.workflowId ?? null,
      filters.status ?? null,
      filters.createdAfter ?? null,
      filters.createdBefore ?? null,
      filters.after?.createdAt ?? null,
      filters.after?.id ?? null,
      filters.limit,
    ],
  );
  return rows;
}

export async function listStepRuns(db: Queryable, executionId: string): Promise<StepRunRow[]> {
  const { rows } = await db.query<StepRunRow>(
    'SELECT * FROM step_executions WHERE execution_id = $1 ORDER BY iteration, id',
    [executionId],
  );
  return rows;
}

export async function loadIterationRuns(
  db: Queryable,
  executionId: string,
  iteration: number,
): Promise<StepRunRow[]> {
  const { rows } = await db.query<StepRunRow>({
    name: 'load-iteration-runs',
    text: `SELECT ${RUN_COLUMNS} FROM step_executions WHERE execution_id = $1 AND iteration = $2 ORDER BY id`,
    values: [executionId, iteration],
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

/** Creates the item runs of a for_each step (pending) and marks the step itself running;
 * returns the step's own run, then its items. */
export async function expandForEach(
  db: Queryable,
  parent: StepRunRow,
  items: readonly unknown[],
): Promise<StepRunRow[]> {
  const expanded = await db.query<StepRunRow>(
    `UPDATE step_executions SET status = 'running', item_count = $2, started_at = now(), updated_at = now()
      WHERE id = $1
      RETURNING *`,
    [parent.id, items.length],
  );
  const { rows } = await db.query<StepRunRow>(
    `INSERT INTO step_executions (execution_id, step_id, iteration, item_index, item)
     SELECT $1, $2, $3, ordinality - 1, value
       FROM jsonb_array_elements($4::jsonb) WITH ORDINALITY
     RETURNING *`,
    [parent.execution_id, parent.step_id, parent.iteration, JSON.stringify(items)],
  );
  return [...expanded.rows, ...rows];
}

/** Queues runs for their next attempt; returns the attempt numbers to put on the jobs. */
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
      RETURNING *`,
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
            started_at = COALESCE(started_at, now()), updated_at = now()
      WHERE id = $1
      RETURNING *`,
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
              updated_at = now()
         FROM workflow_executions e
        WHERE s.id = $1 AND s.attempt = $2 AND NOT ${FOR_EACH_AGGREGATE} AND s.wait_kind IS NULL
          AND (s.status IN ('queued', 'running') OR (s.status = 'waiting' AND s.wake_at IS NOT NULL))
          AND e.id = s.execution_id AND e.status IN ('running', 'waiting')
       RETURNING ${qualified('s', RUN_COLUMNS)}, e.workflow_id, e.workflow_version, e.input_data
     )
     -- The claimed row's own change is invisible to this snapshot: its status is patched in.
     SELECT c.*,
            (SELECT jsonb_agg(jsonb_build_object(
                      'id', r.id, 'step_id', r.step_id, 'item_index', r.item_index,
                      'status', CASE WHEN r.id = c.id THEN c.status ELSE r.status END,
                      'output', r.output) ORDER BY r.id)
               FROM step_executions r
              WHERE r.execution_id = c.execution_id AND r.iteration = c.iteration) AS iteration_runs
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
      WHERE id = $1 AND attempt = $2 AND status IN ('running', 'waiting') AND NOT ${FOR_EACH_AGGREGATE}
        FOR UPDATE`,
    [runId, attempt],
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
  const fenced = `id = $1 AND lease_id = $2 AND status IN ('running', 'waiting')`;
  const { rows } = await db.query<StepRunRow>(
    startedAt === undefined
      ? {
          text: `SELECT * FROM step_executions WHERE ${fenced} FOR UPDATE`,
          values: [runId, leaseId],
        }
      : {
          text: `UPDATE step_executions SET started_at = COALESCE(started_at, $3)
                  WHERE ${fenced} RETURNING *`,
          values: [runId, leaseId, startedAt],
        },
  );
  return rows[0] ?? null;
}

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
 * still holds it (else returns null and changes nothing) and returns every run of the
 * execution's current iteration, the completed one included, as the scheduler needs them
 * next. The caller holds the execution row, so no other transaction changes these runs'
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
            WHERE s.execution_id = $5 AND s.iteration = $6 AND s.id <> $1
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
    wait?: { kind: 'task' | 'event' | 'child'; spec: unknown };
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
      WHERE execution_id = $1 AND status IN ('pending', 'queued', 'running', 'waiting')`,
    [executionId, reason],
  );
  return rowCount ?? 0;
}

export async function setExecutionStatus(
  db: Queryable,
  executionId: string,
  status: ExecutionStatus,
): Promise<void> {
  await db.query(
    'UPDATE workflow_executions SET status = $2, updated_at = now() WHERE id = $1 AND status <> $2',
    [executionId, status],
  );
}

export async function startIteration(
  db: Queryable,
  executionId: string,
  iteration: number,
): Promise<void> {
  await db.query(
    'UPDATE workflow_executions SET current_iteration = $2, updated_at = now() WHERE id = $1',
    [executionId, iteration],
  );
}

/** Ends an execution and counts it for its workflow (wf_finish_execution). */
export async function finishExecution(
  db: Queryable,
  execution: ExecutionRow,
  outcome: {
    status: 'completed' | 'failed' | 'cancelled' | 'timed_out';
    output?: unknown;
    error?: string;
    errorDetails?: unknown;
  },
): Promise<ExecutionRow> {
  const { rows } = await db.query<ExecutionRow>({
    name: 'finish-execution',
    text: `SELECT ${EXECUTION_COLUMNS} FROM wf_finish_execution($1, $2, $3, $4, $5)`,
    values: [
      execution.id,
      outcome.status,
      outcome.output === undefined ? null : JSON.stringify(outcome.output),
      outcome.error ?? null,
      outcome.errorDetails === undefined ? null : JSON.stringify(outcome.errorDetails),
    ],
  });
  return rows[0] as ExecutionRow;
}

/** Puts a failed execution back to running and its failed/cancelled runs back to pending. */
export async function reopenExecution(db: Queryable, execution: ExecutionRow): Promise<void> {
  await db.query(
    `UPDATE step_executions
        SET status = 'pending', first_attempt = attempt + 1, error = NULL, wait_reason = NULL,
            lease_id = NULL, completed_at = NULL, item_count = NULL, updated_at = now()
      WHERE execution_id = $1 AND iteration = $2 AND item_index = -1 AND status IN ('failed', 'cancelled')`,
    [execution.id, execution.current_iteration],
  );
  // Items of a for_each step that failed run again from scratch when the step runs again.
  await db.query(
    `DELETE FROM step_executions s
      WHERE s.execution_id = $1 AND s.iteration = $2 AND s.item_index >= 0
        AND EXISTS (SELECT 1 FROM step_executions p
                     WHERE p.execution_id = s.execution_id AND p.iteration = s.iteration
                       AND p.step_id = s.step_id AND p.item_index = -1 AND p.status = 'pending')`,
    [execution.id, execution.current_iteration],
  );
  await db.query(
    `UPDATE workflow_executions
        SET status = 'running', error = NULL, error_details = NULL, completed_at = NULL,
            duration_seconds = NULL, output_data = NULL, updated_at = now(),
            deadline_at = CASE WHEN deadline_at IS NULL THEN NULL
                               ELSE now() + (deadline_at - COALESCE(started_at, created_at)) END
      WHERE id = $1`,
    [execution.id],
  );
  // The ended execution was counted; reopening takes it back out until it ends again.
  await uncountEnded(db, execution);
}

/** Runs that are queued and due, of running executions, that nobody touched for a while. */
/** A run with the workflow version its execution pinned, as the sweep needs to enqueue it. */
export type PinnedRun = StepRunRow & { workflow_id: string; workflow_version: number };

export async function findStaleQueuedRuns(
  db: Queryable,
  staleAfterMs: number,
  limit: number,
): Promise<PinnedRun[]> {
  const { rows } = await db.query<PinnedRun>(
    `SELECT s.*, e.workflow_id, e.workflow_version FROM step_executions s JOIN workflow_executions e ON e.id = s.execution_id
      WHERE s.status = 'queued' AND s.updated_at < now() - make_interval(secs => $1::float8 / 1000)
        AND e.status IN ('running', 'waiting')
      ORDER BY s.updated_at LIMIT $2`,
    [staleAfterMs, limit],
  );
  return rows;
}

/** Running runs and sleeping runs whose job may have been lost (Redis flushed, worker gone). */
export async function findStaleActiveRuns(
  db: Queryable,
  staleAfterMs: number,
  limit: number,
): Promise<PinnedRun[]> {
  const { rows } = await db.query<PinnedRun>(
    `SELECT s.*, e.workflow_id, e.workflow_version FROM step_executions s JOIN workflow_executions e ON e.id = s.execution_id
      WHERE e.status IN ('running', 'waiting') AND NOT ${FOR_EACH_AGGREGATE}
        AND ((s.status = 'running' AND s.wait_kind IS NULL
              AND s.updated_at < now() - make_interval(secs => $1::float8 / 1000))
          OR (s.status = 'waiting' AND s.wake_at IS NOT NULL
              AND s.wake_at < now() - make_interval(secs => $1::float8 / 1000)))
      ORDER BY s.updated_at LIMIT $2`,
    [staleAfterMs, limit],
  );
  return rows;
}

/** Attempts past their deadline: the holder died or hung, or an outside answer never came. */
export async function findOverdueRuns(
  db: Queryable,
  graceMs: number,
  limit: number,
): Promise<PinnedRun[]> {
  const { rows } = await db.query<PinnedRun>(
    `SELECT s.*, e.workflow_id, e.workflow_version FROM step_executions s JOIN workflow_executions e ON e.id = s.execution_id
      WHERE (s.status = 'running' OR (s.status = 'waiting' AND s.wake_at IS NULL))
        AND NOT ${FOR_EACH_AGGREGATE}
        AND s.deadline_at < now() - make_interval(secs => $1::float8 / 1000)
        AND e.status IN ('running', 'waiting')
      ORDER BY s.deadline_at LIMIT $2`,
    [graceMs, limit],
  );
  return rows;
}

export async function findOverdueExecutions(db: Queryable, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM workflow_executions
      WHERE status IN ('pending', 'running', 'waiting', 'paused') AND deadline_at < now()
      ORDER BY deadline_at LIMIT $1`,
    [limit],
  );
  return rows.map((row) => row.id);
}

/** Unfinished executions nothing touched for a while: the sweep re-runs the scheduler on them. */
export async function findIdleExecutions(
  db: Queryable,
  idleAfterMs: number,
  limit: number,
): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM workflow_executions
      WHERE status IN ('running', 'waiting') AND updated_at < now() - make_interval(secs => $1::float8 / 1000)
      ORDER BY updated_at LIMIT $2`,
    [idleAfterMs, limit],
  );
  return rows.map((row) => row.id);
}

export async function touchRuns(db: Queryable, runIds: readonly number[]): Promise<void> {
  if (runIds.length === 0) return;
  await db.query('UPDATE step_executions SET updated_at = now() WHERE id = ANY($1::bigint[])', [
    runIds,
  ]);
}

export async function touchExecution(db: Queryable, executionId: string): Promise<void> {
  await db.query('UPDATE workflow_executions SET updated_at = now() WHERE id = $1', [executionId]);
}

/** Runs waiting for a sub-workflow whose execution has ended: the parent missed the news. */
export async function findEndedChildWaits(
  db: Queryable,
  limit: number,
): Promise<Array<{ child_id: string }>> {
  const { rows } = await db.query<{ child_id: string }>(
    `SELECT c.id AS child_id FROM step_executions s
       JOIN workflow_executions c ON c.parent_run_id = s.id
       JOIN workflow_executions p ON p.id = s.execution_id
      WHERE s.status = 'waiting' AND s.wait_kind = 'child' AND (s.wait_spec->>'execution_id') = c.id
        AND c.status IN ('completed', 'failed', 'cancelled', 'timed_out')
        AND p.status IN ('running', 'waiting', 'paused')
      LIMIT $1`,
    [limit],
  );
  return rows;
}

/** Unfinished executions whose parent execution has ended: they must be cancelled. */
export async function findOrphanedChildren(db: Queryable, limit: number): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT c.id FROM workflow_executions c JOIN workflow_executions p ON p.id = c.parent_execution_id
      WHERE c.status IN ('pending', 'running', 'waiting', 'paused')
        AND p.status IN ('completed', 'failed', 'cancelled', 'timed_out')
      LIMIT $1`,
    [limit],
  );
  return rows.map((row) => row.id);
}

export async function listUnfinishedChildren(
  db: Queryable,
  parentExecutionId: string,
): Promise<string[]> {
  const { rows } = await db.query<{ id: string }>(
    `SELECT id FROM workflow_executions
      WHERE parent_execution_id = $1 AND status IN ('pending', 'running', 'waiting', 'paused')`,
    [parentExecutionId],
  );
  return rows.map((row) => row.id);
}

/** Locks the run that waits for this child execution, if it still does. */
export async function lockChildWait(
  db: Queryable,
  runId: number,
  childExecutionId: string,
): Promise<StepRunRow | null> {
  const { rows } = await db.query<StepRunRow>(
    `SELECT * FROM step_executions
      WHERE id = $1 AND status = 'waiting' AND wait_kind = 'child' AND wait_spec->>'execution_id' = $2
      FOR UPDATE`,
    [runId, childExecutionId],
  );
  return rows[0] ?? null;
}

/** Locks a run that waits for an event, if it still does at this attempt. */
export async function lockEventWait(
  db: Queryable,
  runId: number,
  attempt: number,
): Promise<StepRunRow | null> {
  const { rows } = await db.query<StepRunRow>(
    `SELECT * FROM step_executions
      WHERE id = $1 AND attempt = $2 AND status = 'waiting' AND wait_kind = 'event' FOR UPDATE`,
    [runId, attempt],
  );
  return rows[0] ?? null;
}

/** Runs waiting for an event that nothing touched for a while: the sweep looks for a match. */
export async function findIdleEventWaits(
  db: Queryable,
  idleAfterMs: number,
  limit: number,
): Promise<StepRunRow[]> {
  const { rows } = await db.query<StepRunRow>(
    `SELECT s.* FROM step_executions s JOIN workflow_executions e ON e.id = s.execution_id
      WHERE s.status = 'waiting' AND s.wait_kind = 'event' AND e.status IN ('running', 'waiting')
        AND s.updated_at < now() - make_interval(secs => $1::float8 / 1000)
      ORDER BY s.updated_at LIMIT $2`,
    [idleAfterMs, limit],
  );
  return rows;
}
