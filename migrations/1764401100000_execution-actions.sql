-- Up Migration

-- Manual actions on executions (issue 16; README "History"; docs/ARCHITECTURE.md "History"):
-- cancel, pause, resume, retry, edit (and upgrade), with who asked, why, and for edits the
-- values before and after. Written in the transaction of the action itself, so an action and
-- its record commit together. What the engine does by itself (attempts, waits) is not written
-- here: the history derives it from the step runs when it is read, so the hot path pays
-- nothing. No foreign key: purges delete these rows by hand (store/execution-purge.ts).
CREATE TABLE execution_actions (
  id BIGSERIAL PRIMARY KEY,
  execution_id VARCHAR(255) NOT NULL,
  action VARCHAR(20) NOT NULL,
  actor VARCHAR(255),
  reason TEXT,
  detail JSONB NOT NULL DEFAULT '{}'::jsonb,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX execution_actions_execution_idx ON execution_actions (execution_id, id);

-- Down Migration

DROP TABLE execution_actions;
