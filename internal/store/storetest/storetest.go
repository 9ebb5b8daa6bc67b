package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/store"
)

// t0 has Sentinel's 100 ns precision: it must round-trip exactly.
var t0 = time.Date(2024, 6, 21, 1, 6, 41, 743333300, time.UTC)

// Run runs the conformance suite. open must return a fresh, empty, migrated
// store for the test it is given and close it when that test ends; it is
// called once per subtest, and subtests run in parallel.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Engine", testEngine},
		{"Workspaces", testWorkspaces},
		{"APITokens", testAPITokens},
		{"OAuthStateSingleUse", testOAuthStateSingleUse},
		{"OAuthStateExpiry", testOAuthStateExpiry},
		{"OAuthStateConcurrentTake", testOAuthStateConcurrentTake},
		{"ConnectionUpsertAndReconnect", testConnectionUpsert},
		{"SetConnectionState", testSetConnectionState},
		{"RotateRefreshToken", testRotateRefreshToken},
		{"RotateRefreshTokenConcurrent", testRotateRefreshTokenConcurrent},
		{"DeleteConnection", testDeleteConnection},
		{"MonitorRoundTrip", testMonitorRoundTrip},
		{"MonitorConflicts", testMonitorConflicts},
		{"MonitorUnknownWorkspace", testMonitorUnknownWorkspace},
		{"UpdateMonitorKeepsProgressAndHealth", testUpdateMonitorKeepsProgress},
		{"DeleteMonitorKeepsAlerts", testDeleteMonitorKeepsAlerts},
		{"ListEnabledMonitors", testListEnabledMonitors},
		{"WorkspaceIsolation", testWorkspaceIsolation},
		{"ClaimPoll", testClaimPoll},
		{"ClaimPollExclusive", testClaimPollExclusive},
		{"ClaimFeed", testClaimFeed},
		{"ClaimFeedExclusive", testClaimFeedExclusive},
		{"CommitPage", testCommitPage},
		{"CommitPageRejectsForeignAlerts", testCommitPageForeignAlerts},
		{"CommitPageRejectsBadText", testCommitPageBadText},
		{"LeaseLost", testLeaseLost},
		{"CommitPageConcurrentDedup", testCommitPageConcurrentDedup},
		{"DedupIsPerWorkspace", testDedupPerWorkspace},
		{"CommitPageRacesDeleteConnection", testCommitRacesDisconnect},
		{"FinishPoll", testFinishPoll},
		{"ReleaseLeases", testReleaseLeases},
		{"RenewLease", testRenewLease},
		{"ClaimRefresh", testClaimRefresh},
		{"ClaimRefreshExclusive", testClaimRefreshExclusive},
		{"CommitPageLongPages", testCommitPageLongPages},
		{"PollSoon", testPollSoon},
		{"AlertRoundTrip", testAlertRoundTrip},
		{"PayloadByteExact", testPayloadByteExact},
		{"TimeRoundTrip", testTimeRoundTrip},
		{"ListAlertsOrderAndPaging", testListAlertsPaging},
		{"ListAlertsLimit", testListAlertsLimit},
		{"ListAlertsFilters", testListAlertsFilters},
		{"KnownIncidents", testKnownIncidents},
		{"UserRoundTrip", testUserRoundTrip},
		{"UserConflicts", testUserConflicts},
		{"SessionLifecycle", testSessionLifecycle},
		{"SessionConflicts", testSessionConflicts},
		{"DeleteExpiredSessions", testDeleteExpiredSessions},
		{"SetUserPasswordEndsSessions", testSetUserPasswordEndsSessions},
		{"SessionsOfWorkspaces", testSessionsOfWorkspaces},
		{"ConcurrentSessions", testConcurrentSessions},
		{"SkillRoundTrip", testSkillRoundTrip},
		{"SkillConflicts", testSkillConflicts},
		{"AttachDetachToolsets", testAttachDetachToolsets},
		{"AttachToolsetsConcurrent", testAttachToolsetsConcurrent},
		{"DeleteSkill", testDeleteSkill},
		{"ToolCallRoundTrip", testToolCallRoundTrip},
		{"ToolCallsOrderPagingFilters", testToolCallsOrderPagingFilters},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// ---- helpers ----

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want %v", err, target)
	}
}

func equal[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func newWorkspace(t *testing.T, s store.Store) store.Workspace {
	t.Helper()
	w := store.Workspace{ID: store.NewID(), Name: "SOC " + store.NewID()[:8], CreatedAt: t0}
	must(t, s.CreateWorkspace(t.Context(), w))
	return w
}

func newConnection(t *testing.T, s store.Store, workspaceID string) store.Connection {
	t.Helper()
	c := store.Connection{
		WorkspaceID:     workspaceID,
		TenantID:        "72f988bf-86f1-41af-91ab-2d7cd011db47",
		AccountOID:      "00000000-0000-0000-0000-00000000a11c",
		AccountUsername: "admin@contoso.example",
		Scopes:          []string{"offline_access", "openid"},
		RefreshTokenEnc: []byte{1, 2, 3, 0, 255},
		State:           store.StateConnected,
		ConnectedAt:     t0,
		UpdatedAt:       t0,
	}
	must(t, s.UpsertConnection(t.Context(), c))
	c.Version = 1
	return c
}

// newMonitor creates an enabled monitor, due at once.
func newMonitor(t *testing.T, s store.Store, workspaceID string, edit ...func(*store.Monitor)) store.Monitor {
	t.Helper()
	m := store.Monitor{
		ID:                  store.NewID(),
		WorkspaceID:         workspaceID,
		Name:                "monitor " + store.NewID(),
		SourceKind:          store.SourceSIEM,
		SentinelWorkspaceID: "8c2b1a3e-0000-4000-8000-000000000001",
		Enabled:             true,
		CreatedAt:           t0,
		UpdatedAt:           t0,
	}
	for _, e := range edit {
		e(&m)
	}
	must(t, s.CreateMonitor(t.Context(), m))
	return m
}

func getMonitor(t *testing.T, s store.Store, m store.Monitor) store.Monitor {
	t.Helper()
	got, err := s.GetMonitor(t.Context(), m.WorkspaceID, m.ID)
	must(t, err)
	return got
}

// claim takes m's lease for owner at t0 for a minute, or fails the test.
func claim(t *testing.T, s store.Store, monitorID, owner string) store.Monitor {
	t.Helper()
	m, ok, err := s.ClaimPoll(t.Context(), monitorID, owner, t0, t0.Add(time.Minute))
	must(t, err)
	if !ok {
		t.Fatalf("ClaimPoll(%s, %s): not claimed", monitorID, owner)
	}
	return m
}

// newAlert is an alert for incident of monitor m, with a fresh id.
func newAlert(m store.Monitor, incident string) store.Alert {
	return store.Alert{
		ID:                  store.NewID(),
		WorkspaceID:         m.WorkspaceID,
		MonitorID:           m.ID,
		MonitorName:         m.Name,
		IncidentID:          incident,
		IncidentNumber:      42,
		Title:               "Suspicious sign-in " + incident,
		Severity:            "high",
		SourceSeverity:      "High",
		Status:              "New",
		SentinelWorkspaceID: m.SentinelWorkspaceID,
		IncidentCreatedAt:   t0,
		IngestedAt:          t0.Add(time.Minute),
		Payload:             json.RawMessage(`{"IncidentName":"` + incident + `"}`),
	}
}

func alertsFor(m store.Monitor, incidents ...string) []store.Alert {
	out := make([]store.Alert, len(incidents))
	for i, inc := range incidents {
		out[i] = newAlert(m, inc)
	}
	return out
}

func incidents(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", prefix, i)
	}
	return out
}

// allAlerts pages through every alert of the workspace.
func allAlerts(t *testing.T, s store.Store, workspaceID string, f store.AlertFilter) []store.Alert {
	t.Helper()
	var out []store.Alert
	for {
		page, err := s.ListAlerts(t.Context(), workspaceID, f)
		must(t, err)
		out = append(out, page...)
		if len(page) == 0 {
			return out
		}
		last := page[len(page)-1]
		f.BeforeIngestedAt, f.BeforeID = last.IngestedAt, last.ID
	}
}

func incidentIDs(alerts []store.Alert) []string {
	out := make([]string, len(alerts))
	for i, a := range alerts {
		out[i] = a.IncidentID
	}
	slices.Sort(out)
	return out
}

// ---- tests ----

func testEngine(t *testing.T, s store.Store) {
	if e := s.Engine(); e != "sqlite" && e != "postgres" {
		t.Fatalf("Engine() = %q", e)
	}
}

func testWorkspaces(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := store.Workspace{ID: store.NewID(), Name: "Contoso SOC", CreatedAt: t0}
	b := store.Workspace{ID: store.NewID(), Name: "Fabrikam SOC", CreatedAt: t0.Add(time.Second)}
	must(t, s.CreateWorkspace(ctx, a))
	must(t, s.CreateWorkspace(ctx, b))

	got, err := s.GetWorkspace(ctx, a.ID)
	must(t, err)
	equal(t, "GetWorkspace", got, a)

	list, err := s.ListWorkspaces(ctx)
	must(t, err)
	equal(t, "ListWorkspaces", list, []store.Workspace{a, b})

	wantErr(t, s.CreateWorkspace(ctx, store.Workspace{ID: a.ID, Name: "again", CreatedAt: t0}), store.ErrConflict)
	_, err = s.GetWorkspace(ctx, "missing")
	wantErr(t, err, store.ErrNotFound)
}

func testAPITokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	tok := store.APIToken{
		ID: store.NewID(), WorkspaceID: w.ID, Name: "triage agent",
		Hash: bytes.Repeat([]byte{0xab, 0x00}, 16), CreatedAt: t0,
	}
	must(t, s.CreateAPIToken(ctx, tok))

	got, err := s.LookupAPIToken(ctx, tok.Hash)
	must(t, err)
	equal(t, "LookupAPIToken", got, tok)

	tests := []struct {
		name string
		tok  store.APIToken
		want error
	}{
		{"duplicate hash", store.APIToken{ID: store.NewID(), WorkspaceID: w.ID, Name: "x", Hash: tok.Hash, CreatedAt: t0}, store.ErrConflict},
		{"duplicate id", store.APIToken{ID: tok.ID, WorkspaceID: w.ID, Name: "x", Hash: []byte{9}, CreatedAt: t0}, store.ErrConflict},
		{"unknown workspace", store.APIToken{ID: store.NewID(), WorkspaceID: "missing", Name: "x", Hash: []byte{8}, CreatedAt: t0}, store.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantErr(t, s.CreateAPIToken(ctx, tc.tok), tc.want)
		})
	}
	_, err = s.LookupAPIToken(ctx, []byte("no such hash"))
	wantErr(t, err, store.ErrNotFound)
}

func newOAuthState(t *testing.T, s store.Store, workspaceID string, expires time.Time) store.OAuthState {
	t.Helper()
	st := store.OAuthState{
		State:       store.NewID(),
		WorkspaceID: workspaceID,
		Step:        "signin",
		TenantID:    "72f988bf-86f1-41af-91ab-2d7cd011db47",
		Nonce:       "n-0S6_WzA2Mj",
		VerifierEnc: []byte{0, 1, 2, 250},
		ReturnTo:    "/integrations/sentinel",
		CreatedAt:   t0,
		ExpiresAt:   expires,
	}
	must(t, s.PutOAuthState(t.Context(), st))
	return st
}

func testOAuthStateSingleUse(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	st := newOAuthState(t, s, w.ID, t0.Add(10*time.Minute))
	wantErr(t, s.PutOAuthState(ctx, st), store.ErrConflict)

	got, err := s.TakeOAuthState(ctx, st.State, t0)
	must(t, err)
	equal(t, "TakeOAuthState", got, st)

	_, err = s.TakeOAuthState(ctx, st.State, t0)
	wantErr(t, err, store.ErrNotFound)
}

func testOAuthStateExpiry(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	tests := []struct {
		name    string
		expires time.Time
		want    error
	}{
		{"expired", t0.Add(-time.Nanosecond), store.ErrNotFound},
		{"expires now", t0, store.ErrNotFound},
		{"still valid", t0.Add(100 * time.Nanosecond), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := newOAuthState(t, s, w.ID, tc.expires)
			_, err := s.TakeOAuthState(t.Context(), st.State, t0)
			if tc.want == nil {
				must(t, err)
			} else {
				wantErr(t, err, tc.want)
			}
			// Whatever happened, the state is gone: even an earlier clock
			// cannot take it again.
			_, err = s.TakeOAuthState(t.Context(), st.State, t0.Add(-time.Hour))
			wantErr(t, err, store.ErrNotFound)
		})
	}
}

func testOAuthStateConcurrentTake(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	st := newOAuthState(t, s, w.ID, t0.Add(time.Minute))
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		wins int
	)
	for range 8 {
		wg.Go(func() {
			_, err := s.TakeOAuthState(t.Context(), st.State, t0)
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("TakeOAuthState: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d takes succeeded, want exactly 1", wins)
	}
}

func testConnectionUpsert(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	c := newConnection(t, s, w.ID)
	got, err := s.GetConnection(ctx, w.ID)
	must(t, err)
	equal(t, "GetConnection", got, c)

	m := newMonitor(t, s, w.ID)
	must(t, s.SetConnectionState(ctx, w.ID, store.StateReconnectRequired, "refresh_token_expired", "Sign in again.", t0.Add(time.Minute)))

	// Reconnect: the credential and state are replaced, monitors stay.
	re := c
	re.AccountUsername = "other-admin@contoso.example"
	re.Scopes = []string{"openid"}
	re.RefreshTokenEnc = []byte("new ciphertext")
	re.State, re.StateCode, re.StateReason = store.StateConnected, "", ""
	re.ConnectedAt, re.UpdatedAt = t0.Add(time.Hour), t0.Add(time.Hour)
	must(t, s.UpsertConnection(ctx, re))
	got, err = s.GetConnection(ctx, w.ID)
	must(t, err)
	re.Version = 2
	equal(t, "GetConnection after reconnect", got, re)

	if _, err := s.GetMonitor(ctx, w.ID, m.ID); err != nil {
		t.Fatalf("monitor lost on reconnect: %v", err)
	}
	_, err = s.GetConnection(ctx, "missing")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.UpsertConnection(ctx, store.Connection{WorkspaceID: "missing", TenantID: "t", State: store.StateConnected, RefreshTokenEnc: []byte{1}}), store.ErrNotFound)
}

func testSetConnectionState(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	c := newConnection(t, s, w.ID)
	now := t0.Add(time.Minute)
	must(t, s.SetConnectionState(ctx, w.ID, store.StateDegraded, "mcp_not_provisioned", "Defender tools are unavailable.", now))

	got, err := s.GetConnection(ctx, w.ID)
	must(t, err)
	want := c
	want.State, want.StateCode, want.StateReason, want.UpdatedAt = store.StateDegraded, "mcp_not_provisioned", "Defender tools are unavailable.", now
	equal(t, "connection after SetConnectionState", got, want)

	wantErr(t, s.SetConnectionState(ctx, "missing", store.StateConnected, "", "", now), store.ErrNotFound)
}

func testRotateRefreshToken(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	newConnection(t, s, w.ID)
	now := t0.Add(time.Minute)
	tests := []struct {
		name      string
		workspace string
		version   int64
		token     string
		want      error
		wantToken string
		wantVer   int64
	}{
		{"current version", w.ID, 1, "rt-2", nil, "rt-2", 2},
		{"stale version", w.ID, 1, "rt-stale", store.ErrStale, "rt-2", 2},
		{"next current version", w.ID, 2, "rt-3", nil, "rt-3", 3},
		{"future version", w.ID, 9, "rt-future", store.ErrStale, "rt-3", 3},
		{"no connection", "missing", 1, "rt-x", store.ErrNotFound, "rt-3", 3},
	}
	for _, tc := range tests { // sequential: each case builds on the last
		err := s.RotateRefreshToken(t.Context(), tc.workspace, tc.version, []byte(tc.token), now)
		if tc.want == nil {
			must(t, err)
		} else {
			wantErr(t, err, tc.want)
		}
		got, err := s.GetConnection(t.Context(), w.ID)
		must(t, err)
		if string(got.RefreshTokenEnc) != tc.wantToken || got.Version != tc.wantVer {
			t.Fatalf("%s: token %q version %d, want %q %d", tc.name, got.RefreshTokenEnc, got.Version, tc.wantToken, tc.wantVer)
		}
	}
	got, err := s.GetConnection(t.Context(), w.ID)
	must(t, err)
	if !got.UpdatedAt.Equal(now) || got.State != store.StateConnected {
		t.Fatalf("after rotation: updated %v state %q", got.UpdatedAt, got.State)
	}
}

func testRotateRefreshTokenConcurrent(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	newConnection(t, s, w.ID)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		winner string
		wins   int
	)
	for i := range 8 {
		wg.Go(func() {
			tok := fmt.Sprintf("rotated-%d", i)
			err := s.RotateRefreshToken(t.Context(), w.ID, 1, []byte(tok), t0)
			switch {
			case err == nil:
				mu.Lock()
				wins++
				winner = tok
				mu.Unlock()
			case !errors.Is(err, store.ErrStale):
				t.Errorf("RotateRefreshToken: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d rotations succeeded, want exactly 1", wins)
	}
	got, err := s.GetConnection(t.Context(), w.ID)
	must(t, err)
	if string(got.RefreshTokenEnc) != winner || got.Version != 2 {
		t.Fatalf("token %q version %d, want %q 2", got.RefreshTokenEnc, got.Version, winner)
	}
}

func testDeleteConnection(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := newWorkspace(t, s), newWorkspace(t, s)
	newConnection(t, s, a.ID)
	cb := newConnection(t, s, b.ID)
	m1, m2 := newMonitor(t, s, a.ID), newMonitor(t, s, a.ID)
	mb := newMonitor(t, s, b.ID)
	claim(t, s, m1.ID, "poller")
	_, err := s.CommitPage(ctx, m1.ID, "poller", alertsFor(m1, "G-1", "G-2"), store.Progress{Watermark: t0})
	must(t, err)
	claim(t, s, mb.ID, "poller")
	_, err = s.CommitPage(ctx, mb.ID, "poller", alertsFor(mb, "G-1"), store.Progress{Watermark: t0})
	must(t, err)

	removed, err := s.DeleteConnection(ctx, a.ID)
	must(t, err)
	want := []string{m1.ID, m2.ID}
	slices.Sort(want)
	slices.Sort(removed)
	equal(t, "removed monitors", removed, want)

	_, err = s.GetConnection(ctx, a.ID)
	wantErr(t, err, store.ErrNotFound)
	ms, err := s.ListMonitors(ctx, a.ID)
	must(t, err)
	if len(ms) != 0 {
		t.Fatalf("monitors left after disconnect: %+v", ms)
	}
	if got := incidentIDs(allAlerts(t, s, a.ID, store.AlertFilter{})); !slices.Equal(got, []string{"G-1", "G-2"}) {
		t.Fatalf("alerts after disconnect: %v, want G-1 G-2 kept", got)
	}

	// Workspace B is untouched.
	gotB, err := s.GetConnection(ctx, b.ID)
	must(t, err)
	equal(t, "other workspace's connection", gotB, cb)
	if _, err := s.GetMonitor(ctx, b.ID, mb.ID); err != nil {
		t.Fatalf("other workspace's monitor: %v", err)
	}
	if n := len(allAlerts(t, s, b.ID, store.AlertFilter{})); n != 1 {
		t.Fatalf("other workspace has %d alerts, want 1", n)
	}

	_, err = s.DeleteConnection(ctx, a.ID)
	wantErr(t, err, store.ErrNotFound)
}

func testMonitorRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	m := newMonitor(t, s, w.ID, func(m *store.Monitor) {
		m.SourceKind = store.SourceDataLake
		m.SentinelWorkspaceName = "sentinel-prod"
		m.Severities = []string{"critical", "high"}
		m.Search = "O'Brien"
		m.NextPollAt = t0.Add(30 * time.Second)
		m.UpdatedAt = t0.Add(time.Second)
	})
	want := m
	want.Health.Status = store.HealthPending
	equal(t, "GetMonitor", getMonitor(t, s, m), want)

	m2 := newMonitor(t, s, w.ID, func(m *store.Monitor) { m.Enabled = false; m.CreatedAt = t0.Add(time.Hour) })
	want2 := m2
	want2.Health.Status = store.HealthPending
	list, err := s.ListMonitors(ctx, w.ID)
	must(t, err)
	equal(t, "ListMonitors", list, []store.Monitor{want, want2})

	_, err = s.GetMonitor(ctx, w.ID, "missing")
	wantErr(t, err, store.ErrNotFound)
}

func testMonitorConflicts(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := newWorkspace(t, s), newWorkspace(t, s)
	m := newMonitor(t, s, a.ID, func(m *store.Monitor) { m.Name = "Prod high" })
	other := newMonitor(t, s, a.ID, func(m *store.Monitor) { m.Name = "Dev" })

	tests := []struct {
		name string
		m    store.Monitor
		want error
	}{
		{"same name same workspace", store.Monitor{ID: store.NewID(), WorkspaceID: a.ID, Name: "Prod high", SourceKind: store.SourceSIEM, CreatedAt: t0}, store.ErrConflict},
		{"same id", store.Monitor{ID: m.ID, WorkspaceID: a.ID, Name: "another", SourceKind: store.SourceSIEM, CreatedAt: t0}, store.ErrConflict},
		{"same name other workspace", store.Monitor{ID: store.NewID(), WorkspaceID: b.ID, Name: "Prod high", SourceKind: store.SourceSIEM, CreatedAt: t0}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.CreateMonitor(ctx, tc.m)
			if tc.want == nil {
				must(t, err)
			} else {
				wantErr(t, err, tc.want)
			}
		})
	}

	rename := other
	rename.Name = "Prod high"
	wantErr(t, s.UpdateMonitor(ctx, rename), store.ErrConflict)
	equal(t, "monitor after refused rename", getMonitor(t, s, other).Name, "Dev")
}

func testMonitorUnknownWorkspace(t *testing.T, s store.Store) {
	err := s.CreateMonitor(t.Context(), store.Monitor{ID: store.NewID(), WorkspaceID: "missing", Name: "x", SourceKind: store.SourceSIEM, CreatedAt: t0})
	wantErr(t, err, store.ErrNotFound)
}

func testUpdateMonitorKeepsProgress(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	m := newMonitor(t, s, w.ID)
	claim(t, s, m.ID, "poller")
	_, err := s.CommitPage(ctx, m.ID, "poller", alertsFor(m, "G-1"),
		store.Progress{Watermark: t0.Add(time.Second), CursorTime: t0.Add(2 * time.Second), CursorName: "G-1"})
	must(t, err)
	h := store.Health{Status: store.HealthHealthy, LastPollAt: t0, LastSuccessAt: t0, Counts: store.PollCounts{Returned: 1, Ingested: 1}}
	must(t, s.FinishPoll(ctx, m.ID, "poller", h, t0))
	claim(t, s, m.ID, "poller") // holds the lease during the update
	before := getMonitor(t, s, m)

	upd := m
	upd.Name = "renamed"
	upd.SourceKind = store.SourceDataLake
	upd.SentinelWorkspaceID = "8c2b1a3e-0000-4000-8000-000000000002"
	upd.SentinelWorkspaceName = "lake"
	upd.Severities = []string{"low"}
	upd.Search = "phish"
	upd.Enabled = false
	upd.UpdatedAt = t0.Add(time.Hour)
	// Progress, lease and health in the argument are ignored.
	upd.Watermark, upd.CursorTime, upd.CursorName = time.Time{}, time.Time{}, ""
	upd.LeaseOwner, upd.LeaseUntil, upd.NextPollAt = "", time.Time{}, t0.Add(99*time.Hour)
	upd.Health = store.Health{Status: store.HealthFailing}
	upd.CreatedAt = t0.Add(time.Hour)
	must(t, s.UpdateMonitor(ctx, upd))

	want := before
	want.Name, want.SourceKind, want.SentinelWorkspaceID, want.SentinelWorkspaceName = upd.Name, upd.SourceKind, upd.SentinelWorkspaceID, upd.SentinelWorkspaceName
	want.Severities, want.Search, want.Enabled, want.UpdatedAt = upd.Severities, upd.Search, upd.Enabled, upd.UpdatedAt
	equal(t, "monitor after UpdateMonitor", getMonitor(t, s, m), want)

	missing := upd
	missing.ID = "missing"
	wantErr(t, s.UpdateMonitor(ctx, missing), store.ErrNotFound)
}

func testDeleteMonitorKeepsAlerts(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	m := newMonitor(t, s, w.ID)
	claim(t, s, m.ID, "poller")
	_, err := s.CommitPage(ctx, m.ID, "poller", alertsFor(m, "G-1"), store.Progress{})
	must(t, err)
	must(t, s.DeleteMonitor(ctx, w.ID, m.ID))
	_, err = s.GetMonitor(ctx, w.ID, m.ID)
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.DeleteMonitor(ctx, w.ID, m.ID), store.ErrNotFound)

	alerts := allAlerts(t, s, w.ID, store.AlertFilter{MonitorID: m.ID})
	if len(alerts) != 1 || alerts[0].MonitorName != m.Name {
		t.Fatalf("alerts of the deleted monitor: %+v", alerts)
	}
}

func testListEnabledMonitors(t *testing.T, s store.Store) {
	a, b := newWorkspace(t, s), newWorkspace(t, s)
	on1 := newMonitor(t, s, a.ID)
	newMonitor(t, s, a.ID, func(m *store.Monitor) { m.Enabled = false })
	on2 := newMonitor(t, s, b.ID)
	list, err := s.ListEnabledMonitors(t.Context())
	must(t, err)
	var ids []string
	for _, m := range list {
		ids = append(ids, m.ID)
	}
	slices.Sort(ids)
	want := []string{on1.ID, on2.ID}
	slices.Sort(want)
	equal(t, "enabled monitor ids", ids, want)
}

func testWorkspaceIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := newWorkspace(t, s), newWorkspace(t, s)
	newConnection(t, s, a.ID)
	newConnection(t, s, b.ID)
	ma := newMonitor(t, s, a.ID)
	mb := newMonitor(t, s, b.ID)
	claim(t, s, mb.ID, "poller")
	alertB := newAlert(mb, "G-B")
	_, err := s.CommitPage(ctx, mb.ID, "poller", []store.Alert{alertB}, store.Progress{})
	must(t, err)

	_, err = s.GetMonitor(ctx, a.ID, mb.ID)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.GetAlert(ctx, a.ID, alertB.ID)
	wantErr(t, err, store.ErrNotFound)
	hijack := mb
	hijack.WorkspaceID = a.ID
	hijack.Name = "hijacked"
	wantErr(t, s.UpdateMonitor(ctx, hijack), store.ErrNotFound)
	wantErr(t, s.DeleteMonitor(ctx, a.ID, mb.ID), store.ErrNotFound)

	for _, f := range []store.AlertFilter{{}, {MonitorID: mb.ID}, {Severity: "high"}} {
		if got, err := s.ListAlerts(ctx, a.ID, f); err != nil || len(got) != 0 {
			t.Fatalf("ListAlerts(A, %+v) = %d alerts, %v; want none", f, len(got), err)
		}
	}
	known, err := s.KnownIncidents(ctx, a.ID, []string{"G-B"})
	must(t, err)
	if len(known) != 0 {
		t.Fatalf("KnownIncidents(A) reports B's incident: %v", known)
	}
	list, err := s.ListMonitors(ctx, a.ID)
	must(t, err)
	if len(list) != 1 || list[0].ID != ma.ID {
		t.Fatalf("ListMonitors(A) = %+v", list)
	}

	// B's data is intact.
	if got := getMonitor(t, s, mb); got.Name != mb.Name {
		t.Fatalf("B's monitor changed: %+v", got)
	}
	if _, err := s.GetAlert(ctx, b.ID, alertB.ID); err != nil {
		t.Fatalf("B's alert: %v", err)
	}
}

func testClaimPoll(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	now := t0.Add(time.Hour)
	until := now.Add(time.Minute)
	tests := []struct {
		name  string
		setup func(t *testing.T) string // returns the monitor id
		owner string
		want  bool
	}{
		{"due and free", func(t *testing.T) string {
			return newMonitor(t, s, w.ID, func(m *store.Monitor) { m.NextPollAt = now }).ID
		}, "a", true},
		{"not due", func(t *testing.T) string {
			return newMonitor(t, s, w.ID, func(m *store.Monitor) { m.NextPollAt = now.Add(time.Nanosecond) }).ID
		}, "a", false},
		{"disabled", func(t *testing.T) string {
			return newMonitor(t, s, w.ID, func(m *store.Monitor) { m.Enabled = false }).ID
		}, "a", false},
		{"missing", func(t *testing.T) string { return "missing" }, "a", false},
		{"held by another", func(t *testing.T) string {
			m := newMonitor(t, s, w.ID)
			if _, ok, err := s.ClaimPoll(t.Context(), m.ID, "b", now, now.Add(time.Nanosecond)); err != nil || !ok {
				t.Fatalf("claim by b: %v %v", ok, err)
			}
			return m.ID
		}, "a", false},
		{"lease of another expired", func(t *testing.T) string {
			m := newMonitor(t, s, w.ID)
			if _, ok, err := s.ClaimPoll(t.Context(), m.ID, "b", t0, now); err != nil || !ok {
				t.Fatalf("claim by b: %v %v", ok, err)
			}
			return m.ID
		}, "a", true},
		{"already held by owner", func(t *testing.T) string {
			m := newMonitor(t, s, w.ID)
			if _, ok, err := s.ClaimPoll(t.Context(), m.ID, "a", now, now.Add(time.Hour)); err != nil || !ok {
				t.Fatalf("first claim: %v %v", ok, err)
			}
			return m.ID
		}, "a", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			id := tc.setup(t)
			m, ok, err := s.ClaimPoll(t.Context(), id, tc.owner, now, until)
			must(t, err)
			if ok != tc.want {
				t.Fatalf("ClaimPoll ok = %v, want %v", ok, tc.want)
			}
			if ok && (m.ID != id || m.LeaseOwner != tc.owner || !m.LeaseUntil.Equal(until)) {
				t.Fatalf("claimed monitor: id %s owner %q until %v", m.ID, m.LeaseOwner, m.LeaseUntil)
			}
		})
	}
}

func testClaimPollExclusive(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	m := newMonitor(t, s, w.ID)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		owners []string
	)
	for i := range 8 {
		wg.Go(func() {
			owner := fmt.Sprintf("replica-%d", i)
			_, ok, err := s.ClaimPoll(t.Context(), m.ID, owner, t0, t0.Add(time.Minute))
			if err != nil {
				t.Errorf("ClaimPoll: %v", err)
			}
			if ok {
				mu.Lock()
				owners = append(owners, owner)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(owners) != 1 {
		t.Fatalf("lease granted to %v, want exactly one owner", owners)
	}
	if got := getMonitor(t, s, m).LeaseOwner; got != owners[0] {
		t.Fatalf("stored lease owner %q, want %q", got, owners[0])
	}
}

// testClaimFeed: a feed is one Clarion workspace's enabled monitors of one
// Sentinel workspace; ClaimFeed takes the due and free ones, oldest first,
// and nothing of another feed or another Clarion workspace.
func testClaimFeed(t *testing.T, s store.Store) {
	ctx := t.Context()
	const sw, otherSW = "8c2b1a3e-0000-4000-8000-000000000001", "8c2b1a3e-0000-4000-8000-000000000002"
	now := t0.Add(time.Hour)
	w, other := newWorkspace(t, s), newWorkspace(t, s)
	at := func(d time.Duration) func(*store.Monitor) {
		return func(m *store.Monitor) { m.NextPollAt = now; m.CreatedAt = t0.Add(d) }
	}
	newer := newMonitor(t, s, w.ID, at(2*time.Minute))
	older := newMonitor(t, s, w.ID, at(time.Minute))
	notDue := newMonitor(t, s, w.ID, func(m *store.Monitor) { m.NextPollAt = now.Add(time.Second) })
	disabled := newMonitor(t, s, w.ID, at(0), func(m *store.Monitor) { m.Enabled = false })
	held := newMonitor(t, s, w.ID, at(0))
	if _, ok, err := s.ClaimPoll(ctx, held.ID, "b", now, now.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("claim by b: %v %v", ok, err)
	}
	lapsed := newMonitor(t, s, w.ID, at(3*time.Minute))
	if _, ok, err := s.ClaimPoll(ctx, lapsed.ID, "b", now, now); err != nil || !ok { // ends at now: lapsed
		t.Fatalf("claim by b: %v %v", ok, err)
	}
	elsewhere := newMonitor(t, s, w.ID, at(0), func(m *store.Monitor) { m.SentinelWorkspaceID = otherSW })
	foreign := newMonitor(t, s, other.ID, at(0))

	got, err := s.ClaimFeed(ctx, w.ID, sw, "a", now, now.Add(time.Minute))
	must(t, err)
	var ids []string
	for _, m := range got {
		ids = append(ids, m.ID)
		if m.LeaseOwner != "a" || !m.LeaseUntil.Equal(now.Add(time.Minute)) {
			t.Errorf("claimed monitor %s carries lease %q until %v, want a's until %v", m.ID, m.LeaseOwner, m.LeaseUntil, now.Add(time.Minute))
		}
	}
	want := []string{older.ID, newer.ID, lapsed.ID}
	if !slices.Equal(ids, want) {
		t.Fatalf("ClaimFeed claimed %v, want %v (older, newer, lapsed lease; not the undue, disabled, held, other feed or other workspace)", ids, want)
	}
	for _, m := range []store.Monitor{notDue, disabled, elsewhere, foreign} {
		if got := getMonitor(t, s, m).LeaseOwner; got != "" {
			t.Errorf("monitor %s outside the claim got lease owner %q", m.Name, got)
		}
	}
	if got := getMonitor(t, s, held).LeaseOwner; got != "b" {
		t.Errorf("held monitor's lease owner %q, want b's kept", got)
	}
	// Claimed again by its owner: the same monitors (a renewed claim).
	again, err := s.ClaimFeed(ctx, w.ID, sw, "a", now, now.Add(2*time.Minute))
	must(t, err)
	if len(again) != 3 {
		t.Fatalf("owner's second claim got %d monitors, want the same 3", len(again))
	}
	// Another owner gets nothing while a's leases run.
	if none, err := s.ClaimFeed(ctx, w.ID, sw, "c", now, now.Add(time.Minute)); err != nil || len(none) != 0 {
		t.Fatalf("claim by c while a holds the feed: %d monitors, err %v; want none", len(none), err)
	}
	if _, err := s.ClaimFeed(ctx, w.ID, sw, "", now, now); err == nil {
		t.Fatal("ClaimFeed with an empty owner succeeded")
	}
}

// testClaimFeedExclusive: replicas claiming one feed at once never share a
// monitor.
func testClaimFeedExclusive(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	const n = 6
	for range n {
		newMonitor(t, s, w.ID)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		claims = map[string][]string{}
	)
	for i := range 8 {
		wg.Go(func() {
			owner := fmt.Sprintf("replica-%d", i)
			ms, err := s.ClaimFeed(t.Context(), w.ID, "8c2b1a3e-0000-4000-8000-000000000001", owner, t0, t0.Add(time.Minute))
			if err != nil {
				t.Errorf("ClaimFeed: %v", err)
			}
			mu.Lock()
			for _, m := range ms {
				claims[m.ID] = append(claims[m.ID], owner)
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	if len(claims) != n {
		t.Fatalf("%d of %d monitors claimed", len(claims), n)
	}
	for id, owners := range claims {
		if len(owners) != 1 {
			t.Errorf("monitor %s claimed by %v, want exactly one owner", id, owners)
		}
	}
}

func testCommitPage(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	m := newMonitor(t, s, w.ID)
	claim(t, s, m.ID, "poller")

	steps := []struct {
		name      string
		incidents []string
		progress  store.Progress
		inserted  int
		want      store.Progress // stored afterwards
	}{
		{"first page", []string{"G-1", "G-2", "G-3"},
			store.Progress{Watermark: t0.Add(3 * time.Second), CursorTime: t0.Add(3 * time.Second), CursorName: "G-3"}, 3,
			store.Progress{Watermark: t0.Add(3 * time.Second), CursorTime: t0.Add(3 * time.Second), CursorName: "G-3"}},
		{"same page again", []string{"G-1", "G-2", "G-3"},
			store.Progress{Watermark: t0.Add(3 * time.Second)}, 0,
			store.Progress{Watermark: t0.Add(3 * time.Second)}},
		{"overlap plus one new", []string{"G-3", "G-4"},
			store.Progress{Watermark: t0.Add(4 * time.Second), CursorTime: t0.Add(4 * time.Second), CursorName: "G-4"}, 1,
			store.Progress{Watermark: t0.Add(4 * time.Second), CursorTime: t0.Add(4 * time.Second), CursorName: "G-4"}},
		{"watermark never moves back", nil,
			store.Progress{Watermark: t0.Add(time.Second)}, 0,
			store.Progress{Watermark: t0.Add(4 * time.Second)}},
		{"zero watermark keeps it", []string{"G-2"},
			store.Progress{}, 0,
			store.Progress{Watermark: t0.Add(4 * time.Second)}},
		{"same incident twice in one page", []string{"G-5", "G-5"},
			store.Progress{Watermark: t0.Add(5 * time.Second)}, 1,
			store.Progress{Watermark: t0.Add(5 * time.Second)}},
	}
	for _, st := range steps { // sequential: each step builds on the last
		n, err := s.CommitPage(ctx, m.ID, "poller", alertsFor(m, st.incidents...), st.progress)
		must(t, err)
		if n != st.inserted {
			t.Fatalf("%s: inserted %d, want %d", st.name, n, st.inserted)
		}
		got := getMonitor(t, s, m)
		equal(t, st.name+": progress", store.Progress{Watermark: got.Watermark, CursorTime: got.CursorTime, CursorName: got.CursorName}, st.want)
	}
	equal(t, "alerts", incidentIDs(allAlerts(t, s, w.ID, store.AlertFilter{})), []string{"G-1", "G-2", "G-3", "G-4", "G-5"})
}

func testCommitPageForeignAlerts(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := newWorkspace(t, s), newWorkspace(t, s)
	m := newMonitor(t, s, a.ID)
	m2 := newMonitor(t, s, a.ID)
	mb := newMonitor(t, s, b.ID)
	claim(t, s, m.ID, "poller")

	tests := []struct {
		name  string
		alert store.Alert
		ok    bool
	}{
		{"other workspace", newAlert(mb, "G-X"), false},
		{"other monitor", newAlert(m2, "G-Y"), false},
		{"ids left empty are filled in", func() store.Alert { a := newAlert(m, "G-Z"); a.WorkspaceID, a.MonitorID = "", ""; return a }(), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.CommitPage(ctx, m.ID, "poller", []store.Alert{tc.alert}, store.Progress{Watermark: t0})
			if (err == nil) != tc.ok {
				t.Fatalf("CommitPage error = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	got := allAlerts(t, s, a.ID, store.AlertFilter{})
	if len(got) != 1 || got[0].IncidentID != "G-Z" || got[0].MonitorID != m.ID || got[0].WorkspaceID != a.ID {
		t.Fatalf("alerts: %+v", got)
	}
	if n := len(allAlerts(t, s, b.ID, store.AlertFilter{})); n != 0 {
		t.Fatalf("workspace B got %d alerts", n)
	}
}

func testCommitPageBadText(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	m := newMonitor(t, s, w.ID)
	claim(t, s, m.ID, "poller")
	tests := []struct {
		name string
		edit func(a *store.Alert)
	}{
		{"payload not UTF-8", func(a *store.Alert) { a.Payload = []byte("{\"t\":\"\xff\xfe\"}") }},
		{"NUL in payload", func(a *store.Alert) { a.Payload = []byte("{\"t\":\"a\x00b\"}") }},
		{"NUL in title", func(a *store.Alert) { a.Title = "a\x00b" }},
		{"description cut inside a character", func(a *store.Alert) { a.Description = "東京"[:4] }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			good, bad := newAlert(m, "G-good-"+store.NewID()), newAlert(m, "G-bad-"+store.NewID())
			tc.edit(&bad)
			if _, err := s.CommitPage(t.Context(), m.ID, "poller", []store.Alert{good, bad}, store.Progress{Watermark: t0.Add(time.Hour)}); err == nil {
				t.Fatal("CommitPage accepted text PostgreSQL cannot store")
			}
			known, err := s.KnownIncidents(t.Context(), w.ID, []string{good.IncidentID, bad.IncidentID})
			must(t, err)
			if len(known) != 0 {
				t.Fatalf("part of a refused page was written: %v", known)
			}
		})
	}
	if got := getMonitor(t, s, m); !got.Watermark.IsZero() {
		t.Fatalf("watermark moved by a refused page: %v", got.Watermark)
	}
}

func testLeaseLost(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	tests := []struct {
		name  string
		setup func(t *testing.T, m store.Monitor)
	}{
		{"never claimed", func(t *testing.T, m store.Monitor) {}},
		{"taken over after expiry", func(t *testing.T, m store.Monitor) {
			claim(t, s, m.ID, "poller")
			if _, ok, err := s.ClaimPoll(t.Context(), m.ID, "other", t0.Add(time.Minute), t0.Add(2*time.Minute)); err != nil || !ok {
				t.Fatalf("takeover: %v %v", ok, err)
			}
		}},
		{"released by FinishPoll", func(t *testing.T, m store.Monitor) {
			claim(t, s, m.ID, "poller")
			must(t, s.FinishPoll(t.Context(), m.ID, "poller", store.Health{Status: store.HealthHealthy}, t0))
		}},
		{"released by ReleaseLeases", func(t *testing.T, m store.Monitor) {
			claim(t, s, m.ID, "poller")
			must(t, s.ReleaseLeases(t.Context(), "poller"))
		}},
		{"monitor deleted", func(t *testing.T, m store.Monitor) {
			claim(t, s, m.ID, "poller")
			must(t, s.DeleteMonitor(t.Context(), m.WorkspaceID, m.ID))
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMonitor(t, s, w.ID)
			tc.setup(t, m)
			before, beforeErr := s.GetMonitor(t.Context(), w.ID, m.ID) // ErrNotFound once deleted

			inc := "G-" + store.NewID()
			_, err := s.CommitPage(t.Context(), m.ID, "poller", alertsFor(m, inc), store.Progress{Watermark: t0.Add(time.Hour), CursorName: inc})
			wantErr(t, err, store.ErrLeaseLost)
			err = s.FinishPoll(t.Context(), m.ID, "poller", store.Health{Status: store.HealthFailing, LastError: "x", ConsecutiveFailures: 7}, t0.Add(time.Hour))
			wantErr(t, err, store.ErrLeaseLost)

			known, err := s.KnownIncidents(t.Context(), w.ID, []string{inc})
			must(t, err)
			if known[inc] {
				t.Fatal("an alert was written without the lease")
			}
			after, afterErr := s.GetMonitor(t.Context(), w.ID, m.ID)
			if (afterErr == nil) != (beforeErr == nil) {
				t.Fatalf("GetMonitor error went from %v to %v", beforeErr, afterErr)
			}
			equal(t, "monitor after refused writes", after, before)
		})
	}
}

func testCommitPageConcurrentDedup(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	// Two monitors on the same Sentinel workspace, each polled by its own
	// replica, each replica retrying its page from several goroutines.
	m1, m2 := newMonitor(t, s, w.ID), newMonitor(t, s, w.ID)
	claim(t, s, m1.ID, "replica-1")
	claim(t, s, m2.ID, "replica-2")
	incs := incidents("G", 40)

	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int
	)
	for i := range 8 {
		m, owner := m1, "replica-1"
		if i%2 == 1 {
			m, owner = m2, "replica-2"
		}
		page := alertsFor(m, incs...)
		r := rand.New(rand.NewPCG(uint64(i), 7))
		r.Shuffle(len(page), func(a, b int) { page[a], page[b] = page[b], page[a] })
		wg.Go(func() {
			n, err := s.CommitPage(t.Context(), m.ID, owner, page, store.Progress{Watermark: t0})
			if err != nil {
				t.Errorf("CommitPage: %v", err)
				return
			}
			mu.Lock()
			total += n
			mu.Unlock()
		})
	}
	wg.Wait()
	if total != len(incs) {
		t.Fatalf("inserted %d in total, want %d", total, len(incs))
	}
	equal(t, "alerts", incidentIDs(allAlerts(t, s, w.ID, store.AlertFilter{})), incs)
}

func testDedupPerWorkspace(t *testing.T, s store.Store) {
	a, b := newWorkspace(t, s), newWorkspace(t, s)
	ma, mb := newMonitor(t, s, a.ID), newMonitor(t, s, b.ID)
	claim(t, s, ma.ID, "poller")
	claim(t, s, mb.ID, "poller")
	for _, m := range []store.Monitor{ma, mb} {
		n, err := s.CommitPage(t.Context(), m.ID, "poller", alertsFor(m, "G-shared"), store.Progress{})
		must(t, err)
		if n != 1 {
			t.Fatalf("workspace %s: inserted %d, want 1", m.WorkspaceID, n)
		}
	}
}

func testCommitRacesDisconnect(t *testing.T, s store.Store) {
	// Whatever the interleaving, a page is either wholly written before the
	// disconnect or not at all, and nothing is written after it returns.
	for i := range 10 {
		w := newWorkspace(t, s)
		newConnection(t, s, w.ID)
		m := newMonitor(t, s, w.ID)
		claim(t, s, m.ID, "poller")
		page := alertsFor(m, incidents(fmt.Sprintf("G%d", i), 20)...)

		var (
			wg        sync.WaitGroup
			commitErr error
			start     = make(chan struct{})
		)
		wg.Go(func() {
			<-start
			_, commitErr = s.CommitPage(t.Context(), m.ID, "poller", page, store.Progress{Watermark: t0})
		})
		close(start)
		_, err := s.DeleteConnection(t.Context(), w.ID)
		must(t, err)
		wg.Wait()

		n := len(allAlerts(t, s, w.ID, store.AlertFilter{}))
		switch {
		case commitErr == nil && n == len(page):
		case errors.Is(commitErr, store.ErrLeaseLost) && n == 0:
		default:
			t.Fatalf("round %d: commit error %v with %d alerts stored", i, commitErr, n)
		}
		_, err = s.CommitPage(t.Context(), m.ID, "poller", alertsFor(m, "G-late"), store.Progress{})
		wantErr(t, err, store.ErrLeaseLost)
		wantErr(t, s.FinishPoll(t.Context(), m.ID, "poller", store.Health{}, t0), store.ErrLeaseLost)
	}
}

func testFinishPoll(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	m := newMonitor(t, s, w.ID)
	claim(t, s, m.ID, "poller")
	_, err := s.CommitPage(ctx, m.ID, "poller", nil, store.Progress{Watermark: t0, CursorTime: t0, CursorName: "G-1"})
	must(t, err)

	h := store.Health{
		Status:              store.HealthThrottled,
		LastPollAt:          t0.Add(time.Minute),
		LastSuccessAt:       t0,
		LastErrorCode:       "throttled",
		LastError:           "Microsoft asked us to slow down; retrying after 30 s.",
		ConsecutiveFailures: 3,
		Counts:              store.PollCounts{Returned: 5, AlreadyKnown: 1, FilteredSeverity: 2, FilteredSearch: 1, Ingested: 1},
	}
	next := t0.Add(90 * time.Second)
	must(t, s.FinishPoll(ctx, m.ID, "poller", h, next))

	got := getMonitor(t, s, m)
	equal(t, "health", got.Health, h)
	if !got.NextPollAt.Equal(next) || got.LeaseOwner != "" || !got.LeaseUntil.IsZero() {
		t.Fatalf("after FinishPoll: next %v owner %q until %v", got.NextPollAt, got.LeaseOwner, got.LeaseUntil)
	}
	if !got.Watermark.Equal(t0) || got.CursorName != "G-1" {
		t.Fatalf("FinishPoll changed progress: %v %q", got.Watermark, got.CursorName)
	}

	// The lease is free, but the monitor is not due before next.
	if _, ok, err := s.ClaimPoll(ctx, m.ID, "other", next.Add(-time.Nanosecond), next.Add(time.Minute)); err != nil || ok {
		t.Fatalf("claim before due: ok=%v err=%v", ok, err)
	}
	if _, ok, err := s.ClaimPoll(ctx, m.ID, "other", next, next.Add(time.Minute)); err != nil || !ok {
		t.Fatalf("claim when due: ok=%v err=%v", ok, err)
	}
}

func testReleaseLeases(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	m1, m2, m3 := newMonitor(t, s, w.ID), newMonitor(t, s, w.ID), newMonitor(t, s, w.ID)
	claim(t, s, m1.ID, "a")
	claim(t, s, m2.ID, "a")
	claim(t, s, m3.ID, "b")

	must(t, s.ReleaseLeases(ctx, "a"))
	must(t, s.ReleaseLeases(ctx, "nobody"))
	for _, tc := range []struct {
		m     store.Monitor
		owner string
	}{{m1, ""}, {m2, ""}, {m3, "b"}} {
		if got := getMonitor(t, s, tc.m).LeaseOwner; got != tc.owner {
			t.Fatalf("monitor %s lease owner %q, want %q", tc.m.ID, got, tc.owner)
		}
	}
	// Released monitors can be claimed at once by another replica.
	claim(t, s, m1.ID, "c")
	if _, ok, _ := s.ClaimPoll(ctx, m3.ID, "c", t0, t0.Add(time.Minute)); ok {
		t.Fatal("b's lease was released too")
	}
}

func fullAlert(m store.Monitor, payload []byte) store.Alert {
	a := newAlert(m, "4b2c1e0f-6f0e-4d3c-9a0b-"+store.NewID()[24:])
	a.IncidentNumber = 1234567
	a.Title = "Multi-stage incident involving Initial access & Collection on one endpoint — 東京 🔒"
	a.Description = strings.Repeat("Line with 'quotes' and \"double\" and \\ backslash\n", 50)
	a.Severity = "critical"
	a.SourceSeverity = "High"
	a.Status = "Active"
	a.DeepLink = "https://security.microsoft.com/incident2/1234567/overview?tid=72f988bf"
	a.TenantID = "72f988bf-86f1-41af-91ab-2d7cd011db47"
	a.IncidentCreatedAt = time.Date(2024, 6, 21, 1, 6, 41, 743333300, time.UTC)
	a.IngestedAt = time.Date(2024, 6, 21, 1, 9, 2, 100, time.UTC)
	a.Payload = payload
	return a
}

func testAlertRoundTrip(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	m := newMonitor(t, s, w.ID)
	claim(t, s, m.ID, "poller")
	a := fullAlert(m, json.RawMessage(`{"IncidentName":"x","Severity":"High"}`))
	_, err := s.CommitPage(ctx, m.ID, "poller", []store.Alert{a}, store.Progress{})
	must(t, err)

	got, err := s.GetAlert(ctx, w.ID, a.ID)
	must(t, err)
	equal(t, "GetAlert", got, a)
	list, err := s.ListAlerts(ctx, w.ID, store.AlertFilter{})
	must(t, err)
	equal(t, "ListAlerts", list, []store.Alert{a})

	_, err = s.GetAlert(ctx, w.ID, "missing")
	wantErr(t, err, store.ErrNotFound)
}

func testPayloadByteExact(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	m := newMonitor(t, s, w.ID)
	claim(t, s, m.ID, "poller")

	big := []byte(`{"Description":"` + strings.Repeat("A 300 KB description. ", 300*1024/22) + `","Title":"x"}`)
	tests := []struct {
		name    string
		payload []byte
	}{
		{"300 KB", big},
		{"whitespace and key order kept", []byte("{\n  \"z\": 1,\n\t\"a\" :  [ 1.0e10 , -0.0 ]  \r\n}")},
		{"escapes kept", []byte(`{"t":"caf\u00e9 \ud83d\udd12 \"q\" \\ \/ \n","n":null}`)},
		{"raw UTF-8", []byte(`{"t":"東京 🔒 Ünïcödé"}`)},
		{"duplicate keys kept", []byte(`{"a":1,"a":2}`)},
		{"nil", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := fullAlert(m, tc.payload)
			_, err := s.CommitPage(t.Context(), m.ID, "poller", []store.Alert{a}, store.Progress{})
			must(t, err)
			got, err := s.GetAlert(t.Context(), w.ID, a.ID)
			must(t, err)
			if !bytes.Equal(got.Payload, tc.payload) || (tc.payload == nil) != (got.Payload == nil) {
				t.Fatalf("payload changed: %d bytes in, %d bytes out", len(tc.payload), len(got.Payload))
			}
		})
	}
}

func testTimeRoundTrip(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	plus2 := time.FixedZone("+02:00", 2*60*60)
	tests := []struct {
		name string
		at   time.Time
	}{
		{"100 ns", time.Date(2024, 6, 21, 1, 6, 41, 743333300, time.UTC)},
		{"1 ns", time.Date(2024, 6, 21, 1, 6, 41, 1, time.UTC)},
		{"whole second", time.Date(2024, 6, 21, 1, 6, 41, 0, time.UTC)},
		{"other zone", time.Date(2024, 6, 21, 3, 6, 41, 600000000, plus2)},
		{"before 1970", time.Date(1969, 12, 31, 23, 59, 59, 999999900, time.UTC)},
		{"far future", time.Date(2200, 1, 1, 0, 0, 0, 100, time.UTC)},
		{"monotonic reading stripped", time.Now()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMonitor(t, s, w.ID, func(m *store.Monitor) { m.CreatedAt = tc.at })
			claim(t, s, m.ID, "poller")
			a := newAlert(m, "G-"+store.NewID())
			a.IncidentCreatedAt, a.IngestedAt = tc.at, tc.at
			_, err := s.CommitPage(t.Context(), m.ID, "poller", []store.Alert{a},
				store.Progress{Watermark: tc.at, CursorTime: tc.at, CursorName: "x"})
			must(t, err)
			got := getMonitor(t, s, m)
			ga, err := s.GetAlert(t.Context(), w.ID, a.ID)
			must(t, err)
			for what, v := range map[string]time.Time{
				"CreatedAt": got.CreatedAt, "Watermark": got.Watermark, "CursorTime": got.CursorTime,
				"IncidentCreatedAt": ga.IncidentCreatedAt, "IngestedAt": ga.IngestedAt,
			} {
				if !v.Equal(tc.at) || v.Location() != time.UTC {
					t.Errorf("%s = %v, want %v in UTC", what, v, tc.at)
				}
			}
		})
	}
	// The zero time round-trips as the zero time.
	m := newMonitor(t, s, w.ID, func(m *store.Monitor) { m.CreatedAt = time.Time{} })
	if got := getMonitor(t, s, m); !got.CreatedAt.IsZero() || !got.Watermark.IsZero() || !got.Health.LastPollAt.IsZero() {
		t.Fatalf("zero times came back as %v %v %v", got.CreatedAt, got.Watermark, got.Health.LastPollAt)
	}
}

// seedAlerts commits alerts for monitor m (whose lease poller holds) with
// the given ingestion times and severities.
func seedAlerts(t *testing.T, s store.Store, m store.Monitor, at []time.Time, severity func(i int) string) []store.Alert {
	t.Helper()
	page := make([]store.Alert, len(at))
	for i := range at {
		a := newAlert(m, fmt.Sprintf("G-%s-%04d", m.ID, i))
		a.IngestedAt = at[i]
		if severity != nil {
			a.Severity = severity(i)
		}
		page[i] = a
	}
	_, err := s.CommitPage(t.Context(), m.ID, "poller", page, store.Progress{})
	must(t, err)
	return page
}

func newestFirst(alerts []store.Alert) []string {
	s := slices.Clone(alerts)
	slices.SortFunc(s, func(a, b store.Alert) int {
		if c := b.IngestedAt.Compare(a.IngestedAt); c != 0 {
			return c
		}
		return strings.Compare(b.ID, a.ID)
	})
	ids := make([]string, len(s))
	for i, a := range s {
		ids[i] = a.ID
	}
	return ids
}

func alertIDs(alerts []store.Alert) []string {
	ids := make([]string, len(alerts))
	for i, a := range alerts {
		ids[i] = a.ID
	}
	return ids
}

func testListAlertsPaging(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	m := newMonitor(t, s, w.ID)
	claim(t, s, m.ID, "poller")
	// Ties on the ingestion time are broken by id, across page boundaries.
	at := []time.Time{t0, t0.Add(100), t0.Add(100), t0.Add(100), t0.Add(time.Second), t0.Add(-time.Hour), t0.Add(100)}
	seeded := seedAlerts(t, s, m, at, nil)
	want := newestFirst(seeded)

	for _, limit := range []int{1, 2, 3, 7, 50} {
		t.Run(fmt.Sprintf("limit %d", limit), func(t *testing.T) {
			got := allAlerts(t, s, w.ID, store.AlertFilter{Limit: limit})
			equal(t, "ids newest first", alertIDs(got), want)
		})
	}
	// A cursor with a time only: strictly older.
	got, err := s.ListAlerts(t.Context(), w.ID, store.AlertFilter{BeforeIngestedAt: t0.Add(100)})
	must(t, err)
	equal(t, "before a time", alertIDs(got), want[5:])
}

func testListAlertsLimit(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	m := newMonitor(t, s, w.ID)
	claim(t, s, m.ID, "poller")
	at := make([]time.Time, store.MaxAlertLimit+20)
	for i := range at {
		at[i] = t0.Add(time.Duration(i) * time.Millisecond)
	}
	seedAlerts(t, s, m, at, nil)
	tests := []struct {
		limit, want int
	}{
		{0, store.DefaultAlertLimit},
		{-1, store.DefaultAlertLimit},
		{10, 10},
		{store.MaxAlertLimit, store.MaxAlertLimit},
		{store.MaxAlertLimit + 1, store.MaxAlertLimit},
		{100000, store.MaxAlertLimit},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("limit %d", tc.limit), func(t *testing.T) {
			t.Parallel()
			got, err := s.ListAlerts(t.Context(), w.ID, store.AlertFilter{Limit: tc.limit})
			must(t, err)
			if len(got) != tc.want {
				t.Fatalf("got %d alerts, want %d", len(got), tc.want)
			}
		})
	}
}

func testListAlertsFilters(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	m1, m2 := newMonitor(t, s, w.ID), newMonitor(t, s, w.ID)
	claim(t, s, m1.ID, "poller")
	claim(t, s, m2.ID, "poller")
	sev := []string{"critical", "high", "medium", "low"}
	at := make([]time.Time, 8)
	for i := range at {
		at[i] = t0.Add(time.Duration(i) * time.Second)
	}
	a1 := seedAlerts(t, s, m1, at, func(i int) string { return sev[i%4] })
	a2 := seedAlerts(t, s, m2, at, func(i int) string { return sev[(i+1)%4] })
	all := append(slices.Clone(a1), a2...)

	pick := func(keep func(a store.Alert) bool) []string {
		var out []store.Alert
		for _, a := range all {
			if keep(a) {
				out = append(out, a)
			}
		}
		return newestFirst(out)
	}
	tests := []struct {
		name string
		f    store.AlertFilter
		want []string
	}{
		{"none", store.AlertFilter{}, pick(func(store.Alert) bool { return true })},
		{"monitor", store.AlertFilter{MonitorID: m2.ID}, pick(func(a store.Alert) bool { return a.MonitorID == m2.ID })},
		{"severity", store.AlertFilter{Severity: "high"}, pick(func(a store.Alert) bool { return a.Severity == "high" })},
		{"monitor and severity", store.AlertFilter{MonitorID: m1.ID, Severity: "critical"},
			pick(func(a store.Alert) bool { return a.MonitorID == m1.ID && a.Severity == "critical" })},
		{"unknown monitor", store.AlertFilter{MonitorID: "missing"}, nil},
		{"paged with filter", store.AlertFilter{Severity: "low", Limit: 1}, pick(func(a store.Alert) bool { return a.Severity == "low" })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := alertIDs(allAlerts(t, s, w.ID, tc.f))
			if len(got) == 0 {
				got = nil
			}
			equal(t, "ids", got, tc.want)
		})
	}
}

func testKnownIncidents(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	m := newMonitor(t, s, w.ID)
	claim(t, s, m.ID, "poller")
	known := incidents("K", 700)
	_, err := s.CommitPage(t.Context(), m.ID, "poller", alertsFor(m, known...), store.Progress{})
	must(t, err)

	tests := []struct {
		name  string
		query []string
		want  int
	}{
		{"none asked", nil, 0},
		{"unknown only", []string{"U-1", "U-2"}, 0},
		{"mixed", []string{"K-0001", "U-1", "K-0699"}, 2},
		{"more than one chunk", append(slices.Clone(known), incidents("U", 600)...), len(known)},
		{"duplicates in the question", []string{"K-0001", "K-0001"}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := s.KnownIncidents(t.Context(), w.ID, tc.query)
			must(t, err)
			if got == nil {
				t.Fatal("nil map")
			}
			if len(got) != tc.want {
				t.Fatalf("%d known, want %d", len(got), tc.want)
			}
			for id := range got {
				if !strings.HasPrefix(id, "K-") || !got[id] {
					t.Fatalf("reported %q as known", id)
				}
			}
		})
	}
}

func testPollSoon(t *testing.T, s store.Store) {
	ctx := t.Context()
	w, other := newWorkspace(t, s), newWorkspace(t, s)
	later := t0.Add(time.Hour)
	m := newMonitor(t, s, w.ID, func(m *store.Monitor) { m.NextPollAt = later })
	o := newMonitor(t, s, other.ID, func(m *store.Monitor) { m.NextPollAt = later })
	if _, ok, _ := s.ClaimPoll(ctx, m.ID, "a", t0, t0.Add(time.Minute)); ok {
		t.Fatal("claimed a monitor that is not due")
	}
	must(t, s.PollSoon(ctx, w.ID, t0))
	claim(t, s, m.ID, "a")
	if got := getMonitor(t, s, o).NextPollAt; !got.Equal(later) {
		t.Fatalf("another workspace's monitor was rescheduled to %v", got)
	}
}
