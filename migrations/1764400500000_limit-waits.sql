-- Up Migration

-- Why a run of a step with named limits was turned away (issue 14, "Named limits";
-- docs/ARCHITECTURE.md, "Flow control"): `{kind: 'concurrency'|'rate', name, key, ...}`,
-- written with the run's `limit_keys` when a worker's claim finds no slot or no token, and
-- cleared when the run enters its limits. A run waiting for a slot is `waiting` with
-- wait_kind 'limit' (no job, no worker); one waiting for a token is `queued` again with its
-- job delayed to `wake_at`.
ALTER TABLE step_executions ADD COLUMN limit_wait JSONB;

-- Down Migration
ALTER TABLE step_executions DROP COLUMN limit_wait;
