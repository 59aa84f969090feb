-- Up Migration

-- The outbox carries derived, resumable news (the SSE stream, metrics), never state: every
-- row is written and deleted within moments, two or three per step. Unlogged, those writes
-- skip the WAL, a large part of a step's cost. A Postgres crash empties it; clients whose
-- stream then misses changes resync from a snapshot, as they do when Redis loses a stream.
ALTER TABLE execution_event_outbox SET UNLOGGED;

-- An iteration's first steps are inserted queued (one write instead of an insert and an
-- update): the stream shows that as their first change, as it did the update.
CREATE TRIGGER step_executions_outbox_insert
    AFTER INSERT ON step_executions
    FOR EACH ROW
    WHEN (NEW.status <> 'pending')
    EXECUTE FUNCTION wf_outbox_step_run_change();

-- The engine's hot path as functions, so the general path (one statement each, in the
-- state manager's transaction) and the one-statement path below share one definition of
-- "complete a leased run" and "claim a run for the worker that made it ready".

-- Completes a run if `p_lease_id` still holds it; no row back when the lease was lost.
-- `p_started_at`: when the attempt's handler started, for a run claimed without a start time.
-- PL/pgSQL rather than SQL functions throughout: it keeps each statement's plan for the
-- session, where a SQL function that modifies data is planned again on every call.
CREATE FUNCTION wf_complete_leased_run(
    p_run_id BIGINT, p_lease_id UUID, p_output JSONB, p_started_at TIMESTAMPTZ)
RETURNS SETOF step_executions LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    UPDATE step_executions
       SET status = 'completed', output = p_output, error = NULL, wait_reason = NULL,
           lease_id = NULL, started_at = COALESCE(started_at, p_started_at),
           completed_at = now(), updated_at = now()
     WHERE id = p_run_id AND lease_id = p_lease_id AND status IN ('running', 'waiting')
    RETURNING *;
END
$$;

-- Claims a pending run for its next attempt on behalf of the worker whose transaction made
-- it ready and which runs it once that commits: no job, no second claim. started_at is left
-- to the attempt's record (wf_complete_leased_run), which knows when the handler started.
CREATE FUNCTION wf_claim_run_inline(p_run_id BIGINT, p_lease_id UUID, p_timeout_seconds INTEGER)
RETURNS SETOF step_executions LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    UPDATE step_executions
       SET status = 'running', attempt = attempt + 1, lease_id = p_lease_id, queued_at = now(),
           deadline_at = now() + make_interval(secs => p_timeout_seconds), wake_at = NULL,
           wait_reason = NULL, wait_kind = NULL, wait_spec = NULL, worker_id = NULL,
           heartbeat_at = NULL, updated_at = now()
     WHERE id = p_run_id AND status = 'pending'
    RETURNING *;
END
$$;

-- The one-statement paths. From the runs it last saw, a worker predicts what its completion
-- does (predictCompletion in src/engine/scheduler.ts): the execution ends, exactly one quick
-- step becomes ready (which the same worker runs next), or nothing follows yet. It names the
-- runs the prediction rests on, and these functions check them under the execution's row
-- lock and apply the prediction. When a check fails (another run ended first, the execution
-- was paused or cancelled, the lease was lost) nothing changes, no row comes back, and the
-- worker takes the general path, which reads the runs and decides. Checks come before the
-- first write, so a refusal never leaves half a change. A volatile function takes a fresh
-- snapshot per statement: what it reads after the lock includes everything committed by
-- whoever held the lock before.

-- Locks an execution if it runs `p_iteration` (false, locking nothing, if not).
CREATE FUNCTION wf_lock_running_iteration(p_execution_id VARCHAR, p_iteration INTEGER)
RETURNS BOOLEAN LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    PERFORM 1 FROM workflow_executions
      WHERE id = p_execution_id AND status = 'running' AND current_iteration = p_iteration
      FOR UPDATE;
    RETURN FOUND;
END
$$;

-- Whether every one of these runs is still unfinished: each keeps a dependent of the
-- completed run from being ready.
CREATE FUNCTION wf_all_unfinished(p_runs BIGINT[])
RETURNS BOOLEAN LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN NOT EXISTS (
        SELECT 1 FROM unnest(p_runs) AS b(id)
         WHERE NOT EXISTS (SELECT 1 FROM step_executions s
                            WHERE s.id = b.id
                              AND s.status IN ('pending', 'queued', 'running', 'waiting')));
END
$$;

-- The completion makes one step ready: its run (pending: nothing else can start it before the
-- completed run ends) is claimed for the worker. Returns the completed run, then the claimed
-- one, as stored (what later expressions read).
CREATE FUNCTION wf_complete_and_claim(
    p_execution_id VARCHAR, p_iteration INTEGER, p_run_id BIGINT, p_lease_id UUID,
    p_output JSONB, p_started_at TIMESTAMPTZ, p_blockers BIGINT[], p_next_run_id BIGINT,
    p_next_lease_id UUID, p_next_timeout_seconds INTEGER)
RETURNS SETOF step_executions LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    -- One IF per check: the lock must come first, and an expression's order is not promised.
    IF NOT wf_lock_running_iteration(p_execution_id, p_iteration) THEN
        RETURN;
    END IF;
    IF NOT wf_all_unfinished(p_blockers) THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM wf_complete_leased_run(p_run_id, p_lease_id, p_output, p_started_at);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM wf_claim_run_inline(p_next_run_id, p_next_lease_id, p_next_timeout_seconds);
    IF NOT FOUND THEN
        -- Only the completion could make that run ready: this is a bug, and the whole
        -- statement rolls back rather than complete a run whose successor nobody runs.
        RAISE EXCEPTION 'run % of execution % was not pending', p_next_run_id, p_execution_id;
    END IF;
END
$$;

-- Nothing follows the completion yet; one of `p_active` still queued or running keeps the
-- execution running. Returns the completed run.
CREATE FUNCTION wf_complete_quietly(
    p_execution_id VARCHAR, p_iteration INTEGER, p_run_id BIGINT, p_lease_id UUID,
    p_output JSONB, p_started_at TIMESTAMPTZ, p_blockers BIGINT[], p_active BIGINT[])
RETURNS SETOF step_executions LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT wf_lock_running_iteration(p_execution_id, p_iteration) THEN
        RETURN;
    END IF;
    IF NOT wf_all_unfinished(p_blockers)
       OR NOT EXISTS (SELECT 1 FROM step_executions s
                       WHERE s.id = ANY(p_active) AND s.status IN ('queued', 'running')) THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM wf_complete_leased_run(p_run_id, p_lease_id, p_output, p_started_at);
END
$$;

-- Down Migration
DROP FUNCTION wf_complete_quietly(VARCHAR, INTEGER, BIGINT, UUID, JSONB, TIMESTAMPTZ, BIGINT[],
    BIGINT[]);
DROP FUNCTION wf_complete_and_claim(VARCHAR, INTEGER, BIGINT, UUID, JSONB, TIMESTAMPTZ,
    BIGINT[], BIGINT, UUID, INTEGER);
DROP FUNCTION wf_all_unfinished(BIGINT[]);
DROP FUNCTION wf_lock_running_iteration(VARCHAR, INTEGER);
DROP FUNCTION wf_claim_run_inline(BIGINT, UUID, INTEGER);
DROP FUNCTION wf_complete_leased_run(BIGINT, UUID, JSONB, TIMESTAMPTZ);
DROP TRIGGER step_executions_outbox_insert ON step_executions;
ALTER TABLE execution_event_outbox SET LOGGED;
