-- Up Migration

-- Events posted to POST /events. `id` is the caller's delivery id (or generated): the same id
-- twice is delivered once. What the event did is kept with it, for GET /events.
CREATE TABLE events (
    id VARCHAR(255) PRIMARY KEY,
    type VARCHAR(255) NOT NULL,
    data JSONB NOT NULL DEFAULT '{}',
    correlation_key VARCHAR(255),
    received_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    started_executions TEXT[] NOT NULL DEFAULT '{}',
    resumed_steps JSONB NOT NULL DEFAULT '[]'
);
CREATE INDEX events_received_idx ON events (received_at DESC, id DESC);
CREATE INDEX events_type_received_idx ON events (type, received_at DESC);
CREATE INDEX events_correlation_idx ON events (type, correlation_key, received_at DESC)
    WHERE correlation_key IS NOT NULL;

-- What a waiting run waits for. `wait_kind`: 'task' (an external worker), 'event'
-- (wait_for_event), 'child' (a sub-workflow execution). `wait_spec` holds the details:
-- the resolved task config and input, the event type/correlation/match, the child's id.
ALTER TABLE step_executions
    ADD COLUMN wait_kind VARCHAR(20),
    ADD COLUMN wait_spec JSONB,
    ADD COLUMN heartbeat_at TIMESTAMP WITH TIME ZONE,
    ADD COLUMN worker_id VARCHAR(255);

CREATE INDEX step_executions_waiting_kind_idx ON step_executions (wait_kind, updated_at)
    WHERE status = 'waiting';

-- Every task token ever issued, so a stale token (409) is told apart from an unknown one (404).
CREATE TABLE task_tokens (
    token UUID PRIMARY KEY,
    run_id BIGINT NOT NULL REFERENCES step_executions(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    worker_id VARCHAR(255) NOT NULL,
    issued_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW()
);
CREATE INDEX task_tokens_run_idx ON task_tokens (run_id);

-- A sub-workflow execution knows the run that started it; its end resumes that run.
ALTER TABLE workflow_executions
    ADD COLUMN parent_execution_id VARCHAR(255) REFERENCES workflow_executions(id) ON DELETE CASCADE,
    ADD COLUMN parent_run_id BIGINT,
    ADD COLUMN trigger JSONB;
CREATE INDEX workflow_executions_parent_idx ON workflow_executions (parent_execution_id)
    WHERE parent_execution_id IS NOT NULL;

-- Down Migration
DROP INDEX workflow_executions_parent_idx;
ALTER TABLE workflow_executions DROP COLUMN trigger, DROP COLUMN parent_run_id, DROP COLUMN parent_execution_id;
DROP TABLE task_tokens;
DROP INDEX step_executions_waiting_kind_idx;
ALTER TABLE step_executions DROP COLUMN worker_id, DROP COLUMN heartbeat_at, DROP COLUMN wait_spec, DROP COLUMN wait_kind;
DROP TABLE events;
