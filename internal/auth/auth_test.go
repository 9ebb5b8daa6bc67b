package auth_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/auth"
	"github.com/clarion/sentinel/internal/store"
	"github.com/clarion/sentinel/internal/store/storetest"
)

func setup(t *testing.T) (*auth.Service, store.Workspace, *time.Time) {
	t.Helper()
	st := storetest.SQLite(t)
	now := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	w := store.Workspace{ID: store.NewID(), Name: "SOC", CreatedAt: now}
	if err := st.CreateWorkspace(t.Context(), w); err != nil {
		t.Fatal(err)
	}
	return &auth.Service{Store: st, Now: func() time.Time { return now }, SessionTTL: time.Hour}, w, &now
}

func TestPasswordHashIsArgon2idAndSalted(t *testing.T) {
	t.Parallel()
	a, b := auth.HashPassword("correct horse battery"), auth.HashPassword("correct horse battery")
	if !strings.HasPrefix(a, "$argon2id$v=19$m=65536,t=3,p=4$") {
		t.Fatalf("hash %q is not an argon2id PHC string with the RFC 9106 parameters", a)
	}
	if a == b {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	for _, h := range []string{a, b} {
		if ok, err := auth.VerifyPassword(h, "correct horse battery"); !ok || err != nil {
			t.Fatalf("VerifyPassword(right) = %v, %v", ok, err)
		}
		if ok, err := auth.VerifyPassword(h, "correct horse batterY"); ok || err != nil {
			t.Fatalf("VerifyPassword(wrong) = %v, %v", ok, err)
		}
	}
}

func TestVerifyPasswordRefusesMalformedHashes(t *testing.T) {
	t.Parallel()
	good := auth.HashPassword("correct horse battery")
	parts := strings.Split(good, "$")
	tests := map[string]string{
		"empty":               "",
		"bcrypt":              "$2a$10$abcdefghijklmnopqrstuuJ5pAsc1MeCNEeUj1AjuG7uXxqL3t8mW",
		"argon2i":             strings.Replace(good, "argon2id", "argon2i", 1),
		"other version":       strings.Replace(good, "v=19", "v=16", 1),
		"huge memory":         strings.Join(append(append([]string{}, parts[:3]...), "m=4294967295,t=3,p=4", parts[4], parts[5]), "$"),
		"zero passes":         strings.Join(append(append([]string{}, parts[:3]...), "m=65536,t=0,p=4", parts[4], parts[5]), "$"),
		"salt not base64":     strings.Join(append(append([]string{}, parts[:4]...), "!!!", parts[5]), "$"),
		"key too short":       strings.Join(append(append([]string{}, parts[:5]...), "AAAA"), "$"),
		"missing a part":      strings.Join(parts[:5], "$"),
		"trailing separators": good + "$",
	}
	for name, h := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if ok, err := auth.VerifyPassword(h, "correct horse battery"); ok || !errors.Is(err, auth.ErrMalformedHash) {
				t.Fatalf("VerifyPassword = %v, %v; want false, ErrMalformedHash", ok, err)
			}
		})
	}
}

func TestCreateUserValidatesAndNormalises(t *testing.T) {
	t.Parallel()
	svc, w, _ := setup(t)
	ctx := t.Context()
	u, err := svc.CreateUser(ctx, w.ID, "  Analyst@SOC.Example ", "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "analyst@soc.example" || u.WorkspaceID != w.ID || strings.Contains(u.PasswordHash, "password") {
		t.Fatalf("user = %+v", u)
	}
	tests := []struct {
		name, email, password, field string
	}{
		{"empty email", "", "a long enough password", "email"},
		{"not an email", "analyst", "a long enough password", "email"},
		{"display name", "Ann <ann@soc.example>", "a long enough password", "email"},
		{"short password", "b@soc.example", "short", "password"},
		{"duplicate email", "ANALYST@soc.example", "a long enough password", "email"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.CreateUser(ctx, w.ID, tc.email, tc.password)
			var fe *auth.FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field {
				t.Fatalf("CreateUser = %v, want a FieldError on %s", err, tc.field)
			}
		})
	}
	if _, err := svc.CreateUser(ctx, "no-such-workspace", "c@soc.example", "a long enough password"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("CreateUser in a missing workspace = %v, want ErrNotFound", err)
	}
}

func TestLoginSessionLogout(t *testing.T) {
	t.Parallel()
	svc, w, now := setup(t)
	ctx := t.Context()
	if _, err := svc.CreateUser(ctx, w.ID, "analyst@soc.example", "a long enough password"); err != nil {
		t.Fatal(err)
	}

	for _, bad := range [][2]string{{"analyst@soc.example", "wrong password!!"}, {"nobody@soc.example", "a long enough password"}} {
		if _, _, err := svc.Login(ctx, bad[0], bad[1]); !errors.Is(err, auth.ErrInvalidCredentials) {
			t.Fatalf("Login(%q) = %v, want ErrInvalidCredentials", bad[0], err)
		}
	}

	tok, se, err := svc.Login(ctx, " ANALYST@soc.example", "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	if len(tok) < 43 || bytes.Contains(se.Hash, []byte(tok)) || se.CSRFToken == "" || se.CSRFToken == tok {
		t.Fatalf("token %q, session %+v", tok, se)
	}
	got, err := svc.Session(ctx, tok)
	if err != nil || got.WorkspaceID != w.ID || got.Email != "analyst@soc.example" || got.CSRFToken != se.CSRFToken {
		t.Fatalf("Session = %+v, %v", got, err)
	}
	// Two sign-ins are two sessions with their own CSRF tokens.
	tok2, se2, err := svc.Login(ctx, "analyst@soc.example", "a long enough password")
	if err != nil || tok2 == tok || se2.CSRFToken == se.CSRFToken {
		t.Fatalf("second login: %v (same token or csrf)", err)
	}

	if err := svc.Logout(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Session(ctx, tok); !errors.Is(err, auth.ErrNoSession) {
		t.Fatalf("Session after logout = %v, want ErrNoSession", err)
	}
	if err := svc.Logout(ctx, tok); err != nil {
		t.Fatalf("second logout: %v", err)
	}

	// Sessions expire after SessionTTL.
	*now = now.Add(time.Hour)
	if _, err := svc.Session(ctx, tok2); !errors.Is(err, auth.ErrNoSession) {
		t.Fatalf("Session after its TTL = %v, want ErrNoSession", err)
	}
}

func TestSetPasswordSignsOutEverywhere(t *testing.T) {
	t.Parallel()
	svc, w, _ := setup(t)
	ctx := t.Context()
	u, err := svc.CreateUser(ctx, w.ID, "analyst@soc.example", "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := svc.Login(ctx, u.Email, "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.SetPassword(ctx, u.ID, "another long password"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Session(ctx, tok); !errors.Is(err, auth.ErrNoSession) {
		t.Fatalf("old session = %v, want ErrNoSession", err)
	}
	if _, _, err := svc.Login(ctx, u.Email, "a long enough password"); !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("old password: %v", err)
	}
	if _, _, err := svc.Login(ctx, u.Email, "another long password"); err != nil {
		t.Fatalf("new password: %v", err)
	}
}

func TestNewPasswordIsRandomAndValid(t *testing.T) {
	t.Parallel()
	a, b := auth.NewPassword(), auth.NewPassword()
	if a == b || len(a) != 24 || auth.ValidatePassword(a) != nil {
		t.Fatalf("NewPassword = %q, %q", a, b)
	}
}
