package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// ---- skills ----

func (s *sqlStore) CreateSkill(ctx context.Context, sk Skill) error {
	if sk.Name == "" {
		return errors.New("store: create skill: empty name")
	}
	if err := checkStrings("skill", sk.ID, sk.Name, sk.Description); err != nil {
		return fmt.Errorf("store: create skill: %w", err)
	}
	if err := checkStrings("toolset", sk.Toolsets...); err != nil {
		return fmt.Errorf("store: create skill: %w", err)
	}
	updated := sk.UpdatedAt
	if updated.IsZero() {
		updated = sk.CreatedAt
	}
	err := s.inTx(ctx, func(t txn) error {
		if _, err := t.exec(ctx, `INSERT INTO skills (id, workspace_id, name, description, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?)`,
			sk.ID, sk.WorkspaceID, sk.Name, sk.Description, nanos(sk.CreatedAt), nanos(updated)); err != nil {
			return err
		}
		for _, ts := range sk.Toolsets {
			if ts == "" {
				return errors.New("empty toolset id")
			}
			if _, err := t.exec(ctx, `INSERT INTO skill_toolsets (skill_id, toolset, attached_at) VALUES (?, ?, ?)
				ON CONFLICT (skill_id, toolset) DO NOTHING`, sk.ID, ts, nanos(sk.CreatedAt)); err != nil {
				return err
			}
		}
		return nil
	})
	return wrap("create skill", err)
}

const skillCols = `id, workspace_id, name, description, created_at, updated_at`

// reader is *sqlStore (reads) or txn.
type reader interface {
	queryRow(ctx context.Context, query string, args ...any) *sql.Row
	query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// getSkill reads one skill and its toolsets through q (the store or a
// transaction).
func getSkill(ctx context.Context, q reader, workspaceID, name string) (Skill, error) {
	var (
		sk               Skill
		created, updated int64
	)
	if err := q.queryRow(ctx, `SELECT `+skillCols+` FROM skills WHERE workspace_id = ? AND name = ?`, workspaceID, name).
		Scan(&sk.ID, &sk.WorkspaceID, &sk.Name, &sk.Description, &created, &updated); err != nil {
		return Skill{}, err
	}
	sk.CreatedAt, sk.UpdatedAt = fromNanos(created), fromNanos(updated)
	rows, err := q.query(ctx, `SELECT toolset FROM skill_toolsets WHERE skill_id = ? ORDER BY toolset`, sk.ID)
	if err != nil {
		return Skill{}, err
	}
	defer rows.Close()
	for rows.Next() {
		var ts string
		if err := rows.Scan(&ts); err != nil {
			return Skill{}, err
		}
		sk.Toolsets = append(sk.Toolsets, ts)
	}
	return sk, rows.Err()
}

func (s *sqlStore) GetSkill(ctx context.Context, workspaceID, name string) (Skill, error) {
	sk, err := getSkill(ctx, s, workspaceID, name)
	return sk, wrap("get skill", err)
}

func (s *sqlStore) ListSkills(ctx context.Context, workspaceID string) ([]Skill, error) {
	rows, err := s.query(ctx, `SELECT s.id, s.workspace_id, s.name, s.description, s.created_at, s.updated_at, t.toolset
		FROM skills s LEFT JOIN skill_toolsets t ON t.skill_id = s.id
		WHERE s.workspace_id = ? ORDER BY s.name, t.toolset`, workspaceID)
	if err != nil {
		return nil, wrap("list skills", err)
	}
	defer rows.Close()
	var out []Skill
	for rows.Next() {
		var (
			sk               Skill
			created, updated int64
			toolset          *string
		)
		if err := rows.Scan(&sk.ID, &sk.WorkspaceID, &sk.Name, &sk.Description, &created, &updated, &toolset); err != nil {
			return nil, wrap("list skills", err)
		}
		if n := len(out); n == 0 || out[n-1].ID != sk.ID {
			sk.CreatedAt, sk.UpdatedAt = fromNanos(created), fromNanos(updated)
			out = append(out, sk)
		}
		if toolset != nil {
			last := &out[len(out)-1]
			last.Toolsets = append(last.Toolsets, *toolset)
		}
	}
	return out, wrap("list skills", rows.Err())
}

// changeToolset attaches or detaches a toolset in one transaction and
// returns the skill as it is after the change.
func (s *sqlStore) changeToolset(ctx context.Context, op, workspaceID, name, toolset string, now time.Time, attach bool) (Skill, error) {
	if toolset == "" {
		return Skill{}, fmt.Errorf("store: %s: empty toolset id", op)
	}
	if err := checkStrings("toolset", toolset); err != nil {
		return Skill{}, fmt.Errorf("store: %s: %w", op, err)
	}
	var sk Skill
	err := s.inTx(ctx, func(t txn) error {
		var id string
		// Lock the skill: a concurrent delete either finishes first (then
		// ErrNotFound) or waits for this change.
		if err := t.queryRow(ctx, `SELECT id FROM skills WHERE workspace_id = ? AND name = ?`+t.d.forUpdate,
			workspaceID, name).Scan(&id); err != nil {
			return err
		}
		var err error
		if attach {
			_, err = t.exec(ctx, `INSERT INTO skill_toolsets (skill_id, toolset, attached_at) VALUES (?, ?, ?)
				ON CONFLICT (skill_id, toolset) DO NOTHING`, id, toolset, nanos(now))
		} else {
			_, err = t.exec(ctx, `DELETE FROM skill_toolsets WHERE skill_id = ? AND toolset = ?`, id, toolset)
		}
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `UPDATE skills SET updated_at = ? WHERE id = ?`, nanos(now), id); err != nil {
			return err
		}
		sk, err = getSkill(ctx, t, workspaceID, name)
		return err
	})
	return sk, wrap(op, err)
}

func (s *sqlStore) AttachToolset(ctx context.Context, workspaceID, skill, toolset string, now time.Time) (Skill, error) {
	return s.changeToolset(ctx, "attach toolset", workspaceID, skill, toolset, now, true)
}

func (s *sqlStore) DetachToolset(ctx context.Context, workspaceID, skill, toolset string, now time.Time) (Skill, error) {
	return s.changeToolset(ctx, "detach toolset", workspaceID, skill, toolset, now, false)
}

func (s *sqlStore) DeleteSkill(ctx context.Context, workspaceID, name string) error {
	res, err := s.exec(ctx, `DELETE FROM skills WHERE workspace_id = ? AND name = ?`, workspaceID, name)
	if err == nil {
		err = mustAffect(res)
	}
	return wrap("delete skill", err)
}

// ---- tool-call audit ----

const toolCallCols = `id, workspace_id, skill, token_id, user_id, tool, arguments, outcome, error, duration_ns, called_at`

func (s *sqlStore) InsertToolCall(ctx context.Context, c ToolCall) error {
	if c.Tool == "" || c.Outcome == "" {
		return errors.New("store: insert tool call: empty tool or outcome")
	}
	args := c.Arguments
	if args == "" {
		args = "{}"
	}
	if err := checkStrings("tool call", c.ID, c.Skill, c.TokenID, c.UserID, c.Tool, args, c.Outcome, c.Error); err != nil {
		return fmt.Errorf("store: insert tool call: %w", err)
	}
	_, err := s.exec(ctx, `INSERT INTO tool_calls (`+toolCallCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.ID, c.WorkspaceID, c.Skill, c.TokenID, c.UserID, c.Tool, args, c.Outcome, c.Error,
		int64(c.Duration), nanos(c.CalledAt))
	return wrap("insert tool call", err)
}

func (s *sqlStore) ListToolCalls(ctx context.Context, workspaceID string, f ToolCallFilter) ([]ToolCall, error) {
	var (
		where = []string{"workspace_id = ?"}
		args  = []any{workspaceID}
	)
	if f.Skill != "" {
		where = append(where, "skill = ?")
		args = append(args, f.Skill)
	}
	if f.Tool != "" {
		where = append(where, "tool = ?")
		args = append(args, f.Tool)
	}
	if !f.BeforeCalledAt.IsZero() || f.BeforeID != "" {
		where = append(where, "(called_at, id) < (?, ?)")
		args = append(args, nanos(f.BeforeCalledAt), f.BeforeID)
	}
	limit := f.Limit
	switch {
	case limit <= 0:
		limit = DefaultToolCallLimit
	case limit > MaxToolCallLimit:
		limit = MaxToolCallLimit
	}
	args = append(args, limit)
	rows, err := s.query(ctx, `SELECT `+toolCallCols+` FROM tool_calls WHERE `+strings.Join(where, " AND ")+`
		ORDER BY called_at DESC, id DESC LIMIT ?`, args...)
	if err != nil {
		return nil, wrap("list tool calls", err)
	}
	defer rows.Close()
	var out []ToolCall
	for rows.Next() {
		var (
			c             ToolCall
			dur, calledAt int64
		)
		if err := rows.Scan(&c.ID, &c.WorkspaceID, &c.Skill, &c.TokenID, &c.UserID, &c.Tool, &c.Arguments,
			&c.Outcome, &c.Error, &dur, &calledAt); err != nil {
			return nil, wrap("list tool calls", err)
		}
		c.Duration, c.CalledAt = time.Duration(dur), fromNanos(calledAt)
		out = append(out, c)
	}
	return out, wrap("list tool calls", rows.Err())
}

// checkStrings refuses text PostgreSQL cannot store (invalid UTF-8, NUL), on
// both engines alike (see checkText).
func checkStrings(what string, vs ...string) error {
	for _, v := range vs {
		if !utf8.ValidString(v) || strings.IndexByte(v, 0) >= 0 {
			return fmt.Errorf("%s: text is not valid UTF-8 (or holds a NUL)", what)
		}
	}
	return nil
}
