package store

import (
	"context"
	"errors"
	"time"
)

// ---- users ----

const userCols = `id, workspace_id, email, password_hash, created_at, updated_at`

func scanUser(row scanner) (User, error) {
	var (
		u                User
		created, updated int64
	)
	if err := row.Scan(&u.ID, &u.WorkspaceID, &u.Email, &u.PasswordHash, &created, &updated); err != nil {
		return User{}, err
	}
	u.CreatedAt, u.UpdatedAt = fromNanos(created), fromNanos(updated)
	return u, nil
}

func (s *sqlStore) CreateUser(ctx context.Context, u User) error {
	if u.Email == "" || u.PasswordHash == "" {
		return errors.New("store: create user: empty email or password hash")
	}
	updated := u.UpdatedAt
	if updated.IsZero() {
		updated = u.CreatedAt
	}
	_, err := s.exec(ctx, `INSERT INTO users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?)`,
		u.ID, u.WorkspaceID, u.Email, u.PasswordHash, nanos(u.CreatedAt), nanos(updated))
	return wrap("create user", err)
}

func (s *sqlStore) GetUser(ctx context.Context, id string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	return u, wrap("get user", err)
}

func (s *sqlStore) GetUserByEmail(ctx context.Context, email string) (User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userCols+` FROM users WHERE email = ?`, email))
	return u, wrap("get user by email", err)
}

func (s *sqlStore) SetUserPassword(ctx context.Context, userID, passwordHash string, now time.Time) error {
	if passwordHash == "" {
		return errors.New("store: set user password: empty hash")
	}
	err := s.inTx(ctx, func(t txn) error {
		res, err := t.exec(ctx, `UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?`,
			passwordHash, nanos(now), userID)
		if err != nil {
			return err
		}
		if err := mustAffect(res); err != nil {
			return err
		}
		_, err = t.exec(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
		return err
	})
	return wrap("set user password", err)
}

// ---- sessions ----

func (s *sqlStore) CreateSession(ctx context.Context, se Session) error {
	if len(se.Hash) == 0 || se.CSRFToken == "" {
		return errors.New("store: create session: empty hash or csrf token")
	}
	_, err := s.exec(ctx, `INSERT INTO sessions (id, hash, user_id, csrf_token, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`,
		se.ID, se.Hash, se.UserID, se.CSRFToken, nanos(se.CreatedAt), nanos(se.ExpiresAt))
	return wrap("create session", err)
}

func (s *sqlStore) LookupSession(ctx context.Context, hash []byte, now time.Time) (Session, error) {
	var (
		se               Session
		created, expires int64
	)
	err := s.queryRow(ctx, `SELECT s.id, s.hash, s.user_id, s.csrf_token, s.created_at, s.expires_at,
			u.workspace_id, u.email
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.hash = ? AND s.expires_at > ?`, bytesOrEmpty(hash), nanos(now)).
		Scan(&se.ID, &se.Hash, &se.UserID, &se.CSRFToken, &created, &expires, &se.WorkspaceID, &se.Email)
	if err != nil {
		return Session{}, wrap("lookup session", err)
	}
	se.CreatedAt, se.ExpiresAt = fromNanos(created), fromNanos(expires)
	return se, nil
}

func (s *sqlStore) DeleteSession(ctx context.Context, hash []byte) error {
	res, err := s.exec(ctx, `DELETE FROM sessions WHERE hash = ?`, bytesOrEmpty(hash))
	if err == nil {
		err = mustAffect(res)
	}
	return wrap("delete session", err)
}

func (s *sqlStore) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	res, err := s.exec(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, nanos(now))
	if err != nil {
		return 0, wrap("delete expired sessions", err)
	}
	n, err := res.RowsAffected()
	return int(n), wrap("delete expired sessions", err)
}
