-- Up Migration

-- Linear fan-outs (docs/ARCHITECTURE.md, "Fan-outs"). A for_each step's own run keeps its item
-- list and counts of its items by state, so that no transition of one item reads the others:
-- the scheduler decides from the counts, item runs are inserted in batches as they are about
-- to start, and an item's completion can start the next one in one statement.
--   items               the evaluated list, until the step ends (the item runs copy theirs)
--   items_materialised  item runs inserted so far: indexes 0 .. items_materialised - 1
--   items_active        item runs queued or running
--   items_waiting       item runs waiting (a sleep, an event, an external task, a child)
--   items_done          item runs ended (completed, failed, skipped, cancelled)
--   items_failed        item runs failed or cancelled
ALTER TABLE step_executions
    ADD COLUMN items JSONB,
    ADD COLUMN items_materialised INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN items_active INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN items_waiting INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN items_done INTEGER NOT NULL DEFAULT 0,
    ADD COLUMN items_failed INTEGER NOT NULL DEFAULT 0;

-- The counts change by appended deltas, folded into the step's run by the engine's general
-- path (wf_fold_item_counts, under the execution's exclusive lock). Had every item's move
-- updated the step's run itself, that one row would serialise every item's commit: at 100
-- items in flight a fan-out ran at a third of a chain's speed, waiting on that row's lock.
-- No foreign key: its check would share-lock the step's run on every insert.
CREATE TABLE for_each_item_deltas (
    id BIGSERIAL PRIMARY KEY,
    parent_id BIGINT NOT NULL,
    active INTEGER NOT NULL,
    waiting INTEGER NOT NULL,
    done INTEGER NOT NULL,
    failed INTEGER NOT NULL
);
CREATE INDEX for_each_item_deltas_parent_idx ON for_each_item_deltas (parent_id);

-- Pending item runs in index order: the next to start is the first entry of its step's range.
CREATE INDEX step_executions_pending_items_idx
    ON step_executions (execution_id, step_id, iteration, item_index)
    WHERE status = 'pending' AND item_index >= 0;

-- What an item run's status counts as: 0 pending, 1 active, 2 waiting, 3 ended well,
-- 4 ended failed. Only a change of kind is counted (a claim, queued to running, is not).
CREATE FUNCTION wf_item_kind(p_status VARCHAR) RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE p_status
        WHEN 'pending' THEN 0
        WHEN 'queued' THEN 1 WHEN 'running' THEN 1
        WHEN 'waiting' THEN 2
        WHEN 'completed' THEN 3 WHEN 'skipped' THEN 3
        ELSE 4 END
$$;

-- The one place the counts change: every statement that moves an item (the engine, the sweep,
-- cancellation, the tasks API) keeps them right without knowing about them.
CREATE FUNCTION wf_count_item_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    v_old INTEGER := wf_item_kind(OLD.status);
    v_new INTEGER := wf_item_kind(NEW.status);
BEGIN
    IF v_old = v_new THEN
        RETURN NULL;
    END IF;
    INSERT INTO for_each_item_deltas (parent_id, active, waiting, done, failed)
    SELECT p.id, (v_new = 1)::int - (v_old = 1)::int, (v_new = 2)::int - (v_old = 2)::int,
           (v_new >= 3)::int - (v_old >= 3)::int, (v_new = 4)::int - (v_old = 4)::int
      FROM step_executions p
     WHERE p.execution_id = NEW.execution_id AND p.step_id = NEW.step_id
       AND p.iteration = NEW.iteration AND p.item_index = -1;
    RETURN NULL;
END
$$;

-- The WHEN clause calls no function: it is prepared for every statement that updates a
-- status, the engine's hottest, and a function in it (inlined at that moment) cost a chain
-- about 0.2 ms of Postgres CPU per step. Items of the same kind return at once.
CREATE TRIGGER step_executions_count_items
    AFTER UPDATE OF status ON step_executions
    FOR EACH ROW
    WHEN (NEW.item_index >= 0 AND OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION wf_count_item_change();

-- Folds the appended deltas into the steps' runs. A delta appended while this runs is not
-- deleted by it: the next fold counts it.
CREATE FUNCTION wf_fold_item_counts(p_parent_ids BIGINT[])
RETURNS VOID LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    WITH gone AS (
        DELETE FROM for_each_item_deltas WHERE parent_id = ANY(p_parent_ids)
        RETURNING parent_id, active, waiting, done, failed
    ), sums AS (
        SELECT parent_id, sum(active)::int AS active, sum(waiting)::int AS waiting,
               sum(done)::int AS done, sum(failed)::int AS failed
          FROM gone GROUP BY parent_id
    )
    UPDATE step_executions s
       SET items_active = s.items_active + sums.active,
           items_waiting = s.items_waiting + sums.waiting,
           items_done = s.items_done + sums.done, items_failed = s.items_failed + sums.failed
      FROM sums WHERE s.id = sums.parent_id;
END
$$;

-- The functions below name the columns they read of a step's run: a whole-row read would
-- detoast its item list (up to EXPRESSION_MAX_OUTPUT_BYTES) on every call.

-- Inserts the next batch of a for_each step's items (pending): at least p_needed and at least
-- p_batch while any are left, from the list on its own run, which is read once per batch (the
-- variable holds it detoasted, so each item is an index into memory). Serialised on the
-- step's run: a second caller sees the first one's batch.
CREATE FUNCTION wf_materialise_items(p_parent_id BIGINT, p_needed INTEGER, p_batch INTEGER)
RETURNS VOID LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_execution_id VARCHAR;
    v_step_id VARCHAR;
    v_iteration INTEGER;
    v_from INTEGER;
    v_count INTEGER;
    v_items JSONB;
    v_to INTEGER;
BEGIN
    SELECT execution_id, step_id, iteration, items_materialised, item_count
      INTO v_execution_id, v_step_id, v_iteration, v_from, v_count
      FROM step_executions WHERE id = p_parent_id FOR UPDATE;
    IF v_count IS NULL OR v_from >= v_count THEN
        RETURN;
    END IF;
    v_to := LEAST(v_count, v_from + GREATEST(p_needed, p_batch));
    SELECT items INTO v_items FROM step_executions WHERE id = p_parent_id;
    INSERT INTO step_executions (execution_id, step_id, iteration, item_index, item)
    SELECT v_execution_id, v_step_id, v_iteration, i, v_items -> i
      FROM generate_series(v_from, v_to - 1) AS i;
    UPDATE step_executions SET items_materialised = v_to WHERE id = p_parent_id;
END
$$;

-- Locks (FOR UPDATE SKIP LOCKED) and returns the ids of up to p_count pending items of a
-- for_each step above index p_after, lowest first, inserting a batch when too few are left.
CREATE FUNCTION wf_pending_items(p_parent_id BIGINT, p_after INTEGER, p_count INTEGER, p_batch INTEGER)
RETURNS BIGINT[] LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_execution_id VARCHAR;
    v_step_id VARCHAR;
    v_iteration INTEGER;
    v_materialised INTEGER;
    v_count INTEGER;
    v_ids BIGINT[];
BEGIN
    SELECT execution_id, step_id, iteration, items_materialised, item_count
      INTO v_execution_id, v_step_id, v_iteration, v_materialised, v_count
      FROM step_executions WHERE id = p_parent_id;
    FOR v_round IN 1..2 LOOP
        SELECT array_agg(id ORDER BY item_index) INTO v_ids FROM (
            SELECT id, item_index FROM step_executions
             WHERE execution_id = v_execution_id AND step_id = v_step_id
               AND iteration = v_iteration AND item_index > p_after
               AND item_index >= 0 AND status = 'pending'
             ORDER BY item_index LIMIT p_count
               FOR UPDATE SKIP LOCKED) AS next;
        IF COALESCE(cardinality(v_ids), 0) >= p_count OR v_round = 2
           OR v_materialised >= v_count THEN
            EXIT;
        END IF;
        PERFORM wf_materialise_items(p_parent_id, p_count - COALESCE(cardinality(v_ids), 0), p_batch);
    END LOOP;
    RETURN COALESCE(v_ids, '{}');
END
$$;

-- Queues the next p_count items of a for_each step (lowest index first), inserting a batch
-- first when too few exist. Returns the queued item runs. The caller holds the execution's lock.
CREATE FUNCTION wf_start_items(p_parent_id BIGINT, p_count INTEGER, p_batch INTEGER)
RETURNS SETOF step_executions LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    -- Taken first: called from the UPDATE's WHERE, a volatile function runs once per row.
    v_ids BIGINT[] := wf_pending_items(p_parent_id, -1, p_count, p_batch);
BEGIN
    RETURN QUERY
    UPDATE step_executions
       SET status = 'queued', attempt = attempt + 1, queued_at = now(), updated_at = now()
     WHERE id = ANY(v_ids)
    RETURNING *;
END
$$;

-- An item's completion in one statement, when it hands its slot to the next pending item:
-- under a key-share lock of the execution (item completions run side by side; the general
-- path's exclusive lock waits for them and they for it), if the execution still runs this
-- iteration and a pending item is left, completes the item and starts that one, claimed for
-- the worker under p_next_lease_id (which runs it next), or queued when that is NULL. Returns
-- the completed run, then the started one. No row back (nothing changed) when the general
-- path must decide: no item left to start (the step's last items), the execution is not
-- running, or the lease was lost.
CREATE FUNCTION wf_complete_item(
    p_execution_id VARCHAR, p_iteration INTEGER, p_run_id BIGINT, p_lease_id UUID,
    p_output JSONB, p_started_at TIMESTAMPTZ, p_parent_id BIGINT, p_item_index INTEGER,
    p_next_lease_id UUID, p_next_timeout_seconds INTEGER, p_batch INTEGER)
RETURNS SETOF step_executions LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_next BIGINT;
BEGIN
    PERFORM 1 FROM workflow_executions
      WHERE id = p_execution_id AND status = 'running' AND current_iteration = p_iteration
      FOR KEY SHARE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    PERFORM 1 FROM step_executions WHERE id = p_parent_id AND status = 'running' AND items IS NOT NULL;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    v_next := (wf_pending_items(p_parent_id, p_item_index, 1, p_batch))[1];
    IF v_next IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY SELECT * FROM wf_complete_leased_run(p_run_id, p_lease_id, p_output, p_started_at);
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_next_lease_id IS NULL THEN
        RETURN QUERY
        UPDATE step_executions
           SET status = 'queued', attempt = attempt + 1, queued_at = now(), updated_at = now()
         WHERE id = v_next
        RETURNING *;
    ELSE
        RETURN QUERY SELECT * FROM wf_claim_run_inline(v_next, p_next_lease_id, p_next_timeout_seconds);
    END IF;
END
$$;

-- Fan-outs expanded before this migration have every item inserted: count them.
UPDATE step_executions p
   SET items_materialised = c.materialised, items_active = c.active, items_waiting = c.waiting,
       items_done = c.done, items_failed = c.failed
  FROM (SELECT execution_id, step_id, iteration, count(*)::int AS materialised,
               count(*) FILTER (WHERE wf_item_kind(status) = 1)::int AS active,
               count(*) FILTER (WHERE wf_item_kind(status) = 2)::int AS waiting,
               count(*) FILTER (WHERE wf_item_kind(status) >= 3)::int AS done,
               count(*) FILTER (WHERE wf_item_kind(status) = 4)::int AS failed
          FROM step_executions WHERE item_index >= 0
         GROUP BY execution_id, step_id, iteration) c
 WHERE p.item_index = -1 AND p.item_count IS NOT NULL AND p.execution_id = c.execution_id
   AND p.step_id = c.step_id AND p.iteration = c.iteration;

-- Down Migration
DROP FUNCTION wf_complete_item(VARCHAR, INTEGER, BIGINT, UUID, JSONB, TIMESTAMPTZ, BIGINT,
    INTEGER, UUID, INTEGER, INTEGER);
DROP FUNCTION wf_start_items(BIGINT, INTEGER, INTEGER);
DROP FUNCTION wf_pending_items(BIGINT, INTEGER, INTEGER, INTEGER);
DROP FUNCTION wf_materialise_items(BIGINT, INTEGER, INTEGER);
DROP FUNCTION wf_fold_item_counts(BIGINT[]);
DROP TRIGGER step_executions_count_items ON step_executions;
DROP FUNCTION wf_count_item_change();
DROP FUNCTION wf_item_kind(VARCHAR);
DROP INDEX step_executions_pending_items_idx;
DROP TABLE for_each_item_deltas;
ALTER TABLE step_executions
    DROP COLUMN items, DROP COLUMN items_materialised, DROP COLUMN items_active,
    DROP COLUMN items_waiting, DROP COLUMN items_done, DROP COLUMN items_failed;
