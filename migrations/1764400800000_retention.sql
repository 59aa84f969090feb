-- Up Migration

-- Retention (issue 15, "Retention"; docs/ARCHITECTURE.md, "Retention"): a worker process
-- purges finished executions older than RETENTION_DAYS (or their workflow's
-- config.retention_days) and old events, in small batches. Each pass is one row here, written
-- by the process that runs it so that GET /stats in any process shows the last one. The counts
-- grow in the transaction of each batch that deleted them: a pass cut short by a crash keeps
-- what it did commit, and the next pass records its own row. `ended_at` stays NULL while a
-- pass runs, and for good when it was cut short. Only the most recent passes are kept.
-- No new index on workflow_executions: the pass finds its batches through
-- workflow_executions_workflow_created_idx (a finished execution that ended before the cutoff
-- was created before it), and every index there would cost each start and end of the engine.
CREATE TABLE maintenance_runs (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind VARCHAR(50) NOT NULL,
    started_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT clock_timestamp(),
    ended_at TIMESTAMP WITH TIME ZONE,
    executions BIGINT NOT NULL DEFAULT 0,
    step_runs BIGINT NOT NULL DEFAULT 0,
    events BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX maintenance_runs_kind_idx ON maintenance_runs (kind, id DESC);

-- Down Migration
DROP TABLE maintenance_runs;
