package monitor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/clarion/sentinel/internal/monitor"
	"github.com/clarion/sentinel/internal/store"
	"github.com/clarion/sentinel/internal/store/storetest"
)

// blockingSource answers a poll query only when released (or when the
// poll's context ends), so that a test can hold a poll in flight.
type blockingSource struct {
	started chan struct{}
	release chan struct{}
	ended   chan error // the context error the query ended with, if any
}

func newBlockingSource() *blockingSource {
	return &blockingSource{started: make(chan struct{}, 1), release: make(chan struct{}), ended: make(chan error, 1)}
}

func (b *blockingSource) QueryIncidents(ctx context.Context, _ store.Connection, m store.Monitor, kql string) (monitor.Page, error) {
	b.started <- struct{}{}
	select {
	case <-b.release:
		b.ended <- nil
		return monitor.Page{}, nil
	case <-ctx.Done():
		b.ended <- ctx.Err()
		return monitor.Page{}, ctx.Err()
	}
}

// leaseSetup is a store with one connected workspace and one due monitor,
// and an engine (owner "a", 2 s interval: a 1 s lease) over src.
func leaseSetup(t *testing.T, src monitor.Source) (store.Store, *monitor.Engine, store.Monitor) {
	t.Helper()
	st := storetest.SQLite(t)
	ctx := t.Context()
	now := time.Now()
	if err := st.CreateWorkspace(ctx, store.Workspace{ID: "w", Name: "SOC", CreatedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := st.UpsertConnection(ctx, store.Connection{WorkspaceID: "w", TenantID: "t", RefreshTokenEnc: []byte{1},
		ConnectedAt: now}); err != nil {
		t.Fatal(err)
	}
	m := store.Monitor{ID: "m", WorkspaceID: "w", Name: "m", SourceKind: store.SourceSIEM,
		SentinelWorkspaceID: "8c2b1a3e-0000-4000-8000-000000000001", Enabled: true, CreatedAt: now, UpdatedAt: now, NextPollAt: now}
	if err := st.CreateMonitor(ctx, m); err != nil {
		t.Fatal(err)
	}
	return st, monitor.New(monitor.Config{Owner: "a", Interval: 2 * time.Second}, st, src), m
}

// TestSlowPollKeepsItsLease: the poll lease is short (half an interval) so
// that a dead replica's monitors are taken over quickly, and renewed while a
// poll runs, so that a live replica's slow poll is not taken over.
func TestSlowPollKeepsItsLease(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newBlockingSource()
		st, eng, m := leaseSetup(t, src)
		type result struct {
			next time.Time
			err  error
		}
		done := make(chan result, 1)
		go func() {
			next, err := eng.PollOnce(t.Context(), m.ID)
			done <- result{next, err}
		}()
		<-src.started
		time.Sleep(10 * time.Second) // ten lease lengths, in the bubble's time

		if _, ok, err := st.ClaimPoll(t.Context(), m.ID, "b", time.Now(), time.Now().Add(time.Second)); err != nil || ok {
			t.Fatalf("another replica claimed a monitor whose poll is still running: ok=%v err=%v", ok, err)
		}
		close(src.release)
		r := <-done
		if r.err != nil || r.next.IsZero() {
			t.Fatalf("PollOnce = %v, %v; want a next poll time and no error", r.next, r.err)
		}
		got, err := st.GetMonitor(t.Context(), "w", m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.LeaseOwner != "" || got.Health.Status != store.HealthHealthy {
			t.Fatalf("after the poll: lease owner %q, health %q; want released, healthy", got.LeaseOwner, got.Health.Status)
		}
	})
}

// TestPollStopsWhenItsLeaseIsTakenOver: a replica whose lease lapsed (it
// was starved longer than the lease) and was taken over stops calling
// Microsoft at its next renewal and writes nothing.
func TestPollStopsWhenItsLeaseIsTakenOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newBlockingSource()
		st, eng, m := leaseSetup(t, src)
		done := make(chan error, 1)
		go func() {
			_, err := eng.PollOnce(t.Context(), m.ID)
			done <- err
		}()
		<-src.started
		// Replica b sees the lease as lapsed (its clock is past the end).
		later := time.Now().Add(time.Minute)
		if _, ok, err := st.ClaimPoll(t.Context(), m.ID, "b", later, later.Add(time.Minute)); err != nil || !ok {
			t.Fatalf("claim by b: ok=%v err=%v", ok, err)
		}
		if err := <-src.ended; !errors.Is(err, context.Canceled) {
			t.Fatalf("the query ended with %v, want it cancelled", err)
		}
		if err := <-done; !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("PollOnce: %v, want ErrLeaseLost", err)
		}
		got, err := st.GetMonitor(t.Context(), "w", m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.LeaseOwner != "b" || got.Health.Status != store.HealthPending {
			t.Fatalf("after the lost poll: lease owner %q, health %q; want b's lease and nothing written", got.LeaseOwner, got.Health.Status)
		}
	})
}

// TestPollStopsWhenItsMonitorIsDeleted: a monitor deleted on another replica
// (or by a disconnect) stops a poll in flight here at its next renewal.
func TestPollStopsWhenItsMonitorIsDeleted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newBlockingSource()
		st, eng, m := leaseSetup(t, src)
		done := make(chan error, 1)
		go func() {
			_, err := eng.PollOnce(t.Context(), m.ID)
			done <- err
		}()
		<-src.started
		if err := st.DeleteMonitor(t.Context(), "w", m.ID); err != nil {
			t.Fatal(err)
		}
		if err := <-src.ended; !errors.Is(err, context.Canceled) {
			t.Fatalf("the query ended with %v, want it cancelled", err)
		}
		if err := <-done; !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("PollOnce: %v, want ErrLeaseLost", err)
		}
	})
}

// TestFeedPollGoesOnWhenOneMonitorIsTakenOver: a feed poll holds one lease
// per monitor; losing one monitor's lease drops that monitor from the poll
// (nothing written for it) and the others finish as usual.
func TestFeedPollGoesOnWhenOneMonitorIsTakenOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		src := newBlockingSource()
		st, eng, m := leaseSetup(t, src)
		other := m
		other.ID, other.Name = "m2", "m2"
		if err := st.CreateMonitor(t.Context(), other); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := eng.PollFeed(t.Context(), m.WorkspaceID, m.SentinelWorkspaceID)
			done <- err
		}()
		<-src.started
		later := time.Now().Add(time.Minute)
		if _, ok, err := st.ClaimPoll(t.Context(), other.ID, "b", later, later.Add(time.Minute)); err != nil || !ok {
			t.Fatalf("claim by b: ok=%v err=%v", ok, err)
		}
		time.Sleep(2 * time.Second) // a few renewals: the lost lease is noticed
		close(src.release)
		if err := <-done; !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("PollFeed: %v, want ErrLeaseLost reported for the monitor taken over", err)
		}
		kept, err := st.GetMonitor(t.Context(), "w", m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if kept.LeaseOwner != "" || kept.Health.Status != store.HealthHealthy {
			t.Fatalf("the monitor still held: lease owner %q, health %q; want released, healthy", kept.LeaseOwner, kept.Health.Status)
		}
		lost, err := st.GetMonitor(t.Context(), "w", other.ID)
		if err != nil {
			t.Fatal(err)
		}
		if lost.LeaseOwner != "b" || lost.Health.Status != store.HealthPending {
			t.Fatalf("the monitor taken over: lease owner %q, health %q; want b's lease and nothing written", lost.LeaseOwner, lost.Health.Status)
		}
	})
}
