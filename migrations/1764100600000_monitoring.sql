-- Up Migration

-- Statistics (GET /workflows/{id}/stats, GET /stats) must stay fast with hundreds of thousands
-- of executions: per-workflow counts and durations read one index range, and "finished in the
-- last hour/day" reads a range of completed_at instead of the whole table.
CREATE INDEX workflow_executions_workflow_status_idx
    ON workflow_executions (workflow_id, status) INCLUDE (duration_seconds);
CREATE INDEX workflow_executions_completed_idx
    ON workflow_executions (completed_at) WHERE completed_at IS NOT NULL;
CREATE INDEX step_executions_completed_idx
    ON step_executions (completed_at) WHERE completed_at IS NOT NULL;

-- Transactional outbox of execution changes, feeding GET /executions/{id}/stream and the
-- engine metrics. Triggers write one row per status change in the transaction that makes it,
-- so every transition is captured, whichever code path commits it; a relay in the service
-- moves rows to Redis (a bounded stream per execution plus a pub/sub wake-up) after commit
-- and deletes them. No foreign key: an execution deleted with its workflow leaves rows the
-- relay still publishes and removes.
CREATE TABLE execution_event_outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id VARCHAR(255) NOT NULL,
    -- NULL for a change of the execution itself.
    run_id BIGINT,
    step_id VARCHAR(255),
    iteration INTEGER,
    item_index INTEGER,
    status VARCHAR(20) NOT NULL,
    previous_status VARCHAR(20),
    attempt INTEGER,
    detail JSONB NOT NULL DEFAULT '{}',
    occurred_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp()
);

CREATE FUNCTION wf_outbox_step_run_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO execution_event_outbox
        (execution_id, run_id, step_id, iteration, item_index, status, previous_status, attempt, detail)
    VALUES (
        NEW.execution_id, NEW.id, NEW.step_id, NEW.iteration, NEW.item_index, NEW.status,
        OLD.status, NEW.attempt,
        jsonb_strip_nulls(jsonb_build_object(
            'error', NEW.error,
            'wait_reason', NEW.wait_reason,
            'wake_at', NEW.wake_at,
            'queued_at', NEW.queued_at,
            'started_at', NEW.started_at,
            'completed_at', NEW.completed_at,
            'item_count', NEW.item_count
        ))
    );
    RETURN NULL;
END
$$;

CREATE FUNCTION wf_outbox_execution_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO execution_event_outbox (execution_id, status, previous_status, detail)
    VALUES (
        NEW.id, NEW.status,
        CASE WHEN TG_OP = 'UPDATE' THEN OLD.status END,
        jsonb_strip_nulls(jsonb_build_object(
            'workflow_id', NEW.workflow_id,
            'error', NEW.error,
            'started_at', NEW.started_at,
            'completed_at', NEW.completed_at,
            'duration_seconds', NEW.duration_seconds
        ))
    );
    RETURN NULL;
END
$$;

-- `UPDATE OF` keeps the trigger off the frequent updates that only touch timestamps.
CREATE TRIGGER step_executions_outbox
    AFTER UPDATE OF status, attempt ON step_executions
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.attempt IS DISTINCT FROM NEW.attempt)
    EXECUTE FUNCTION wf_outbox_step_run_change();

CREATE TRIGGER workflow_executions_outbox_insert
    AFTER INSERT ON workflow_executions
    FOR EACH ROW
    EXECUTE FUNCTION wf_outbox_execution_change();

CREATE TRIGGER workflow_executions_outbox_update
    AFTER UPDATE OF status ON workflow_executions
    FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION wf_outbox_execution_change();

-- Down Migration
DROP TRIGGER workflow_executions_outbox_update ON workflow_executions;
DROP TRIGGER workflow_executions_outbox_insert ON workflow_executions;
DROP TRIGGER step_executions_outbox ON step_executions;
DROP FUNCTION wf_outbox_execution_change();
DROP FUNCTION wf_outbox_step_run_change();
DROP TABLE execution_event_outbox;
DROP INDEX step_executions_completed_idx;
DROP INDEX workflow_executions_completed_idx;
DROP INDEX workflow_executions_workflow_status_idx;
