package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/auth"
	"github.com/clarion/sentinel/internal/store"
)

// TestUserAdd: `clarion user add` creates a person who can sign in, with
// the password from stdin or CLARION_USER_PASSWORD, and refuses bad input.
func TestUserAdd(t *testing.T) {
	dir := t.TempDir()
	dsn := dir + "/clarion.db"
	if _, err := store.Migrate(t.Context(), dsn); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), dsn, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.CreateWorkspace(t.Context(), store.Workspace{ID: "ws-1", Name: "SOC", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	add := func(stdin string, args ...string) (string, error) {
		var out, errOut bytes.Buffer
		err := run(t.Context(), append([]string{"user", "add", "--data-dir", dir}, args...), strings.NewReader(stdin), &out, &errOut)
		return out.String(), err
	}

	out, err := add("a long enough password\n", "--workspace-id", "ws-1", "--email", "Admin@SOC.example")
	if err != nil || !strings.Contains(out, "admin@soc.example") {
		t.Fatalf("user add = %q, %v", out, err)
	}
	svc := &auth.Service{Store: st}
	if _, _, err := svc.Login(t.Context(), "admin@soc.example", "a long enough password"); err != nil {
		t.Fatalf("sign in with the password from stdin: %v", err)
	}

	t.Setenv("CLARION_USER_PASSWORD", "another long password")
	if _, err := add("", "--workspace-id", "ws-1", "--email", "second@soc.example"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.Login(t.Context(), "second@soc.example", "another long password"); err != nil {
		t.Fatalf("sign in with the password from CLARION_USER_PASSWORD: %v", err)
	}
	t.Setenv("CLARION_USER_PASSWORD", "")

	for _, tc := range []struct {
		name, stdin, want string
		args              []string
	}{
		{"short password", "short\n", "at least 12 characters", []string{"--workspace-id", "ws-1", "--email", "c@soc.example"}},
		{"no password", "", "no password", []string{"--workspace-id", "ws-1", "--email", "c@soc.example"}},
		{"taken email", "a long enough password\n", "already exists", []string{"--workspace-id", "ws-1", "--email", "admin@soc.example"}},
		{"unknown workspace", "a long enough password\n", `no workspace "nope"`, []string{"--workspace-id", "nope", "--email", "c@soc.example"}},
		{"missing flags", "a long enough password\n", "are required", []string{"--email", "c@soc.example"}},
	} {
		if _, err := add(tc.stdin, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.want)
		}
	}
}
