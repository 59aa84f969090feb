-- Up Migration

-- The seed's counters on `workflows` (execution_count, success_count, failure_count,
-- average_duration_seconds, started_at, completed_at) used to be updated by every start and
-- every end of an execution, in its transaction: all executions of a workflow then queued on
-- that one row's lock until each commit was flushed. Now each start and end inserts a delta
-- row (no contention: inserts only), readers add the deltas not yet folded to the row, and
-- the recovery sweep folds them into the row now and then, deleting them in the same
-- transaction, so every delta counts exactly once. The new columns give the statistics what
-- they used to count over the whole history (cancelled, timed out, total duration).
ALTER TABLE workflows
    ADD COLUMN cancelled_count INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN timed_out_count INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN total_duration_seconds NUMERIC NOT NULL DEFAULT 0;

UPDATE workflows w
   SET cancelled_count = c.cancelled, timed_out_count = c.timed_out,
       total_duration_seconds = c.total_duration
  FROM (SELECT workflow_id,
               count(*) FILTER (WHERE status = 'cancelled') AS cancelled,
               count(*) FILTER (WHERE status = 'timed_out') AS timed_out,
               coalesce(sum(duration_seconds), 0) AS total_duration
          FROM workflow_executions
         WHERE status IN ('completed', 'failed', 'cancelled', 'timed_out')
         GROUP BY workflow_id) AS c
 WHERE w.id = c.workflow_id;

-- No foreign key: a delta of a workflow deleted meanwhile is folded into nothing.
CREATE TABLE workflow_counter_deltas (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    workflow_id VARCHAR(255) NOT NULL,
    ended INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0,
    -- Failed and timed out, as the seed's failure_count.
    failed INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0,
    timed_out INTEGER NOT NULL DEFAULT 0,
    duration_seconds NUMERIC NOT NULL DEFAULT 0,
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE
);
CREATE INDEX workflow_counter_deltas_workflow_idx ON workflow_counter_deltas (workflow_id);

-- Unfinished executions of a workflow by status: what the statistics count row by row, since
-- ended ones are counted by the counters. Small: only executions in flight are in it. It
-- replaces the index of every execution by workflow and status, one entry less to write at
-- every start and end.
CREATE INDEX workflow_executions_unfinished_workflow_idx ON workflow_executions (workflow_id, status)
    WHERE status IN ('pending', 'running', 'waiting', 'paused');
DROP INDEX workflow_executions_workflow_status_idx;

-- `step_results` of an execution from its runs: each step's latest completed output. Steps
-- record nothing on the execution row as they complete (one write less per step): an
-- execution's end stores this once, and reads of an unfinished execution derive it.
-- PL/pgSQL keeps the plan for the session; a SQL function would be planned on every call.
CREATE FUNCTION wf_step_results(p_execution_id VARCHAR) RETURNS JSONB
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (
        SELECT COALESCE(jsonb_object_agg(latest.step_id, latest.output), '{}'::jsonb)
          FROM (SELECT DISTINCT ON (r.step_id) r.step_id, r.output FROM step_executions r
                 WHERE r.execution_id = p_execution_id AND r.item_index = -1
                   AND r.status = 'completed'
                 ORDER BY r.step_id, r.iteration DESC) AS latest);
END
$$;

-- Ends an execution and counts it for its workflow, in the caller's transaction (the caller
-- holds the execution's row lock).
CREATE FUNCTION wf_finish_execution(
    p_execution_id VARCHAR, p_status VARCHAR, p_output JSONB, p_error TEXT, p_error_details JSONB)
RETURNS SETOF workflow_executions LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    WITH finished AS (
        UPDATE workflow_executions
           SET status = p_status, output_data = COALESCE(p_output, output_data), error = p_error,
               error_details = p_error_details, step_results = wf_step_results(id),
               completed_at = now(), updated_at = now(),
               duration_seconds = round(extract(epoch FROM now() - COALESCE(started_at, created_at))::numeric, 2)
         WHERE id = p_execution_id
        RETURNING *
    ), counted AS (
        INSERT INTO workflow_counter_deltas
            (workflow_id, ended, completed, failed, cancelled, timed_out, duration_seconds, completed_at)
        SELECT workflow_id, 1, (p_status = 'completed')::int,
               (p_status IN ('failed', 'timed_out'))::int, (p_status = 'cancelled')::int,
               (p_status = 'timed_out')::int, COALESCE(duration_seconds, 0), completed_at
          FROM finished
    )
    SELECT * FROM finished;
END
$$;

-- The last run of an execution ends, and with it the execution (with `p_execution_output`):
-- the one-statement path of the engine-hot-path migration. Runs that ended stay ended while
-- the execution runs, so the worker's prediction needs no check beyond the lock.
CREATE FUNCTION wf_complete_and_finish(
    p_execution_id VARCHAR, p_iteration INTEGER, p_run_id BIGINT, p_lease_id UUID,
    p_output JSONB, p_started_at TIMESTAMPTZ, p_execution_output JSONB)
RETURNS SETOF workflow_executions LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT wf_lock_running_iteration(p_execution_id, p_iteration) THEN
        RETURN;
    END IF;
    PERFORM 1 FROM wf_complete_leased_run(p_run_id, p_lease_id, p_output, p_started_at);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM wf_finish_execution(p_execution_id, 'completed', p_execution_output, NULL, NULL);
END
$$;

-- Down Migration
DROP FUNCTION wf_complete_and_finish(VARCHAR, INTEGER, BIGINT, UUID, JSONB, TIMESTAMPTZ, JSONB);
DROP FUNCTION wf_finish_execution(VARCHAR, VARCHAR, JSONB, TEXT, JSONB);
DROP FUNCTION wf_step_results(VARCHAR);
CREATE INDEX workflow_executions_workflow_status_idx
    ON workflow_executions (workflow_id, status) INCLUDE (duration_seconds);
DROP INDEX workflow_executions_unfinished_workflow_idx;
DROP TABLE workflow_counter_deltas;
ALTER TABLE workflows
    DROP COLUMN total_duration_seconds,
    DROP COLUMN timed_out_count,
    DROP COLUMN cancelled_count;
