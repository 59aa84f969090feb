-- Up Migration

-- Debounce (issue 14; docs/ARCHITECTURE.md, "Flow control"): a workflow with
-- `config.debounce` collects starts with the same key into one `queued` execution until
-- `debounce_until` (pushed back by each start, never past `debounce_deadline`), then admits
-- it with the latest input. At most one execution per workflow and key collects at a time:
-- the unique index makes concurrent first starts agree on one.
ALTER TABLE workflow_executions
    ADD COLUMN debounce_key TEXT,
    ADD COLUMN debounce_until TIMESTAMPTZ,
    ADD COLUMN debounce_deadline TIMESTAMPTZ;

CREATE UNIQUE INDEX workflow_executions_debouncing_idx
    ON workflow_executions (workflow_id, debounce_key)
    WHERE status = 'queued' AND debounce_until IS NOT NULL;

-- Down Migration
DROP INDEX workflow_executions_debouncing_idx;
ALTER TABLE workflow_executions
    DROP COLUMN debounce_key, DROP COLUMN debounce_until, DROP COLUMN debounce_deadline;
