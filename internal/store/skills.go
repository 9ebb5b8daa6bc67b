package store

import (
	"context"
	"time"
)

// Skill is a named set of agent toolsets in one Clarion workspace. Agents
// call the tools of the toolsets attached to a skill (package tools); the
// store keeps the toolset ids as given and does not know what they hold.
type Skill struct {
	ID          string
	WorkspaceID string
	// Name is the skill's handle in URLs (/mcp/skills/{name}), unique in
	// the workspace; callers validate and normalise it.
	Name        string
	Description string
	// Toolsets are the attached toolset ids, sorted; nil when none.
	Toolsets  []string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// ToolCall is the audit record of one agent tool call. Arguments arrive
// already redacted (package tools): the store keeps them as given.
type ToolCall struct {
	ID          string
	WorkspaceID string
	Skill       string // the skill's name as the caller gave it (kept when the skill is deleted)
	TokenID     string // the API token that made the call, if any
	UserID      string // the signed-in person who made the call, if any
	Tool        string
	Arguments   string // JSON text, redacted
	Outcome     string // "ok" or a stable error code
	Error       string // the sentence given to the caller, for failures
	Duration    time.Duration
	CalledAt    time.Time
}

// ToolCallFilter selects audit records for ListToolCalls. Results are newest
// first (CalledAt desc, ID desc); Before* is the keyset cursor of the next
// page: pass the CalledAt and ID of the last record of the previous page.
// Limit defaults to DefaultToolCallLimit and is capped at MaxToolCallLimit.
type ToolCallFilter struct {
	Skill          string
	Tool           string
	BeforeCalledAt time.Time
	BeforeID       string
	Limit          int
}

// ListToolCalls page sizes.
const (
	DefaultToolCallLimit = 50
	MaxToolCallLimit     = 500
)

// SkillStore holds skills (named sets of toolsets per workspace) and the
// audit record of every agent tool call.
type SkillStore interface {
	// CreateSkill stores a new skill with its toolsets. ErrConflict on a
	// duplicate id or a duplicate name in the workspace; ErrNotFound if the
	// workspace does not exist.
	CreateSkill(ctx context.Context, s Skill) error
	// GetSkill returns the skill of the workspace with this name.
	GetSkill(ctx context.Context, workspaceID, name string) (Skill, error)
	// ListSkills lists the skills of a workspace by name.
	ListSkills(ctx context.Context, workspaceID string) ([]Skill, error)
	// AttachToolset adds a toolset to a skill (attaching an attached toolset
	// changes nothing) and returns the skill as it is then. ErrNotFound if
	// the workspace has no such skill.
	AttachToolset(ctx context.Context, workspaceID, skill, toolset string, now time.Time) (Skill, error)
	// DetachToolset removes a toolset from a skill (detaching a toolset that
	// is not attached changes nothing) and returns the skill as it is then.
	// ErrNotFound if the workspace has no such skill.
	DetachToolset(ctx context.Context, workspaceID, skill, toolset string, now time.Time) (Skill, error)
	// DeleteSkill removes a skill and its toolsets; its audit records stay.
	// ErrNotFound if the workspace has no such skill.
	DeleteSkill(ctx context.Context, workspaceID, name string) error

	// InsertToolCall appends an audit record. ErrConflict on a duplicate
	// id, ErrNotFound if the workspace does not exist.
	InsertToolCall(ctx context.Context, c ToolCall) error
	// ListToolCalls lists a workspace's audit records, newest first.
	ListToolCalls(ctx context.Context, workspaceID string, f ToolCallFilter) ([]ToolCall, error)
}
