-- 0001_init: workspaces, API tokens, OAuth states, connections, monitors, alerts.
--
-- Portable SQL run unchanged on SQLite and PostgreSQL, except {{bytes}},
-- which becomes BLOB (SQLite) or BYTEA (PostgreSQL). Conventions:
--   * ids are TEXT chosen by the caller (store.NewID);
--   * times are BIGINT UTC unix nanoseconds, 0 = unset;
--   * string lists and small structs are JSON TEXT;
--   * booleans are BOOLEAN (SQLite stores 0/1; write `WHERE enabled`, not `= 1`).

CREATE TABLE workspaces (
    id         TEXT   PRIMARY KEY,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- API tokens: only the SHA-256 of the token is stored.
CREATE TABLE api_tokens (
    id           TEXT      PRIMARY KEY,
    workspace_id TEXT      NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT      NOT NULL,
    hash         {{bytes}} NOT NULL UNIQUE,
    created_at   BIGINT    NOT NULL,
    last_used_at BIGINT    NOT NULL DEFAULT 0
);
CREATE INDEX api_tokens_workspace ON api_tokens (workspace_id);

-- One row per in-progress connect step, keyed by the OAuth `state`; single use.
CREATE TABLE oauth_states (
    state        TEXT      PRIMARY KEY,
    workspace_id TEXT      NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    step         TEXT      NOT NULL,
    tenant_id    TEXT      NOT NULL DEFAULT '',
    nonce        TEXT      NOT NULL DEFAULT '',
    verifier_enc {{bytes}} NOT NULL,
    return_to    TEXT      NOT NULL DEFAULT '',
    created_at   BIGINT    NOT NULL,
    expires_at   BIGINT    NOT NULL
);
CREATE INDEX oauth_states_expires ON oauth_states (expires_at);

-- The Sentinel connection of a Clarion workspace (at most one).
CREATE TABLE connections (
    workspace_id      TEXT      PRIMARY KEY REFERENCES workspaces (id) ON DELETE CASCADE,
    tenant_id         TEXT      NOT NULL,
    account_oid       TEXT      NOT NULL DEFAULT '',
    account_username  TEXT      NOT NULL DEFAULT '',
    scopes            TEXT      NOT NULL DEFAULT '[]',
    refresh_token_enc {{bytes}} NOT NULL,
    state             TEXT      NOT NULL,
    state_code        TEXT      NOT NULL DEFAULT '',
    state_reason      TEXT      NOT NULL DEFAULT '',
    connected_at      BIGINT    NOT NULL,
    updated_at        BIGINT    NOT NULL,
    version           BIGINT    NOT NULL
);

-- Monitors: configuration, progress (watermark + keyset cursor), schedule
-- and lease, and health. Deleted with the connection (by the store, in the
-- same transaction), not by a foreign key to connections.
CREATE TABLE monitors (
    id                      TEXT    PRIMARY KEY,
    workspace_id            TEXT    NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name                    TEXT    NOT NULL,
    source_kind             TEXT    NOT NULL,
    sentinel_workspace_id   TEXT    NOT NULL,
    sentinel_workspace_name TEXT    NOT NULL DEFAULT '',
    severities              TEXT    NOT NULL DEFAULT '[]',
    search                  TEXT    NOT NULL DEFAULT '',
    enabled                 BOOLEAN NOT NULL,
    created_at              BIGINT  NOT NULL,
    updated_at              BIGINT  NOT NULL,

    watermark   BIGINT NOT NULL DEFAULT 0,
    cursor_time BIGINT NOT NULL DEFAULT 0,
    cursor_name TEXT   NOT NULL DEFAULT '',

    next_poll_at BIGINT NOT NULL DEFAULT 0,
    lease_owner  TEXT   NOT NULL DEFAULT '',
    lease_until  BIGINT NOT NULL DEFAULT 0,

    health_status        TEXT   NOT NULL DEFAULT 'pending',
    last_poll_at         BIGINT NOT NULL DEFAULT 0,
    last_success_at      BIGINT NOT NULL DEFAULT 0,
    last_error_code      TEXT   NOT NULL DEFAULT '',
    last_error           TEXT   NOT NULL DEFAULT '',
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    last_counts          TEXT   NOT NULL DEFAULT '{}',

    UNIQUE (workspace_id, name)
);
CREATE INDEX monitors_lease_owner ON monitors (lease_owner);

-- Alerts outlive their monitor: no foreign key to monitors. The unique key
-- is the deduplication key (PRODUCT.md "Polling").
CREATE TABLE alerts (
    id                    TEXT   PRIMARY KEY,
    workspace_id          TEXT   NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    monitor_id            TEXT   NOT NULL DEFAULT '',
    monitor_name          TEXT   NOT NULL DEFAULT '',
    incident_id           TEXT   NOT NULL,
    incident_number       BIGINT NOT NULL DEFAULT 0,
    title                 TEXT   NOT NULL DEFAULT '',
    description           TEXT   NOT NULL DEFAULT '',
    severity              TEXT   NOT NULL,
    source_severity       TEXT   NOT NULL DEFAULT '',
    status                TEXT   NOT NULL DEFAULT '',
    deep_link             TEXT   NOT NULL DEFAULT '',
    sentinel_workspace_id TEXT   NOT NULL DEFAULT '',
    tenant_id             TEXT   NOT NULL DEFAULT '',
    incident_created_at   BIGINT NOT NULL DEFAULT 0,
    ingested_at           BIGINT NOT NULL,
    payload               TEXT   NOT NULL DEFAULT '',
    UNIQUE (workspace_id, incident_id)
);
CREATE INDEX alerts_newest ON alerts (workspace_id, ingested_at DESC, id DESC);
CREATE INDEX alerts_by_monitor ON alerts (workspace_id, monitor_id, ingested_at DESC, id DESC);
CREATE INDEX alerts_by_severity ON alerts (workspace_id, severity, ingested_at DESC, id DESC);
