-- Up Migration

-- API keys (DESIGN.md section 7). Only a SHA-256 of each key is stored: the raw key is shown
-- once, when it is created. `id` is `ak_` + the key's lookup part, so a presented key finds
-- its row by primary key and the hash comparison is constant-time in the service.
CREATE TABLE api_keys (
    id VARCHAR(64) PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    role VARCHAR(20) NOT NULL CHECK (role IN ('viewer', 'operator', 'editor', 'admin')),
    key_hash BYTEA NOT NULL CHECK (octet_length(key_hash) = 32),
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW(),
    created_by VARCHAR(255),
    expires_at TIMESTAMP WITH TIME ZONE,
    revoked_at TIMESTAMP WITH TIME ZONE,
    last_used_at TIMESTAMP WITH TIME ZONE
);

CREATE INDEX api_keys_created_idx ON api_keys (created_at DESC, id DESC);

-- Down Migration
DROP TABLE api_keys;
