// Package auth owns how people sign in to Clarion: local accounts with
// argon2id password hashes, and browser sessions whose random tokens are
// stored only as SHA-256 hashes, each with its own anti-forgery (CSRF)
// token. Persistence is package store's; the cookies and forms are package
// web's.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/clarion/sentinel/internal/store"
)

// Errors; test with errors.Is.
var (
	// ErrInvalidCredentials: unknown email or wrong password (the two are
	// not told apart, so that sign-in does not reveal who has an account).
	ErrInvalidCredentials = errors.New("auth: invalid email or password")
	// ErrNoSession: the session token is unknown, expired or signed out.
	ErrNoSession = errors.New("auth: no such session")
)

// FieldError is bad input in one named field ("email", "password").
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// Password rules. The minimum follows NIST SP 800-63B for accounts that
// guard a security tool; the maximum only bounds the work per sign-in.
const (
	MinPasswordLen = 12
	MaxPasswordLen = 1024
	maxEmailLen    = 254
)

// DefaultSessionTTL is how long a sign-in lasts: about a SOC shift.
const DefaultSessionTTL = 12 * time.Hour

// Service signs people in and out.
type Service struct {
	Store store.Store
	// Now is the clock (default time.Now).
	Now func() time.Time
	// SessionTTL is the absolute lifetime of a session (DefaultSessionTTL).
	SessionTTL time.Duration
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) ttl() time.Duration {
	if s.SessionTTL > 0 {
		return s.SessionTTL
	}
	return DefaultSessionTTL
}

// NormalizeEmail trims and lower-cases an email address: the form in which
// emails are stored and looked up.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }

// ValidateEmail checks a normalised email; the error is a *FieldError.
func ValidateEmail(email string) error {
	switch {
	case email == "":
		return &FieldError{"email", "Enter an email address."}
	case len(email) > maxEmailLen:
		return &FieldError{"email", fmt.Sprintf("The email address is longer than %d characters.", maxEmailLen)}
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || a.Name != "" {
		return &FieldError{"email", "Enter an email address such as analyst@example.com."}
	}
	return nil
}

// ValidatePassword checks a new password; the error is a *FieldError.
func ValidatePassword(password string) error {
	switch {
	case !utf8.ValidString(password):
		return &FieldError{"password", "The password is not valid text."}
	case utf8.RuneCountInString(password) < MinPasswordLen:
		return &FieldError{"password", fmt.Sprintf("The password must have at least %d characters.", MinPasswordLen)}
	case len(password) > MaxPasswordLen:
		return &FieldError{"password", fmt.Sprintf("The password is longer than %d bytes.", MaxPasswordLen)}
	}
	return nil
}

// CreateUser adds a local account to a Clarion workspace. Errors: a
// *FieldError for a bad email or password or an email already in use;
// store.ErrNotFound (wrapped) if the workspace does not exist.
func (s *Service) CreateUser(ctx context.Context, workspaceID, email, password string) (store.User, error) {
	email = NormalizeEmail(email)
	if err := errors.Join(ValidateEmail(email), ValidatePassword(password)); err != nil {
		return store.User{}, err
	}
	now := s.now()
	u := store.User{ID: store.NewID(), WorkspaceID: workspaceID, Email: email,
		PasswordHash: HashPassword(password), CreatedAt: now, UpdatedAt: now}
	if err := s.Store.CreateUser(ctx, u); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.User{}, &FieldError{"email", "An account with this email address already exists."}
		}
		return store.User{}, fmt.Errorf("auth: create user: %w", err)
	}
	return u, nil
}

// SetPassword replaces a user's password and signs the user out everywhere.
func (s *Service) SetPassword(ctx context.Context, userID, password string) error {
	if err := ValidatePassword(password); err != nil {
		return err
	}
	if err := s.Store.SetUserPassword(ctx, userID, HashPassword(password), s.now()); err != nil {
		return fmt.Errorf("auth: set password: %w", err)
	}
	return nil
}

// dummyHash is verified when the email is unknown, so that a sign-in takes
// as long whether or not the account exists.
// Computed on first use: hashing costs about as much as a sign-in.
var dummyHash = sync.OnceValue(func() string { return HashPassword("clarion: no such account") })

// Login checks an email and password and starts a session. It returns the
// session's token, which only the browser keeps (the store has its hash).
// Wrong email or password: ErrInvalidCredentials.
func (s *Service) Login(ctx context.Context, email, password string) (token string, _ store.Session, _ error) {
	email = NormalizeEmail(email)
	u, err := s.Store.GetUserByEmail(ctx, email)
	switch {
	case errors.Is(err, store.ErrNotFound):
		_, _ = VerifyPassword(dummyHash(), password)
		return "", store.Session{}, ErrInvalidCredentials
	case err != nil:
		return "", store.Session{}, fmt.Errorf("auth: login: %w", err)
	}
	ok, err := VerifyPassword(u.PasswordHash, password)
	if err != nil {
		return "", store.Session{}, fmt.Errorf("auth: login: user %s: %w", u.ID, err)
	}
	if !ok {
		return "", store.Session{}, ErrInvalidCredentials
	}
	now := s.now()
	// Sweep old sessions here: sign-ins are rare and this keeps the table small.
	if _, err := s.Store.DeleteExpiredSessions(ctx, now); err != nil {
		return "", store.Session{}, fmt.Errorf("auth: login: %w", err)
	}
	token = randomToken()
	se := store.Session{ID: store.NewID(), Hash: HashToken(token), UserID: u.ID, CSRFToken: randomToken(),
		CreatedAt: now, ExpiresAt: now.Add(s.ttl()), WorkspaceID: u.WorkspaceID, Email: u.Email}
	if err := s.Store.CreateSession(ctx, se); err != nil {
		return "", store.Session{}, fmt.Errorf("auth: login: %w", err)
	}
	return token, se, nil
}

// Session returns the live session of a token; ErrNoSession if there is
// none (unknown, expired, signed out).
func (s *Service) Session(ctx context.Context, token string) (store.Session, error) {
	if token == "" {
		return store.Session{}, ErrNoSession
	}
	se, err := s.Store.LookupSession(ctx, HashToken(token), s.now())
	if errors.Is(err, store.ErrNotFound) {
		return store.Session{}, ErrNoSession
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("auth: session: %w", err)
	}
	return se, nil
}

// Logout ends the session of a token. Ending a session that is already
// gone is not an error.
func (s *Service) Logout(ctx context.Context, token string) error {
	if token == "" {
		return nil
	}
	if err := s.Store.DeleteSession(ctx, HashToken(token)); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("auth: logout: %w", err)
	}
	return nil
}

// HashToken is how session tokens are stored: SHA-256 of the token text.
// The token has 256 random bits, so a fast hash is enough.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// randomToken returns 256 random bits, URL-safe.
func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewPassword returns a random password of 24 characters (144 bits), for
// generated accounts such as the demo's admin.
func NewPassword() string {
	b := make([]byte, 18)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
