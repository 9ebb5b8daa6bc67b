package tools

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/clarion/sentinel/internal/connection"
	"github.com/clarion/sentinel/internal/sentinel"
	"github.com/clarion/sentinel/internal/store"
)

// Tokens gives access tokens of a Clarion workspace's Sentinel connection
// (*connection.Service).
type Tokens interface {
	AccessToken(ctx context.Context, workspaceID, resource string) (connection.Token, error)
}

// Upstream calls Microsoft's MCP tools (*sentinel.Client).
type Upstream interface {
	CallTool(ctx context.Context, tok sentinel.Token, server, tool string, args map[string]any) (*sentinel.ToolResult, error)
}

// Service runs agent tool calls and manages skills. Its zero values are
// filled by New; Store, Tokens and Upstream are required.
type Service struct {
	Store    store.Store
	Tokens   Tokens
	Upstream Upstream
	Logger   *slog.Logger
	// Now stamps skills and audit records (default time.Now).
	Now func() time.Time
	// Limits cap answers (DefaultLimits for zero fields).
	Limits Limits
	// CallTimeout bounds one call to Microsoft (default 2 minutes, the
	// MCP streaming limit of MICROSOFT.md §3).
	CallTimeout time.Duration

	auditOnce sync.Once
	auditW    *auditWriter
	servers   skillServers
}

// auditor starts the audit writer at first use: Service is built as a
// struct literal, and its zero value must work.
func (s *Service) auditor() *auditWriter {
	s.auditOnce.Do(func() { s.auditW = newAuditWriter(s.Store, s.log()) })
	return s.auditW
}

// Close writes the audit records still queued and stops the audit writer.
// Calls made after Close write their records before they return. Call it
// after the HTTP server has shut down and before the store closes. It is
// idempotent.
func (s *Service) Close() error {
	s.auditor().close()
	return nil
}

// DefaultCallTimeout bounds one call to Microsoft.
const DefaultCallTimeout = 2 * time.Minute

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now().UTC()
	}
	return s.Now().UTC()
}

func (s *Service) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// Caller is who makes a call: a Clarion workspace, through one of its API
// tokens or a signed-in person.
type Caller struct {
	WorkspaceID string
	TokenID     string
	UserID      string
}

// ---- skills ----

var skillNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// NormalizeSkillName lower-cases and trims a skill name and checks it:
// 1-64 of a-z, 0-9, - and _, starting with a letter or digit.
func NormalizeSkillName(name string) (string, *Error) {
	n := strings.ToLower(strings.TrimSpace(name))
	if !skillNameRE.MatchString(n) {
		return "", invalid("name", "A skill name is 1 to 64 characters of a-z, 0-9, - and _, starting with a letter or digit (it is part of the skill's URL), e.g. triage.")
	}
	return n, nil
}

func skillNotFound(name string) *Error {
	return &Error{Code: CodeSkillNotFound, Message: fmt.Sprintf("This workspace has no skill named %q. List skills with GET /api/v1/skills.", clip(name, 64))}
}

func unknownToolset(id string) *Error {
	ids := make([]string, len(Toolsets))
	for i, ts := range Toolsets {
		ids[i] = ts.ID
	}
	return &Error{Code: CodeUnknownToolset, Field: "toolset", Message: fmt.Sprintf("There is no toolset %q. Toolsets: %s.", clip(id, 64), strings.Join(ids, ", "))}
}

// storeError turns a store error into an *Error (nil for nil); errors it
// does not know are internal.
func (s *Service) storeError(what, name string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, store.ErrNotFound):
		return skillNotFound(name)
	case errors.Is(err, store.ErrConflict):
		return &Error{Code: CodeSkillExists, Field: "name", Message: fmt.Sprintf("A skill named %q already exists in this workspace.", name)}
	}
	return fmt.Errorf("tools: %s: %w", what, err)
}

// ListSkills lists a workspace's skills by name.
func (s *Service) ListSkills(ctx context.Context, workspaceID string) ([]store.Skill, error) {
	sk, err := s.Store.ListSkills(ctx, workspaceID)
	if err != nil {
		return nil, fmt.Errorf("tools: list skills: %w", err)
	}
	return sk, nil
}

// GetSkill returns a skill of the workspace.
func (s *Service) GetSkill(ctx context.Context, workspaceID, name string) (store.Skill, error) {
	n, verr := NormalizeSkillName(name)
	if verr != nil {
		return store.Skill{}, skillNotFound(name)
	}
	sk, err := s.Store.GetSkill(ctx, workspaceID, n)
	if errors.Is(err, store.ErrNotFound) {
		s.servers.forget(workspaceID, n) // deleted, perhaps by another replica
	}
	return sk, s.storeError("get skill", n, err)
}

// CreateSkill creates a skill with the given toolsets attached.
func (s *Service) CreateSkill(ctx context.Context, workspaceID, name, description string, toolsets []string) (store.Skill, error) {
	n, verr := NormalizeSkillName(name)
	if verr != nil {
		return store.Skill{}, verr
	}
	description = strings.TrimSpace(description)
	if len([]rune(description)) > 1000 {
		return store.Skill{}, invalid("description", "The description is longer than 1000 characters.")
	}
	var ids []string
	for _, id := range toolsets {
		if _, ok := ToolsetByID(id); !ok {
			return store.Skill{}, unknownToolset(id)
		}
		if !slices.Contains(ids, id) {
			ids = append(ids, id)
		}
	}
	now := s.now()
	sk := store.Skill{ID: store.NewID(), WorkspaceID: workspaceID, Name: n, Description: description, Toolsets: ids, CreatedAt: now, UpdatedAt: now}
	if err := s.Store.CreateSkill(ctx, sk); err != nil {
		return store.Skill{}, s.storeError("create skill", n, err)
	}
	return s.GetSkill(ctx, workspaceID, n)
}

// AttachToolset attaches a toolset to a skill (idempotent).
func (s *Service) AttachToolset(ctx context.Context, workspaceID, name, toolset string) (store.Skill, error) {
	return s.changeToolset(ctx, workspaceID, name, toolset, true)
}

// DetachToolset detaches a toolset from a skill (idempotent). Its tools are
// gone from the skill's next tools/list, and calls to them are refused.
func (s *Service) DetachToolset(ctx context.Context, workspaceID, name, toolset string) (store.Skill, error) {
	return s.changeToolset(ctx, workspaceID, name, toolset, false)
}

func (s *Service) changeToolset(ctx context.Context, workspaceID, name, toolset string, attach bool) (store.Skill, error) {
	n, verr := NormalizeSkillName(name)
	if verr != nil {
		return store.Skill{}, skillNotFound(name)
	}
	if _, ok := ToolsetByID(toolset); !ok {
		return store.Skill{}, unknownToolset(toolset)
	}
	var (
		sk  store.Skill
		err error
	)
	if attach {
		sk, err = s.Store.AttachToolset(ctx, workspaceID, n, toolset, s.now())
	} else {
		sk, err = s.Store.DetachToolset(ctx, workspaceID, n, toolset, s.now())
	}
	return sk, s.storeError("change toolset", n, err)
}

// DeleteSkill deletes a skill; its audit records stay.
func (s *Service) DeleteSkill(ctx context.Context, workspaceID, name string) error {
	n, verr := NormalizeSkillName(name)
	if verr != nil {
		return skillNotFound(name)
	}
	err := s.Store.DeleteSkill(ctx, workspaceID, n)
	if err == nil {
		s.servers.forget(workspaceID, n)
	}
	return s.storeError("delete skill", n, err)
}

// Audit lists a workspace's tool-call records, newest first. The records
// of calls this replica answered before are in it: it waits for them to be
// written.
func (s *Service) Audit(ctx context.Context, workspaceID string, f store.ToolCallFilter) ([]store.ToolCall, error) {
	if err := s.auditor().sync(ctx); err != nil {
		return nil, fmt.Errorf("tools: list audit: %w", err)
	}
	calls, err := s.Store.ListToolCalls(ctx, workspaceID, f)
	if err != nil {
		return nil, fmt.Errorf("tools: list audit: %w", err)
	}
	return calls, nil
}

// ---- calls ----

// Result is the outcome of one tool call: Result on success (Microsoft's
// JSON, capped, with Truncated set when it was), else Err.
type Result struct {
	Result    json.RawMessage
	Truncated bool
	Err       *Error
}

// Call runs one tool of a skill for a caller, and records it in the audit.
// It never calls Microsoft unless the skill belongs to the caller's
// workspace, has the tool's toolset attached, and the arguments passed
// their checks; it uses only the caller's workspace's connection.
func (s *Service) Call(ctx context.Context, c Caller, skill, tool string, args json.RawMessage) Result {
	return s.run(ctx, c, skill, nil, tool, args)
}

// callSkill is Call with the skill the request has read already (the MCP
// endpoint reads it to know which tools to offer), so that the store is
// not asked twice.
func (s *Service) callSkill(ctx context.Context, c Caller, sk store.Skill, tool string, args json.RawMessage) Result {
	return s.run(ctx, c, sk.Name, &sk, tool, args)
}

func (s *Service) run(ctx context.Context, c Caller, skill string, sk *store.Skill, tool string, args json.RawMessage) Result {
	started := time.Now()
	calledAt := s.now()
	res := s.call(ctx, c, skill, sk, tool, args)
	rec := store.ToolCall{
		ID: store.NewID(), WorkspaceID: c.WorkspaceID, Skill: cleanText(strings.ToLower(strings.TrimSpace(skill)), 128), TokenID: c.TokenID, UserID: c.UserID,
		Tool: cleanText(tool, 128), Arguments: RedactArguments(args), Outcome: CodeOK, Duration: time.Since(started), CalledAt: calledAt,
	}
	if res.Err != nil {
		rec.Outcome, rec.Error = res.Err.Code, RedactText(cleanText(res.Err.Message, 2000))
	}
	// Queued, not committed: the answer does not wait for the database. The
	// record is written even when the caller went away (auditWriter says
	// what a crash loses).
	s.auditor().add(rec)
	return res
}

// call runs the tool; sk is the skill when the caller has read it, else
// nil and call reads it.
func (s *Service) call(ctx context.Context, c Caller, skillName string, sk *store.Skill, toolName string, raw json.RawMessage) Result {
	fail := func(e *Error) Result { return Result{Err: e} }
	n, verr := NormalizeSkillName(skillName)
	if verr != nil {
		return fail(skillNotFound(skillName))
	}
	if sk == nil {
		got, err := s.Store.GetSkill(ctx, c.WorkspaceID, n)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return fail(skillNotFound(n))
			}
			return fail(s.internal("read skill", err))
		}
		sk = &got
	}
	// A skill read for another workspace never runs (it cannot happen
	// through the handlers, which read it with the caller's workspace).
	if sk.WorkspaceID != c.WorkspaceID || sk.Name != n {
		return fail(skillNotFound(n))
	}
	t, ok := ToolByName(toolName)
	if !ok {
		return fail(&Error{Code: CodeUnknownTool, Message: fmt.Sprintf("There is no tool named %q. The tools of skill %q: %s.", clip(toolName, 64), n, toolNames(*sk))})
	}
	if !slices.Contains(sk.Toolsets, t.Toolset) {
		ts, _ := ToolsetByID(t.Toolset)
		return fail(&Error{Code: CodeToolNotInSkill, Message: fmt.Sprintf("Skill %q does not have %s: its toolset %q (%s) is not attached. The tools of this skill: %s.", n, t.Name, ts.ID, ts.Name, toolNames(*sk))})
	}
	args, verr := t.validate(raw)
	if verr != nil {
		return fail(verr)
	}

	cctx, cancel := context.WithTimeout(ctx, s.callTimeout())
	defer cancel()
	tok, err := s.Tokens.AccessToken(cctx, c.WorkspaceID, t.Resource)
	if err != nil {
		if e := fromToken(t, err); e != nil {
			s.log().Info("tools: no access token", "workspace_id", c.WorkspaceID, "tool", t.Name, "code", e.Code, "err", err)
			return fail(e)
		}
		return fail(s.internal("access token", err))
	}
	res, err := s.Upstream.CallTool(cctx, sentinel.Token{Value: tok.Value, TenantID: tok.TenantID}, t.Server, t.Name, args)
	if err != nil {
		if ctx.Err() != nil {
			return fail(&Error{Code: CodeTimeout, Message: "The call was cancelled before Microsoft answered."})
		}
		if e := fromUpstream(t, args, err); e != nil {
			s.log().Info("tools: call failed", "workspace_id", c.WorkspaceID, "tenant_id", tok.TenantID, "tool", t.Name, "code", e.Code, "err", err)
			return fail(e)
		}
		return fail(s.internal("call "+t.Name, err))
	}
	data := res.JSON()
	if t.Name == "GetIncidentById" && isEmptyJSON(data) {
		return fail(notFound(t, args, ""))
	}
	capped, truncated := capResult(data, s.Limits)
	return Result{Result: capped, Truncated: truncated}
}

func (s *Service) callTimeout() time.Duration {
	if s.CallTimeout > 0 {
		return s.CallTimeout
	}
	return DefaultCallTimeout
}

func (s *Service) internal(what string, err error) *Error {
	s.log().Error("tools: "+what, "err", err)
	return &Error{Code: CodeInternal, Message: "Something went wrong on Clarion's side; the error was logged. Retry later."}
}

// cleanText makes a text fit for the audit record: valid UTF-8, no NUL, at
// most max characters.
func cleanText(s string, max int) string {
	return clip(strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", ""), max)
}

func isEmptyJSON(b json.RawMessage) bool {
	switch strings.TrimSpace(string(b)) {
	case "", "null", "{}", `""`:
		return true
	}
	return false
}

func toolNames(sk store.Skill) string {
	var names []string
	for _, t := range ToolsOf(sk.Toolsets) {
		names = append(names, t.Name)
	}
	if len(names) == 0 {
		return "none (attach a toolset: " + ToolsetTriage + " or " + ToolsetDataLake + ")"
	}
	return strings.Join(names, ", ")
}
