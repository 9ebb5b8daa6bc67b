package storetest

import (
	"bytes"
	"crypto/sha256"
	"sync"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/store"
)

// The UserStore part of the contract: local accounts and browser sessions.

func newUser(t *testing.T, s store.Store, workspaceID string) store.User {
	t.Helper()
	u := store.User{
		ID:           store.NewID(),
		WorkspaceID:  workspaceID,
		Email:        "analyst-" + store.NewID() + "@soc.example",
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA",
		CreatedAt:    t0,
		UpdatedAt:    t0,
	}
	must(t, s.CreateUser(t.Context(), u))
	return u
}

func sessionHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

func newSession(t *testing.T, s store.Store, u store.User, token string, expires time.Time) store.Session {
	t.Helper()
	se := store.Session{
		ID:        store.NewID(),
		Hash:      sessionHash(token),
		UserID:    u.ID,
		CSRFToken: "csrf-" + token,
		CreatedAt: t0,
		ExpiresAt: expires,
	}
	must(t, s.CreateSession(t.Context(), se))
	return se
}

func testUserRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	u := newUser(t, s, w.ID)

	got, err := s.GetUser(ctx, u.ID)
	must(t, err)
	equal(t, "GetUser", got, u)
	got, err = s.GetUserByEmail(ctx, u.Email)
	must(t, err)
	equal(t, "GetUserByEmail", got, u)

	_, err = s.GetUser(ctx, "no-such-user")
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetUserByEmail(ctx, "nobody@soc.example")
	wantErr(t, err, store.ErrNotFound)

	// A zero UpdatedAt is CreatedAt.
	v := store.User{ID: store.NewID(), WorkspaceID: w.ID, Email: "second@soc.example", PasswordHash: "h", CreatedAt: t0}
	must(t, s.CreateUser(ctx, v))
	got, err = s.GetUser(ctx, v.ID)
	must(t, err)
	if !got.UpdatedAt.Equal(t0) {
		t.Fatalf("UpdatedAt = %v, want CreatedAt %v", got.UpdatedAt, t0)
	}
}

func testUserConflicts(t *testing.T, s store.Store) {
	ctx := t.Context()
	w, other := newWorkspace(t, s), newWorkspace(t, s)
	u := newUser(t, s, w.ID)

	dupEmail := u
	dupEmail.ID = store.NewID()
	dupEmail.WorkspaceID = other.ID // emails are unique across Clarion, not per workspace
	wantErr(t, s.CreateUser(ctx, dupEmail), store.ErrConflict)

	dupID := u
	dupID.Email = "other@soc.example"
	wantErr(t, s.CreateUser(ctx, dupID), store.ErrConflict)

	noWorkspace := store.User{ID: store.NewID(), WorkspaceID: "no-such-workspace", Email: "x@soc.example", PasswordHash: "h", CreatedAt: t0}
	wantErr(t, s.CreateUser(ctx, noWorkspace), store.ErrNotFound)

	if err := s.CreateUser(ctx, store.User{ID: store.NewID(), WorkspaceID: w.ID, Email: "y@soc.example", CreatedAt: t0}); err == nil {
		t.Fatal("CreateUser accepted an empty password hash")
	}
}

func testSessionLifecycle(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	u := newUser(t, s, w.ID)
	se := newSession(t, s, u, "token-a", t0.Add(time.Hour))

	got, err := s.LookupSession(ctx, sessionHash("token-a"), t0)
	must(t, err)
	want := se
	want.WorkspaceID, want.Email = w.ID, u.Email
	equal(t, "LookupSession", got, want)

	_, err = s.LookupSession(ctx, sessionHash("token-b"), t0)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.LookupSession(ctx, nil, t0)
	wantErr(t, err, store.ErrNotFound)

	// Expiry: alive strictly before ExpiresAt.
	_, err = s.LookupSession(ctx, sessionHash("token-a"), t0.Add(time.Hour-time.Nanosecond))
	must(t, err)
	_, err = s.LookupSession(ctx, sessionHash("token-a"), t0.Add(time.Hour))
	wantErr(t, err, store.ErrNotFound)

	must(t, s.DeleteSession(ctx, sessionHash("token-a")))
	_, err = s.LookupSession(ctx, sessionHash("token-a"), t0)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteSession(ctx, sessionHash("token-a")), store.ErrNotFound)
}

func testSessionConflicts(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	u := newUser(t, s, w.ID)
	se := newSession(t, s, u, "token-a", t0.Add(time.Hour))

	dupHash := se
	dupHash.ID = store.NewID()
	wantErr(t, s.CreateSession(ctx, dupHash), store.ErrConflict)
	dupID := se
	dupID.Hash = sessionHash("token-b")
	wantErr(t, s.CreateSession(ctx, dupID), store.ErrConflict)

	noUser := store.Session{ID: store.NewID(), Hash: sessionHash("token-c"), UserID: "no-such-user", CSRFToken: "c", CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	wantErr(t, s.CreateSession(ctx, noUser), store.ErrNotFound)
}

func testDeleteExpiredSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	u := newUser(t, s, w.ID)
	newSession(t, s, u, "old-1", t0.Add(time.Minute))
	newSession(t, s, u, "old-2", t0.Add(2*time.Minute))
	newSession(t, s, u, "live", t0.Add(time.Hour))

	n, err := s.DeleteExpiredSessions(ctx, t0.Add(2*time.Minute))
	must(t, err)
	if n != 2 {
		t.Fatalf("DeleteExpiredSessions removed %d, want 2", n)
	}
	// The expired ones are gone even for a clock that is behind.
	_, err = s.LookupSession(ctx, sessionHash("old-1"), t0)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.LookupSession(ctx, sessionHash("live"), t0)
	must(t, err)
	if n, err := s.DeleteExpiredSessions(ctx, t0.Add(2*time.Minute)); err != nil || n != 0 {
		t.Fatalf("second sweep = %d, %v; want 0, nil", n, err)
	}
}

func testSetUserPasswordEndsSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	u, v := newUser(t, s, w.ID), newUser(t, s, w.ID)
	newSession(t, s, u, "u-1", t0.Add(time.Hour))
	newSession(t, s, u, "u-2", t0.Add(time.Hour))
	newSession(t, s, v, "v-1", t0.Add(time.Hour))

	later := t0.Add(time.Minute)
	must(t, s.SetUserPassword(ctx, u.ID, "new-hash", later))
	got, err := s.GetUser(ctx, u.ID)
	must(t, err)
	if got.PasswordHash != "new-hash" || !got.UpdatedAt.Equal(later) || !got.CreatedAt.Equal(t0) {
		t.Fatalf("after SetUserPassword: %+v", got)
	}
	for _, tok := range []string{"u-1", "u-2"} {
		_, err := s.LookupSession(ctx, sessionHash(tok), t0)
		wantErr(t, err, store.ErrNotFound)
	}
	// Another user's session is untouched.
	_, err = s.LookupSession(ctx, sessionHash("v-1"), t0)
	must(t, err)

	wantErr(t, s.SetUserPassword(ctx, "no-such-user", "h", later), store.ErrNotFound)
}

// testSessionsOfWorkspaces: a session carries its own user's workspace.
func testSessionsOfWorkspaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	w1, w2 := newWorkspace(t, s), newWorkspace(t, s)
	u1, u2 := newUser(t, s, w1.ID), newUser(t, s, w2.ID)
	newSession(t, s, u1, "w1", t0.Add(time.Hour))
	newSession(t, s, u2, "w2", t0.Add(time.Hour))
	// Each session names its own user's workspace: the web UI scopes every
	// request by it.
	for tok, want := range map[string]string{"w1": w1.ID, "w2": w2.ID} {
		got, err := s.LookupSession(ctx, sessionHash(tok), t0)
		must(t, err)
		if got.WorkspaceID != want {
			t.Fatalf("session %s: workspace %s, want %s", tok, got.WorkspaceID, want)
		}
	}
}

// testConcurrentSessions: many sign-ins at once (several browsers, several
// replicas) each get their own session.
func testConcurrentSessions(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	u := newUser(t, s, w.ID)
	const n = 16
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			tok := "tok-" + string(rune('a'+i))
			errs <- s.CreateSession(t.Context(), store.Session{ID: store.NewID(), Hash: sessionHash(tok), UserID: u.ID,
				CSRFToken: tok, CreatedAt: t0, ExpiresAt: t0.Add(time.Hour)})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		must(t, err)
	}
	for i := range n {
		tok := "tok-" + string(rune('a'+i))
		got, err := s.LookupSession(t.Context(), sessionHash(tok), t0)
		must(t, err)
		if got.CSRFToken != tok || !bytes.Equal(got.Hash, sessionHash(tok)) {
			t.Fatalf("session %s: %+v", tok, got)
		}
	}
}
