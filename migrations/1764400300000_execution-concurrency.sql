-- Up Migration

-- Execution concurrency per key (issue 14; docs/ARCHITECTURE.md, "Flow control"). A workflow
-- with `config.concurrency` starts its executions `queued`: a worker evaluates the key
-- (`concurrency_key`, NULL until then) and admits the execution while fewer than `limit`
-- executions of that workflow and key hold a slot. Slots are counted from these rows, so no
-- limit is exceeded whatever the number of processes; the admission and every end take a
-- transaction-scoped advisory lock on (workflow, key), so a queued execution is never
-- stranded behind a slot freed at the same moment.
ALTER TABLE workflow_executions
    ADD COLUMN concurrency_key TEXT,
    -- Why the key is `__error__`: the key expression's failure, for the diagnosis.
    ADD COLUMN concurrency_key_error TEXT;

-- Holders and the line of one key, in admission order (priority, then FIFO).
CREATE INDEX workflow_executions_concurrency_idx
    ON workflow_executions (workflow_id, concurrency_key, status, priority, created_at)
    WHERE concurrency_key IS NOT NULL AND status IN ('pending', 'queued', 'running', 'waiting', 'paused');

-- The unfinished statuses gain `queued`: the partial indexes spell the list as the code does
-- (src/store/sql-statuses.ts), or the planner cannot match them.
DROP INDEX workflow_executions_unfinished_idx;
CREATE INDEX workflow_executions_unfinished_idx ON workflow_executions (deadline_at)
    WHERE status IN ('pending', 'queued', 'running', 'waiting', 'paused');
DROP INDEX workflow_executions_unfinished_workflow_idx;
CREATE INDEX workflow_executions_unfinished_workflow_idx ON workflow_executions (workflow_id, status)
    WHERE status IN ('pending', 'queued', 'running', 'waiting', 'paused');

-- Down Migration
DROP INDEX workflow_executions_unfinished_workflow_idx;
CREATE INDEX workflow_executions_unfinished_workflow_idx ON workflow_executions (workflow_id, status)
    WHERE status IN ('pending', 'running', 'waiting', 'paused');
DROP INDEX workflow_executions_unfinished_idx;
CREATE INDEX workflow_executions_unfinished_idx ON workflow_executions (deadline_at)
    WHERE status IN ('pending', 'running', 'waiting', 'paused');
DROP INDEX workflow_executions_concurrency_idx;
ALTER TABLE workflow_executions DROP COLUMN concurrency_key, DROP COLUMN concurrency_key_error;
