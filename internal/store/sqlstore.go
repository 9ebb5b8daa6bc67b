package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// sqlStore implements Store over database/sql for both engines: one code
// path, the differences kept in a dialect.
type sqlStore struct {
	d   *dialect
	w   *sql.DB // writes and transactions (one connection on SQLite)
	r   *sql.DB // plain reads; the same pool as w on PostgreSQL
	log *slog.Logger

	// ws and rs keep w's and r's prepared statements on SQLite; nil (no
	// caching) on PostgreSQL, whose driver caches them itself.
	ws, rs *stmtCache

	closeOnce sync.Once
	closeErr  error
}

var _ Store = (*sqlStore)(nil)

func (s *sqlStore) Engine() string { return s.d.name }

// Close closes the cached statements, then the pools; later calls return
// the first result.
func (s *sqlStore) Close() error {
	s.closeOnce.Do(func() {
		errs := []error{s.rs.close(), s.ws.close()}
		if s.r != s.w {
			errs = append(errs, s.r.Close())
		}
		errs = append(errs, s.w.Close())
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("store: close: %w", err)
		}
	})
	return s.closeErr
}

func (s *sqlStore) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	query = s.d.q(query)
	if st := s.ws.get(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return s.w.ExecContext(ctx, query, args...)
}

func (s *sqlStore) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	query = s.d.q(query)
	if st := s.rs.get(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, query, args...)
}

func (s *sqlStore) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query = s.d.q(query)
	if st := s.rs.get(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.r.QueryContext(ctx, query, args...)
}

// writeQueryRow is queryRow on the writer pool, for UPDATE … RETURNING.
func (s *sqlStore) writeQueryRow(ctx context.Context, query string, args ...any) *sql.Row {
	query = s.d.q(query)
	if st := s.ws.get(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.w.QueryRowContext(ctx, query, args...)
}

// writeQuery is query on the writer pool, for UPDATE … RETURNING.
func (s *sqlStore) writeQuery(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query = s.d.q(query)
	if st := s.ws.get(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.w.QueryContext(ctx, query, args...)
}

// txn is a write transaction with the dialect's placeholders.
//
// A cached statement is bound to the transaction with tx.StmtContext, which
// reuses the statement already prepared on the transaction's connection.
// That statement is shared with the pool, so a transaction must not run a
// text again while rows of it are still open (none does: each closes its
// rows first).
type txn struct {
	tx    *sql.Tx
	d     *dialect
	stmts *stmtCache // the writer's; nil on PostgreSQL
}

func (t txn) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	query = t.d.q(query)
	if st := t.stmts.lookupInTx(query); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t txn) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	query = t.d.q(query)
	if st := t.stmts.lookupInTx(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

func (t txn) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query = t.d.q(query)
	if st := t.stmts.lookupInTx(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

// inTx runs fn in a write transaction and commits it if fn returns nil.
// On SQLite the transaction begins IMMEDIATE on the single writer
// connection, so write transactions run one at a time; on PostgreSQL it runs
// at READ COMMITTED and locks what it must with FOR UPDATE.
func (s *sqlStore) inTx(ctx context.Context, fn func(t txn) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err = fn(txn{tx: tx, d: s.d, stmts: s.ws}); err != nil {
		_ = tx.Rollback()
	} else {
		err = tx.Commit()
	}
	// Only now that the transaction has let go of the connection (see
	// lookupInTx); not deferred, as a panic in fn leaves it held.
	s.ws.prepareMissed(ctx)
	return err
}

// wrap adds the operation to err once, keeping the store's sentinel errors
// (and the driver error, for the log) in the chain.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("%w: %s", ErrNotFound, op)
	case err == ErrNotFound || err == ErrConflict || err == ErrLeaseLost || err == ErrStale:
		return fmt.Errorf("%w: %s", err, op)
	}
	if c := constraint(err); c != nil {
		return fmt.Errorf("%w: %s: %w", c, op, err)
	}
	return fmt.Errorf("store: %s: %w", op, err)
}

// rowsAffected returns ErrNotFound when res touched no row.
func mustAffect(res sql.Result) error {
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return ErrNotFound
	}
	return nil
}

// nanos stores t as UTC unix nanoseconds; the zero time is 0. Times must lie
// between the years 1678 and 2262.
func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// fromNanos is the inverse of nanos; it returns UTC times.
func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// encodeList stores a string list as JSON text ("[]" for none).
func encodeList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l) // a []string always marshals
	return string(b)
}

// decodeList reads encodeList's text; an empty list reads back as nil.
func decodeList(s string) ([]string, error) {
	if s == "" || s == "[]" {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("decode list: %w", err)
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

// bytesOrEmpty avoids binding a nil slice, which the drivers store as NULL.
func bytesOrEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// scanner is *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// ---- workspaces ----

func (s *sqlStore) CreateWorkspace(ctx context.Context, w Workspace) error {
	_, err := s.exec(ctx, `INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, ?)`,
		w.ID, w.Name, nanos(w.CreatedAt))
	return wrap("create workspace", err)
}

func (s *sqlStore) GetWorkspace(ctx context.Context, id string) (Workspace, error) {
	var (
		w       Workspace
		created int64
	)
	err := s.queryRow(ctx, `SELECT id, name, created_at FROM workspaces WHERE id = ?`, id).
		Scan(&w.ID, &w.Name, &created)
	if err != nil {
		return Workspace{}, wrap("get workspace", err)
	}
	w.CreatedAt = fromNanos(created)
	return w, nil
}

func (s *sqlStore) ListWorkspaces(ctx context.Context) ([]Workspace, error) {
	rows, err := s.query(ctx, `SELECT id, name, created_at FROM workspaces ORDER BY created_at, id`)
	if err != nil {
		return nil, wrap("list workspaces", err)
	}
	defer rows.Close()
	var out []Workspace
	for rows.Next() {
		var (
			w       Workspace
			created int64
		)
		if err := rows.Scan(&w.ID, &w.Name, &created); err != nil {
			return nil, wrap("list workspaces", err)
		}
		w.CreatedAt = fromNanos(created)
		out = append(out, w)
	}
	return out, wrap("list workspaces", rows.Err())
}

// ---- API tokens ----

func (s *sqlStore) CreateAPIToken(ctx context.Context, t APIToken) error {
	if len(t.Hash) == 0 {
		return errors.New("store: create api token: empty hash")
	}
	_, err := s.exec(ctx, `INSERT INTO api_tokens (id, workspace_id, name, hash, created_at, last_used_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
		t.ID, t.WorkspaceID, t.Name, t.Hash, nanos(t.CreatedAt), nanos(t.LastUsedAt))
	return wrap("create api token", err)
}

func (s *sqlStore) LookupAPIToken(ctx context.Context, hash []byte) (APIToken, error) {
	var (
		t               APIToken
		created, usedAt int64
	)
	err := s.queryRow(ctx, `SELECT id, workspace_id, name, hash, created_at, last_used_at
		FROM api_tokens WHERE hash = ?`, bytesOrEmpty(hash)).
		Scan(&t.ID, &t.WorkspaceID, &t.Name, &t.Hash, &created, &usedAt)
	if err != nil {
		return APIToken{}, wrap("lookup api token", err)
	}
	t.CreatedAt, t.LastUsedAt = fromNanos(created), fromNanos(usedAt)
	return t, nil
}

// ---- OAuth states ----

func (s *sqlStore) PutOAuthState(ctx context.Context, st OAuthState) error {
	_, err := s.exec(ctx, `INSERT INTO oauth_states
		(state, workspace_id, step, tenant_id, nonce, verifier_enc, return_to, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		st.State, st.WorkspaceID, st.Step, st.TenantID, st.Nonce, bytesOrEmpty(st.VerifierEnc),
		st.ReturnTo, nanos(st.CreatedAt), nanos(st.ExpiresAt))
	return wrap("put oauth state", err)
}

func (s *sqlStore) TakeOAuthState(ctx context.Context, state string, now time.Time) (OAuthState, error) {
	var st OAuthState
	err := s.inTx(ctx, func(t txn) error {
		var created, expires int64
		// DELETE … RETURNING: of two concurrent takes, one gets the row.
		err := t.queryRow(ctx, `DELETE FROM oauth_states WHERE state = ?
			RETURNING state, workspace_id, step, tenant_id, nonce, verifier_enc, return_to, created_at, expires_at`,
			state).Scan(&st.State, &st.WorkspaceID, &st.Step, &st.TenantID, &st.Nonce, &st.VerifierEnc,
			&st.ReturnTo, &created, &expires)
		if err != nil {
			return err
		}
		st.CreatedAt, st.ExpiresAt = fromNanos(created), fromNanos(expires)
		// Sweep the other expired states while we are here.
		_, err = t.exec(ctx, `DELETE FROM oauth_states WHERE expires_at <= ?`, nanos(now))
		return err
	})
	if err != nil {
		return OAuthState{}, wrap("take oauth state", err)
	}
	if !st.ExpiresAt.After(now) {
		return OAuthState{}, fmt.Errorf("%w: take oauth state: expired", ErrNotFound)
	}
	return st, nil
}

// ---- connections ----

const connectionCols = `workspace_id, tenant_id, account_oid, account_username, scopes,
	refresh_token_enc, state, state_code, state_reason, connected_at, updated_at, version`

func scanConnection(row scanner) (Connection, error) {
	var (
		c                  Connection
		scopes             string
		connected, updated int64
	)
	err := row.Scan(&c.WorkspaceID, &c.TenantID, &c.AccountOID, &c.AccountUsername, &scopes,
		&c.RefreshTokenEnc, &c.State, &c.StateCode, &c.StateReason, &connected, &updated, &c.Version)
	if err != nil {
		return Connection{}, err
	}
	if c.Scopes, err = decodeList(scopes); err != nil {
		return Connection{}, err
	}
	c.ConnectedAt, c.UpdatedAt = fromNanos(connected), fromNanos(updated)
	return c, nil
}

func (s *sqlStore) UpsertConnection(ctx context.Context, c Connection) error {
	updated := c.UpdatedAt
	if updated.IsZero() {
		updated = c.ConnectedAt
	}
	if c.State == "" {
		c.State = StateConnected
	}
	_, err := s.exec(ctx, `INSERT INTO connections (`+connectionCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
		ON CONFLICT (workspace_id) DO UPDATE SET
			tenant_id = excluded.tenant_id,
			account_oid = excluded.account_oid,
			account_username = excluded.account_username,
			scopes = excluded.scopes,
			refresh_token_enc = excluded.refresh_token_enc,
			state = excluded.state,
			state_code = excluded.state_code,
			state_reason = excluded.state_reason,
			connected_at = excluded.connected_at,
			updated_at = excluded.updated_at,
			version = connections.version + 1`,
		c.WorkspaceID, c.TenantID, c.AccountOID, c.AccountUsername, encodeList(c.Scopes),
		bytesOrEmpty(c.RefreshTokenEnc), c.State, c.StateCode, c.StateReason,
		nanos(c.ConnectedAt), nanos(updated))
	return wrap("upsert connection", err)
}

func (s *sqlStore) GetConnection(ctx context.Context, workspaceID string) (Connection, error) {
	c, err := scanConnection(s.queryRow(ctx,
		`SELECT `+connectionCols+` FROM connections WHERE workspace_id = ?`, workspaceID))
	return c, wrap("get connection", err)
}

func (s *sqlStore) SetConnectionState(ctx context.Context, workspaceID, state, code, reason string, now time.Time) error {
	res, err := s.exec(ctx, `UPDATE connections SET state = ?, state_code = ?, state_reason = ?, updated_at = ?
		WHERE workspace_id = ?`, state, code, reason, nanos(now), workspaceID)
	if err == nil {
		err = mustAffect(res)
	}
	return wrap("set connection state", err)
}

func (s *sqlStore) RotateRefreshToken(ctx context.Context, workspaceID string, version int64, enc []byte, now time.Time) error {
	err := s.inTx(ctx, func(t txn) error {
		res, err := t.exec(ctx, `UPDATE connections SET refresh_token_enc = ?, updated_at = ?, version = version + 1
			WHERE workspace_id = ? AND version = ?`, bytesOrEmpty(enc), nanos(now), workspaceID, version)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var one int
		if err := t.queryRow(ctx, `SELECT 1 FROM connections WHERE workspace_id = ?`, workspaceID).Scan(&one); err != nil {
			return err // sql.ErrNoRows → ErrNotFound
		}
		return ErrStale
	})
	return wrap("rotate refresh token", err)
}

func (s *sqlStore) DeleteConnection(ctx context.Context, workspaceID string) ([]string, error) {
	var ids []string
	err := s.inTx(ctx, func(t txn) error {
		// Lock the connection first, then the monitors: a CommitPage holding
		// a monitor's row lock finishes first; one that comes later finds no
		// monitor.
		var one int
		if err := t.queryRow(ctx, `SELECT 1 FROM connections WHERE workspace_id = ?`+t.d.forUpdate,
			workspaceID).Scan(&one); err != nil {
			return err
		}
		rows, err := t.query(ctx, `SELECT id FROM monitors WHERE workspace_id = ? ORDER BY id`+t.d.forUpdate,
			workspaceID)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				return err
			}
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		if _, err := t.exec(ctx, `DELETE FROM monitors WHERE workspace_id = ?`, workspaceID); err != nil {
			return err
		}
		_, err = t.exec(ctx, `DELETE FROM connections WHERE workspace_id = ?`, workspaceID)
		return err
	})
	if err != nil {
		return nil, wrap("delete connection", err)
	}
	return ids, nil
}
