-- Up Migration

-- Bulk actions (issue 15; README "Operations"; docs/ARCHITECTURE.md "Bulk actions"): an
-- operation acts on every execution its filter matched, in the background. Its items are the
-- snapshot of what matched, taken a page at a time (snapshot_after is the keyset position, so a
-- crash resumes the snapshot where it stopped). An item's outcome is written in the transaction
-- that acts on its execution, so a resumed operation acts on each execution at most once.
CREATE TABLE bulk_operations (
  id VARCHAR(255) PRIMARY KEY,
  action VARCHAR(20) NOT NULL,
  filter JSONB NOT NULL,
  reason TEXT,
  requested_by VARCHAR(255),
  status VARCHAR(20) NOT NULL DEFAULT 'running',
  matched INTEGER NOT NULL DEFAULT 0,
  done INTEGER NOT NULL DEFAULT 0,
  failed INTEGER NOT NULL DEFAULT 0,
  skipped INTEGER NOT NULL DEFAULT 0,
  skipped_by_reason JSONB NOT NULL DEFAULT '{}'::jsonb,
  snapshot_done BOOLEAN NOT NULL DEFAULT false,
  snapshot_after_created TEXT,
  snapshot_after_id VARCHAR(255),
  -- The process working on it, and until when; another takes over once the lease lapses.
  lease_owner VARCHAR(255),
  lease_until TIMESTAMPTZ,
  error TEXT,
  created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  started_at TIMESTAMPTZ,
  ended_at TIMESTAMPTZ
);
CREATE INDEX bulk_operations_running_idx ON bulk_operations (created_at) WHERE status = 'running';
CREATE INDEX bulk_operations_created_idx ON bulk_operations (created_at DESC, id DESC);

-- No foreign key to the execution: a deleted execution keeps its item (and its outcome).
CREATE TABLE bulk_operation_items (
  operation_id VARCHAR(255) NOT NULL REFERENCES bulk_operations(id) ON DELETE CASCADE,
  execution_id VARCHAR(255) NOT NULL,
  -- Null until acted on: done | failed | skipped
  outcome VARCHAR(20),
  detail TEXT,
  PRIMARY KEY (operation_id, execution_id)
);
CREATE INDEX bulk_operation_items_pending_idx ON bulk_operation_items (operation_id)
  WHERE outcome IS NULL;

-- Down Migration
DROP TABLE bulk_operation_items;
DROP TABLE bulk_operations;
