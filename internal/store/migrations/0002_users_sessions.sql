-- 0002_users_sessions: local Clarion accounts and browser sessions (web UI).
--
-- Conventions as in 0001_init.sql: ids TEXT chosen by the caller, times
-- BIGINT UTC unix nanoseconds, {{bytes}} is BLOB (SQLite) or BYTEA (PostgreSQL).

-- A person who signs in to the web UI; one Clarion workspace per user.
-- email is the sign-in name, normalised (trimmed, lower case) by the caller.
-- password_hash is an encoded argon2id hash, never a password.
CREATE TABLE users (
    id            TEXT   PRIMARY KEY,
    workspace_id  TEXT   NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    email         TEXT   NOT NULL UNIQUE,
    password_hash TEXT   NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE INDEX users_workspace ON users (workspace_id);

-- A signed-in browser. Only the SHA-256 of the cookie's token is stored.
CREATE TABLE sessions (
    id         TEXT      PRIMARY KEY,
    hash       {{bytes}} NOT NULL UNIQUE,
    user_id    TEXT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf_token TEXT      NOT NULL,
    created_at BIGINT    NOT NULL,
    expires_at BIGINT    NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);
