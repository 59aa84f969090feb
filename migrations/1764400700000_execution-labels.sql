-- Up Migration

-- Labels of an execution (issue 15, "Labels and search"; README "Operations"): business keys
-- given on execute or on an event, inherited by sub-workflows. `GET /executions` filters by
-- `label.<key>=<value>` through containment (`labels @> {...}`), which the GIN index serves.
ALTER TABLE workflow_executions ADD COLUMN labels JSONB NOT NULL DEFAULT '{}'::jsonb;
CREATE INDEX workflow_executions_labels_idx ON workflow_executions USING gin (labels jsonb_path_ops);

-- Down Migration
DROP INDEX workflow_executions_labels_idx;
ALTER TABLE workflow_executions DROP COLUMN labels;
