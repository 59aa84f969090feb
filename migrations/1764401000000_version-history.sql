-- Up Migration

-- Version history and upgrades (issue 16; README "Versions, upgrades and edits";
-- docs/ARCHITECTURE.md "Upgrades"). Each version records who stored it and a one-line summary
-- of what changed against the version before. Versions stored before this migration have no
-- author; the first version of a workflow is its initial version, the others are unknown.
ALTER TABLE workflow_versions
  ADD COLUMN created_by VARCHAR(255),
  ADD COLUMN summary TEXT;
UPDATE workflow_versions SET summary = 'initial version' WHERE version = 1;

-- A bulk action's parameters beyond its filter (upgrade: {"to_version": n}).
ALTER TABLE bulk_operations ADD COLUMN params JSONB NOT NULL DEFAULT '{}'::jsonb;

-- An upgrade can add a pending step to an execution between a worker's claim and its record,
-- so the worker's prediction "this completion ends the execution", made with the version it
-- claimed under, may no longer hold: the one-statement end then also checks that no other own
-- run of the iteration is unfinished, and otherwise changes nothing (the general path decides).
CREATE OR REPLACE FUNCTION wf_complete_and_finish(
    p_execution_id VARCHAR, p_iteration INTEGER, p_run_id BIGINT, p_lease_id UUID,
    p_output JSONB, p_started_at TIMESTAMPTZ, p_execution_output JSONB)
RETURNS SETOF workflow_executions LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    IF NOT wf_lock_running_iteration(p_execution_id, p_iteration) THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM step_executions s
                WHERE s.execution_id = p_execution_id AND s.iteration = p_iteration
                  AND s.item_index = -1 AND s.id <> p_run_id
                  AND s.status IN ('pending', 'queued', 'running', 'waiting')) THEN
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
CREATE OR REPLACE FUNCTION wf_complete_and_finish(
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
ALTER TABLE bulk_operations DROP COLUMN params;
ALTER TABLE workflow_versions DROP COLUMN summary, DROP COLUMN created_by;
