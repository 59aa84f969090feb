-- Up Migration

-- Tracing (issue 18; README "Tracing"; docs/ARCHITECTURE.md "Tracing"): the execution's W3C
-- trace context, written by the insert that starts it, so that any process (another worker,
-- one restarted, one that runs a retry after Redis was lost) parents its step-attempt spans
-- to the execution span without relying on BullMQ job data. NULL when tracing is off: no
-- statement of the hot path reads it then. `{traceparent, tracestate?, parent?, exported?}`:
-- traceparent names the execution span, parent the caller's span, exported marks the
-- execution span as sent (exactly once, whichever process ends the execution).
ALTER TABLE workflow_executions ADD COLUMN trace_context JSONB;

-- Down Migration
ALTER TABLE workflow_executions DROP COLUMN trace_context;
