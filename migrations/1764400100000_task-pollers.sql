-- Up Migration

-- When a worker last polled the tasks API for each step type ('*': a poll for every type), so
-- that GET /executions/{id}/diagnosis can say an external task has no worker. One row per
-- step type, written at most every few seconds per process (src/core/task-manager.ts).
CREATE TABLE task_pollers (
    step_type VARCHAR(255) PRIMARY KEY,
    last_poll_at TIMESTAMPTZ NOT NULL,
    worker_id VARCHAR(255) NOT NULL
);

-- Down Migration
DROP TABLE task_pollers;
