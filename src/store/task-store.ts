import type { TaskWaitSpec, WaitingRun } from '../domain/execution.js';
import type { Queryable } from './db.js';
import { RUNNING_EXECUTION_STATUSES } from './sql-statuses.js';

/** SQL for external tasks: waiting runs that other services' workers claim and complete. */

/** What an external worker needs, stored when the run starts waiting (wait_spec). */
export type TaskSpec = TaskWaitSpec;

/** A task's run: waiting for a worker, or running once one claimed it. */
export type ClaimedTask = WaitingRun<'task'>;

/**
 * Claims up to `max` open tasks for a worker. SKIP LOCKED lets many pollers claim at once
 * without ever handing the same task to two of them. Each claim gets a fresh token (the
 * run's lease), recorded in task_tokens so a stale token can be told from an unknown one.
 */
export async function claimTasks(
  db: Queryable,
  request: {
    stepTypes: readonly string[] | null;
    agentId: string | null;
    workerId: string;
    max: number;
  },
): Promise<ClaimedTask[]> {
  const { rows } = await db.query<ClaimedTask>(
    `WITH candidates AS (
       SELECT s.id FROM step_executions s JOIN workflow_executions e ON e.id = s.execution_id
        WHERE s.status = 'waiting' AND s.wait_kind = 'task' AND e.status = ANY($5::text[])
          AND ($1::text[] IS NULL OR s.wait_spec->>'step_type' = ANY($1::text[]))
          AND ($2::text IS NULL OR s.wait_spec->>'agent_id' = $2)
        ORDER BY s.updated_at, s.id
        LIMIT $3
        FOR UPDATE OF s SKIP LOCKED
     ), claimed AS (
       UPDATE step_executions s
          SET status = 'running', lease_id = gen_random_uuid(), worker_id = $4::text, heartbeat_at = now(),
              wait_reason = 'claimed by ' || $4::text, updated_at = now()
         FROM candidates c WHERE s.id = c.id
       RETURNING s.*
     ), tokens AS (
       INSERT INTO task_tokens (token, run_id, attempt, worker_id)
       SELECT lease_id, id, attempt, $4::text FROM claimed
     )
     SELECT * FROM claimed ORDER BY updated_at, id`,
    [request.stepTypes, request.agentId, request.max, request.workerId, RUNNING_EXECUTION_STATUSES],
  );
  if (rows.length > 0) {
    await db.query(
      `UPDATE workflow_executions SET status = 'running', updated_at = now()
        WHERE id = ANY($1::text[]) AND status = 'waiting'`,
      [[...new Set(rows.map((row) => row.execution_id))]],
    );
  }
  return rows;
}

/** The run a token was issued for, or null for a token never issued. */
export async function findTaskToken(
  db: Queryable,
  token: string,
): Promise<{ run_id: number; attempt: number; execution_id: string } | null> {
  const { rows } = await db.query<{ run_id: number; attempt: number; execution_id: string }>(
    `SELECT t.run_id, t.attempt, s.execution_id FROM task_tokens t
       JOIN step_executions s ON s.id = t.run_id WHERE t.token = $1`,
    [token],
  );
  return rows[0] ?? null;
}

/** Extends a claimed task's lease; false when the token is no longer the current one. */
export async function heartbeatTask(db: Queryable, token: string): Promise<ClaimedTask | null> {
  const { rows } = await db.query<ClaimedTask>(
    `UPDATE step_executions s SET heartbeat_at = now(), updated_at = now()
       FROM workflow_executions e
      WHERE s.lease_id = $1 AND s.status = 'running' AND s.wait_kind = 'task'
        AND e.id = s.execution_id AND e.status = ANY($2::text[])
      RETURNING s.*`,
    [token, RUNNING_EXECUTION_STATUSES],
  );
  return rows[0] ?? null;
}

/** Claimed tasks whose worker stopped heartbeating within the task's lease. */
export async function findExpiredTaskLeases(
  db: Queryable,
  limit: number,
): Promise<Array<{ id: number; execution_id: string; attempt: number; worker_id: string | null }>> {
  const { rows } = await db.query<{
    id: number;
    execution_id: string;
    attempt: number;
    worker_id: string | null;
  }>(
    `SELECT s.id, s.execution_id, s.attempt, s.worker_id FROM step_executions s
      WHERE s.status = 'running' AND s.wait_kind = 'task'
        AND s.heartbeat_at < now() - make_interval(secs => (s.wait_spec->>'lease_seconds')::float8)
      ORDER BY s.heartbeat_at LIMIT $1`,
    [limit],
  );
  return rows;
}

/** Records that `workerId` polled for these step types (`*`: every type) now. */
export async function recordPoll(
  db: Queryable,
  stepTypes: readonly string[],
  workerId: string,
): Promise<void> {
  await db.query(
    `INSERT INTO task_pollers (step_type, last_poll_at, worker_id)
     SELECT step_type, now(), $2 FROM unnest($1::text[]) AS step_type
     ON CONFLICT (step_type) DO UPDATE SET last_poll_at = excluded.last_poll_at,
                                           worker_id = excluded.worker_id`,
    [stepTypes, workerId],
  );
}

/** When a worker last polled for each of these step types, and for every type (`*`). */
export async function lastPolls(
  db: Queryable,
  stepTypes: readonly string[],
): Promise<Map<string, Date>> {
  const { rows } = await db.query<{ step_type: string; last_poll_at: Date }>(
    `SELECT step_type, last_poll_at FROM task_pollers WHERE step_type = ANY($1::text[])`,
    [[...stepTypes, '*']],
  );
  return new Map(rows.map((row) => [row.step_type, row.last_poll_at]));
}

/** Open tasks (waiting for a worker to claim them) by step type, for the metrics scrape. */
export async function countWaitingTasks(
  db: Queryable,
): Promise<Array<{ step_type: string; waiting: number }>> {
  const { rows } = await db.query<{ step_type: string; waiting: number }>(
    `SELECT s.wait_spec->>'step_type' AS step_type, count(*)::int AS waiting
       FROM step_executions s JOIN workflow_executions e ON e.id = s.execution_id
      WHERE s.status = 'waiting' AND s.wait_kind = 'task' AND e.status = ANY($1::text[])
      GROUP BY 1`,
    [RUNNING_EXECUTION_STATUSES],
  );
  return rows;
}

/** When a worker last polled for each step type (`*`: every type), for the metrics scrape. */
export async function allLastPolls(
  db: Queryable,
): Promise<Array<{ step_type: string; last_poll_at: Date }>> {
  const { rows } = await db.query<{ step_type: string; last_poll_at: Date }>(
    'SELECT step_type, last_poll_at FROM task_pollers',
  );
  return rows;
}
