-- 0003_skills_audit: skills (named sets of agent toolsets) and the audit
-- record of every agent tool call.
--
-- Conventions as in 0001_init.sql: ids TEXT chosen by the caller, times
-- BIGINT UTC unix nanoseconds.

-- A skill of a Clarion workspace; its name is its handle in URLs.
CREATE TABLE skills (
    id           TEXT   PRIMARY KEY,
    workspace_id TEXT   NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name         TEXT   NOT NULL,
    description  TEXT   NOT NULL DEFAULT '',
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    UNIQUE (workspace_id, name)
);

-- The toolsets attached to a skill: one row each, so that attach and detach
-- are single idempotent statements.
CREATE TABLE skill_toolsets (
    skill_id    TEXT   NOT NULL REFERENCES skills (id) ON DELETE CASCADE,
    toolset     TEXT   NOT NULL,
    attached_at BIGINT NOT NULL,
    PRIMARY KEY (skill_id, toolset)
);

-- One row per agent tool call. The skill is kept by name, so that the
-- record outlives the skill. arguments is JSON text, redacted by the caller.
CREATE TABLE tool_calls (
    id           TEXT   PRIMARY KEY,
    workspace_id TEXT   NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    skill        TEXT   NOT NULL DEFAULT '',
    token_id     TEXT   NOT NULL DEFAULT '',
    user_id      TEXT   NOT NULL DEFAULT '',
    tool         TEXT   NOT NULL,
    arguments    TEXT   NOT NULL DEFAULT '{}',
    outcome      TEXT   NOT NULL,
    error        TEXT   NOT NULL DEFAULT '',
    duration_ns  BIGINT NOT NULL DEFAULT 0,
    called_at    BIGINT NOT NULL
);
CREATE INDEX tool_calls_newest ON tool_calls (workspace_id, called_at DESC, id DESC);
