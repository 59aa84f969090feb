import type { StepRunRow } from '../../src/domain/execution.js';

/** A step run row as the store returns it, for tests of pure code: a fresh pending own run
 * of execution ex-1, with `overrides` on top. */
export function stepRunRow(overrides: Partial<StepRunRow> = {}): StepRunRow {
  const now = new Date();
  return {
    id: 1,
    execution_id: 'ex-1',
    step_id: 'a',
    iteration: 0,
    item_index: -1,
    status: 'pending',
    attempt: 1,
    first_attempt: 1,
    lease_id: null,
    item: null,
    item_count: null,
    items_materialised: 0,
    items_active: 0,
    items_waiting: 0,
    items_done: 0,
    items_failed: 0,
    output: null,
    error: null,
    wait_reason: null,
    wait_kind: null,
    wait_spec: null,
    worker_id: null,
    heartbeat_at: null,
    wake_at: null,
    deadline_at: null,
    queued_at: null,
    started_at: null,
    completed_at: null,
    created_at: now,
    updated_at: now,
    limit_keys: null,
    limit_wait: null,
    ...overrides,
  } as StepRunRow;
}
