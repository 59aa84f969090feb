-- Up Migration

-- Named limits shared across workflows (issue 14, "Named limits"; README "Flow control").
-- A limit caps how many runs of the steps that name it may run at once (`max_concurrent`),
-- how many may start per period (`rate_limit` per `rate_period_seconds`), or both; a step's
-- `limits: [{name, key?}]` gives each key value its own budget. Managed through /limits
-- (src/store/limit-store.ts); a workflow may name only a limit that exists.
CREATE TABLE limits (
    name TEXT PRIMARY KEY,
    max_concurrent INTEGER NULL CHECK (max_concurrent >= 1),
    rate_limit INTEGER NULL CHECK (rate_limit >= 1),
    rate_period_seconds INTEGER NULL CHECK (rate_period_seconds >= 1),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (max_concurrent IS NOT NULL OR rate_limit IS NOT NULL),
    CHECK ((rate_limit IS NULL) = (rate_period_seconds IS NULL))
);

-- The budgets a run holds or waits for, written when a run of a step with limits is claimed:
-- one element per limit of the step, `name || ':' || key` (the evaluated key as text, '' for
-- a limit without a key). NULL for the runs of steps without limits, so the index below holds
-- only runs that count: `running` ones use a slot, `waiting` ones with wait_kind 'limit' wait
-- for one. The statuses are spelled as src/store/sql-statuses.ts spells them, so the planner
-- matches the predicate.
ALTER TABLE step_executions ADD COLUMN limit_keys TEXT[] NULL;

CREATE INDEX step_executions_limit_keys_idx ON step_executions USING gin (limit_keys)
    WHERE limit_keys IS NOT NULL AND status IN ('running', 'waiting');

-- Down Migration
DROP INDEX step_executions_limit_keys_idx;
ALTER TABLE step_executions DROP COLUMN limit_keys;
DROP TABLE limits;
