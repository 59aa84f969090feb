-- Up Migration

-- An execution's priority (issue 14, "Priority"): 1 runs first, 10 last, 5 by default, from
-- `priority` on execute or the workflow's `config.priority`. Its steps' jobs carry it
-- (src/engine/step-queue.ts), so under contention ready steps go in priority order.
ALTER TABLE workflow_executions
    ADD COLUMN priority SMALLINT NOT NULL DEFAULT 5 CHECK (priority BETWEEN 1 AND 10);

-- Down Migration
ALTER TABLE workflow_executions DROP COLUMN priority;
