package store

import (
	"context"
	"time"
)

// User is a local Clarion account: a person who signs in to the web UI. A
// user belongs to one Clarion workspace. PasswordHash is an encoded
// argon2id hash (package auth); the store never sees a password.
type User struct {
	ID          string
	WorkspaceID string
	// Email is the sign-in name, unique across Clarion. Callers normalise
	// it (trimmed, lower case) before storing or looking it up.
	Email        string
	PasswordHash string
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// Session is a signed-in browser. Only the SHA-256 hash of the cookie's
// random token is stored, so a copy of the database cannot be replayed as a
// session.
type Session struct {
	ID     string
	Hash   []byte
	UserID string
	// CSRFToken is the session's anti-forgery token, sent back in every
	// form the session posts.
	CSRFToken string
	CreatedAt time.Time
	ExpiresAt time.Time

	// Read from the user by LookupSession; ignored by CreateSession.
	WorkspaceID string
	Email       string
}

// UserStore holds local Clarion accounts and browser sessions (the web UI).
type UserStore interface {
	// CreateUser stores a new account. ErrConflict on a duplicate id or
	// email, ErrNotFound if the workspace does not exist.
	CreateUser(ctx context.Context, u User) error
	// GetUser returns a user by id.
	GetUser(ctx context.Context, id string) (User, error)
	// GetUserByEmail returns the user with exactly this (normalised) email.
	GetUserByEmail(ctx context.Context, email string) (User, error)
	// SetUserPassword replaces the user's password hash and, in the same
	// transaction, deletes every session of the user: a new password signs
	// the account out everywhere. ErrNotFound if no such user.
	SetUserPassword(ctx context.Context, userID, passwordHash string, now time.Time) error

	// CreateSession stores a session. ErrConflict on a duplicate id or
	// hash, ErrNotFound if the user does not exist.
	CreateSession(ctx context.Context, s Session) error
	// LookupSession finds a live session by the hash of its token, with
	// the user's workspace and email. An unknown session, or one that has
	// expired (ExpiresAt <= now), is ErrNotFound.
	LookupSession(ctx context.Context, hash []byte, now time.Time) (Session, error)
	// DeleteSession removes a session (sign-out). ErrNotFound if none.
	DeleteSession(ctx context.Context, hash []byte) error
	// DeleteExpiredSessions removes every session with ExpiresAt <= now and
	// returns how many it removed.
	DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error)
}
