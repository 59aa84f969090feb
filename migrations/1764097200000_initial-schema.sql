-- Up Migration

-- Trigram indexes make the name search (ILIKE '%term%') use an index. pg_trgm is a trusted
-- extension, so the service's own role may create it.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- The seed's workflows table, column for column, plus `version` (incremented by every PUT).
CREATE TABLE workflows (
    id VARCHAR(255) PRIMARY KEY,
    name VARCHAR(255) NOT NULL,
    description TEXT,
    workflow_type VARCHAR(50) NOT NULL,
    status VARCHAR(50) DEFAULT 'draft',
    config JSONB DEFAULT '{}',
    metadata JSONB DEFAULT '{}',
    tags TEXT[] DEFAULT '{}',
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE,
    execution_count INTEGER DEFAULT 0,
    success_count INTEGER DEFAULT 0,
    failure_count INTEGER DEFAULT 0,
    average_duration_seconds DECIMAL(10,2) DEFAULT 0.0,
    version INTEGER NOT NULL DEFAULT 1
);

-- Keyset pagination orders by (created_at DESC, id DESC); each filter gets a matching index.
CREATE INDEX workflows_created_idx ON workflows (created_at DESC, id DESC);
CREATE INDEX workflows_status_created_idx ON workflows (status, created_at DESC, id DESC);
CREATE INDEX workflows_type_created_idx ON workflows (workflow_type, created_at DESC, id DESC);
CREATE INDEX workflows_tags_idx ON workflows USING GIN (tags);
CREATE INDEX workflows_name_trgm_idx ON workflows USING GIN (name gin_trgm_ops);

-- The seed's workflow_steps table holds step *definitions*. Its runtime columns (status,
-- result, error, started_at, completed_at) are kept for compatibility; per-execution state
-- lives in step_executions. `step_key` is the stable id users see, unique per workflow.
CREATE TABLE workflow_steps (
    id VARCHAR(255) PRIMARY KEY,
    workflow_id VARCHAR(255) REFERENCES workflows(id) ON DELETE CASCADE,
    name VARCHAR(255) NOT NULL,
    step_type VARCHAR(100) NOT NULL,
    agent_id VARCHAR(255),
    config JSONB DEFAULT '{}',
    dependencies TEXT[] DEFAULT '{}',
    timeout_seconds INTEGER DEFAULT 300,
    retry_count INTEGER DEFAULT 3,
    status VARCHAR(50) DEFAULT 'pending',
    result JSONB,
    error TEXT,
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    step_key VARCHAR(255) NOT NULL,
    position INTEGER NOT NULL,
    definition JSONB NOT NULL,
    UNIQUE (workflow_id, step_key)
);

-- Every version a workflow ever had, as the engine reads it. Executions pin one, so editing
-- a workflow never changes a running execution.
CREATE TABLE workflow_versions (
    workflow_id VARCHAR(255) NOT NULL REFERENCES workflows(id) ON DELETE CASCADE,
    version INTEGER NOT NULL,
    definition JSONB NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    PRIMARY KEY (workflow_id, version)
);

-- The seed's workflow_executions table plus what the engine needs.
CREATE TABLE workflow_executions (
    id VARCHAR(255) PRIMARY KEY,
    workflow_id VARCHAR(255) REFERENCES workflows(id) ON DELETE CASCADE,
    status VARCHAR(50) DEFAULT 'pending',
    input_data JSONB DEFAULT '{}',
    output_data JSONB,
    step_results JSONB DEFAULT '{}',
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE,
    error TEXT,
    duration_seconds DECIMAL(10,2),
    created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
    workflow_version INTEGER NOT NULL,
    idempotency_key VARCHAR(255),
    current_iteration INTEGER NOT NULL DEFAULT 0,
    deadline_at TIMESTAMP WITH TIME ZONE,
    error_details JSONB,
    FOREIGN KEY (workflow_id, workflow_version) REFERENCES workflow_versions (workflow_id, version)
);

CREATE UNIQUE INDEX workflow_executions_idempotency_idx
    ON workflow_executions (workflow_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX workflow_executions_created_idx ON workflow_executions (created_at DESC, id DESC);
CREATE INDEX workflow_executions_workflow_created_idx
    ON workflow_executions (workflow_id, created_at DESC, id DESC);
CREATE INDEX workflow_executions_status_created_idx
    ON workflow_executions (status, created_at DESC, id DESC);
-- The recovery sweep only ever looks at unfinished executions.
CREATE INDEX workflow_executions_unfinished_idx ON workflow_executions (deadline_at)
    WHERE status IN ('pending', 'running', 'waiting', 'paused');

-- One row per run of a step in an execution: per loop iteration, and per item of a for_each
-- step (item_index >= 0; the step's own row has item_index -1). `attempt` only ever grows and
-- fences completions; `lease_id` is renewed by every claim so a stale worker's late result
-- changes nothing.
CREATE TABLE step_executions (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    execution_id VARCHAR(255) NOT NULL REFERENCES workflow_executions(id) ON DELETE CASCADE,
    step_id VARCHAR(255) NOT NULL,
    iteration INTEGER NOT NULL DEFAULT 0,
    item_index INTEGER NOT NULL DEFAULT -1,
    status VARCHAR(20) NOT NULL DEFAULT 'pending',
    attempt INTEGER NOT NULL DEFAULT 0,
    first_attempt INTEGER NOT NULL DEFAULT 1,
    lease_id UUID,
    item JSONB,
    item_count INTEGER,
    output JSONB,
    error JSONB,
    wait_reason TEXT,
    wake_at TIMESTAMP WITH TIME ZONE,
    deadline_at TIMESTAMP WITH TIME ZONE,
    queued_at TIMESTAMP WITH TIME ZONE,
    started_at TIMESTAMP WITH TIME ZONE,
    completed_at TIMESTAMP WITH TIME ZONE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    UNIQUE (execution_id, step_id, iteration, item_index)
);

CREATE INDEX step_executions_active_idx ON step_executions (status, updated_at)
    WHERE status IN ('queued', 'running', 'waiting');

-- Down Migration
DROP TABLE step_executions;
DROP TABLE workflow_executions;
DROP TABLE workflow_versions;
DROP TABLE workflow_steps;
DROP TABLE workflows;
