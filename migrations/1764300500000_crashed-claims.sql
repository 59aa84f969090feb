-- Up Migration

-- Poison pills: a run whose attempts keep dying with their process (claimed, never recorded:
-- the worker was SIGKILLed, OOM-killed or hit a fatal V8 error) would otherwise be claimed
-- again and again and take a worker down each time. The claim statement counts, in the same
-- UPDATE, the claims that find the run still `running` under a lease nobody recorded; past
-- MAX_CRASHED_CLAIMS the worker fails the run as `crashed` instead of running it. A claim
-- from any other status (a new attempt, a woken sleep) starts the count again at 0.
-- docs/ARCHITECTURE.md, "Durability".
ALTER TABLE step_executions ADD COLUMN crashed_claims INTEGER NOT NULL DEFAULT 0;

-- As in the engine-hot-path migration, plus the reset: a run reopened by a retry of its
-- execution and claimed inline starts a new attempt, with no crashes behind it.
CREATE OR REPLACE FUNCTION wf_claim_run_inline(
    p_run_id BIGINT, p_lease_id UUID, p_timeout_seconds INTEGER)
RETURNS SETOF step_executions LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    UPDATE step_executions
       SET status = 'running', attempt = attempt + 1, lease_id = p_lease_id, queued_at = now(),
           deadline_at = now() + make_interval(secs => p_timeout_seconds), wake_at = NULL,
           wait_reason = NULL, wait_kind = NULL, wait_spec = NULL, worker_id = NULL,
           heartbeat_at = NULL, crashed_claims = 0, updated_at = now()
     WHERE id = p_run_id AND status = 'pending'
    RETURNING *;
END
$$;

-- Down Migration
CREATE OR REPLACE FUNCTION wf_claim_run_inline(
    p_run_id BIGINT, p_lease_id UUID, p_timeout_seconds INTEGER)
RETURNS SETOF step_executions LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN QUERY
    UPDATE step_executions
       SET status = 'running', attempt = attempt + 1, lease_id = p_lease_id, queued_at = now(),
           deadline_at = now() + make_interval(secs => p_timeout_seconds), wake_at = NULL,
           wait_reason = NULL, wait_kind = NULL, wait_spec = NULL, worker_id = NULL,
           heartbeat_at = NULL, updated_at = now()
     WHERE id = p_run_id AND status = 'pending'
    RETURNING *;
END
$$;
ALTER TABLE step_executions DROP COLUMN crashed_claims;
