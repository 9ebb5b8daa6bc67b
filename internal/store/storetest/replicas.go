package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/store"
)

// The ReplicaStore part of the contract: poll-lease renewal and the
// connection refresh lease, what several replicas on one database share.

func testRenewLease(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	tests := []struct {
		name  string
		setup func(t *testing.T, m store.Monitor)
		owner string
		want  error
	}{
		{"held by owner", func(t *testing.T, m store.Monitor) { claim(t, s, m.ID, "a") }, "a", nil},
		{"lapsed but not taken over", func(t *testing.T, m store.Monitor) {
			if _, ok, err := s.ClaimPoll(ctx, m.ID, "a", t0, t0.Add(time.Nanosecond)); err != nil || !ok {
				t.Fatalf("claim: %v %v", ok, err)
			}
		}, "a", nil},
		{"never claimed", func(t *testing.T, m store.Monitor) {}, "a", store.ErrLeaseLost},
		{"held by another", func(t *testing.T, m store.Monitor) { claim(t, s, m.ID, "b") }, "a", store.ErrLeaseLost},
		{"taken over after it lapsed", func(t *testing.T, m store.Monitor) {
			claim(t, s, m.ID, "a")
			if _, ok, err := s.ClaimPoll(ctx, m.ID, "b", t0.Add(time.Minute), t0.Add(2*time.Minute)); err != nil || !ok {
				t.Fatalf("takeover: %v %v", ok, err)
			}
		}, "a", store.ErrLeaseLost},
		{"released by FinishPoll", func(t *testing.T, m store.Monitor) {
			claim(t, s, m.ID, "a")
			must(t, s.FinishPoll(ctx, m.ID, "a", store.Health{Status: store.HealthHealthy}, t0))
		}, "a", store.ErrLeaseLost},
		{"released by ReleaseLeases", func(t *testing.T, m store.Monitor) {
			claim(t, s, m.ID, "a")
			must(t, s.ReleaseLeases(ctx, "a"))
		}, "a", store.ErrLeaseLost},
		{"monitor deleted", func(t *testing.T, m store.Monitor) {
			claim(t, s, m.ID, "a")
			must(t, s.DeleteMonitor(ctx, m.WorkspaceID, m.ID))
		}, "a", store.ErrLeaseLost},
		{"empty owner", func(t *testing.T, m store.Monitor) {}, "", store.ErrLeaseLost},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newMonitor(t, s, w.ID)
			tc.setup(t, m)
			before, _ := s.GetMonitor(ctx, w.ID, m.ID)
			until := t0.Add(time.Hour)
			err := s.RenewLease(ctx, m.ID, tc.owner, until)
			if tc.want != nil {
				wantErr(t, err, tc.want)
				if after, err := s.GetMonitor(ctx, w.ID, m.ID); err == nil {
					equal(t, "monitor after a refused renewal", after, before)
				}
				return
			}
			must(t, err)
			got := getMonitor(t, s, m)
			if got.LeaseOwner != tc.owner || !got.LeaseUntil.Equal(until) {
				t.Fatalf("after RenewLease: owner %q until %v, want %q %v", got.LeaseOwner, got.LeaseUntil, tc.owner, until)
			}
			// A renewed lease keeps others out until its new end ...
			if _, ok, err := s.ClaimPoll(ctx, m.ID, "b", until.Add(-time.Nanosecond), until.Add(time.Minute)); err != nil || ok {
				t.Fatalf("claim of a renewed lease: ok=%v err=%v", ok, err)
			}
			// ... and the holder's writes go through.
			_, err = s.CommitPage(ctx, m.ID, tc.owner, alertsFor(m, "G-"+store.NewID()), store.Progress{Watermark: t0})
			must(t, err)
		})
	}
}

func testClaimRefresh(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	now := t0.Add(time.Hour)
	until := now.Add(time.Minute)
	tests := []struct {
		name  string
		setup func(t *testing.T, workspaceID string)
		owner string
		want  bool
	}{
		{"free", func(t *testing.T, ws string) {}, "a", true},
		{"held by another", func(t *testing.T, ws string) {
			claimRefresh(t, s, ws, "b", now, now.Add(time.Nanosecond))
		}, "a", false},
		{"lapsed lease of another", func(t *testing.T, ws string) {
			claimRefresh(t, s, ws, "b", t0, now)
		}, "a", true},
		{"already held by owner", func(t *testing.T, ws string) {
			claimRefresh(t, s, ws, "a", now, now.Add(time.Hour))
		}, "a", true},
		{"released by holder", func(t *testing.T, ws string) {
			claimRefresh(t, s, ws, "b", now, now.Add(time.Hour))
			must(t, s.ReleaseRefresh(ctx, ws, "b"))
		}, "a", true},
		{"release by a non-holder does nothing", func(t *testing.T, ws string) {
			claimRefresh(t, s, ws, "b", now, now.Add(time.Hour))
			must(t, s.ReleaseRefresh(ctx, ws, "a"))
			must(t, s.ReleaseRefresh(ctx, ws, ""))
		}, "a", false},
		{"released by ReleaseLeases of the holder", func(t *testing.T, ws string) {
			claimRefresh(t, s, ws, "b", now, now.Add(time.Hour))
			must(t, s.ReleaseLeases(ctx, "b"))
		}, "a", true},
		{"kept by ReleaseLeases of another", func(t *testing.T, ws string) {
			claimRefresh(t, s, ws, "b", now, now.Add(time.Hour))
			must(t, s.ReleaseLeases(ctx, "a"))
		}, "a", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ws := newWorkspace(t, s)
			before := newConnection(t, s, ws.ID)
			tc.setup(t, ws.ID)
			ok, err := s.ClaimRefresh(ctx, ws.ID, tc.owner, now, until)
			must(t, err)
			if ok != tc.want {
				t.Fatalf("ClaimRefresh ok = %v, want %v", ok, tc.want)
			}
			// The lease is not part of the credential: version and token
			// are untouched, so a rotation racing it is never stale.
			got, err := s.GetConnection(ctx, ws.ID)
			must(t, err)
			equal(t, "connection after the refresh lease changed", got, before)
		})
	}

	_, err := s.ClaimRefresh(ctx, "missing", "a", now, until)
	wantErr(t, err, store.ErrNotFound)
	_, err = s.ClaimRefresh(ctx, w.ID, "a", now, until) // a workspace without a connection
	wantErr(t, err, store.ErrNotFound)
	must(t, s.ReleaseRefresh(ctx, "missing", "a"))

	// A disconnect removes the lease with the connection.
	newConnection(t, s, w.ID)
	claimRefresh(t, s, w.ID, "a", now, until)
	_, err = s.DeleteConnection(ctx, w.ID)
	must(t, err)
	_, err = s.ClaimRefresh(ctx, w.ID, "b", now, until)
	wantErr(t, err, store.ErrNotFound)
}

func testClaimRefreshExclusive(t *testing.T, s store.Store) {
	w := newWorkspace(t, s)
	newConnection(t, s, w.ID)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		owners []string
	)
	for i := range 8 {
		wg.Go(func() {
			owner := fmt.Sprintf("replica-%d", i)
			ok, err := s.ClaimRefresh(t.Context(), w.ID, owner, t0, t0.Add(time.Minute))
			if err != nil {
				t.Errorf("ClaimRefresh: %v", err)
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
		t.Fatalf("refresh lease granted to %v, want exactly one owner", owners)
	}
	// Only its holder's release frees it.
	other := "replica-x"
	must(t, s.ReleaseRefresh(t.Context(), w.ID, other))
	if ok, err := s.ClaimRefresh(t.Context(), w.ID, other, t0, t0.Add(time.Minute)); err != nil || ok {
		t.Fatalf("claim while held: ok=%v err=%v", ok, err)
	}
	must(t, s.ReleaseRefresh(t.Context(), w.ID, owners[0]))
	claimRefresh(t, s, w.ID, other, t0, t0.Add(time.Minute))
}

func claimRefresh(t *testing.T, s store.Store, workspaceID, owner string, now, until time.Time) {
	t.Helper()
	ok, err := s.ClaimRefresh(t.Context(), workspaceID, owner, now, until)
	must(t, err)
	if !ok {
		t.Fatalf("ClaimRefresh(%s, %s): not claimed", workspaceID, owner)
	}
}

// testCommitPageLongPages: pages longer than one insert statement take
// (the store inserts a page in a few statements, not one per row) count and
// store every new alert once, whatever is already known.
func testCommitPageLongPages(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorkspace(t, s)
	m := newMonitor(t, s, w.ID)
	claim(t, s, m.ID, "poller")
	first := incidents("L", 130)
	n, err := s.CommitPage(ctx, m.ID, "poller", alertsFor(m, first...), store.Progress{Watermark: t0})
	must(t, err)
	equal(t, "inserted by the first page", n, 130)
	// The look-back re-reads all of them, with 71 new ones, one twice.
	second := append(slices.Clone(first), incidents("M", 71)...)
	second = append(second, "M-0003")
	n, err = s.CommitPage(ctx, m.ID, "poller", alertsFor(m, second...), store.Progress{Watermark: t0})
	must(t, err)
	equal(t, "inserted by the second page", n, 71)
	got := incidentIDs(allAlerts(t, s, w.ID, store.AlertFilter{Limit: store.MaxAlertLimit}))
	want := append(slices.Clone(first), incidents("M", 71)...)
	slices.Sort(want)
	equal(t, "alerts", got, want)
}
