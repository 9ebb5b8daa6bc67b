package store_test

import (
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/store"
	"github.com/clarion/sentinel/internal/store/storetest"
)

// BenchmarkIdlePollStatements runs the store's side of one idle poll of a
// feed with two monitors, as the monitor engine does it when Microsoft has
// nothing new: ClaimFeed, GetConnection, then FinishPoll of each monitor.
// These statements dominate the CPU of an idle Clarion, so their per-call
// overhead (statement preparation above all) is what this measures.
func BenchmarkIdlePollStatements(b *testing.B) {
	engines := []struct {
		name string
		open func(testing.TB) store.Store
	}{
		{"sqlite", storetest.SQLite},
		{"sqlite-unprepared", func(tb testing.TB) store.Store {
			s := storetest.SQLite(tb)
			store.DisableStmtCache(s)
			return s
		}},
		{"postgres", storetest.Postgres},
	}
	for _, e := range engines {
		b.Run(e.name, func(b *testing.B) {
			benchIdlePoll(b, e.open(b))
		})
	}
}

func benchIdlePoll(b *testing.B, s store.Store) {
	ctx := b.Context()
	t0 := time.Date(2024, 6, 21, 1, 0, 0, 0, time.UTC)
	const feed = "00000000-0000-0000-0000-0000000000aa"
	if err := s.CreateWorkspace(ctx, store.Workspace{ID: "w", Name: "w", CreatedAt: t0}); err != nil {
		b.Fatal(err)
	}
	if err := s.UpsertConnection(ctx, store.Connection{WorkspaceID: "w", TenantID: "t", AccountOID: "o",
		Scopes: []string{"a", "b"}, RefreshTokenEnc: []byte("ciphertext"), ConnectedAt: t0}); err != nil {
		b.Fatal(err)
	}
	for i, name := range []string{"m1", "m2"} {
		m := store.Monitor{ID: store.NewID(), WorkspaceID: "w", Name: name, SourceKind: store.SourceSIEM,
			SentinelWorkspaceID: feed, Enabled: true, CreatedAt: t0.Add(time.Duration(i)), NextPollAt: t0}
		if err := s.CreateMonitor(ctx, m); err != nil {
			b.Fatal(err)
		}
	}
	const owner = "replica-1"
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		now := t0.Add(time.Duration(i) * time.Minute)
		ms, err := s.ClaimFeed(ctx, "w", feed, owner, now, now.Add(time.Minute))
		if err != nil || len(ms) != 2 {
			b.Fatalf("ClaimFeed = %d monitors, %v; want 2", len(ms), err)
		}
		if _, err := s.GetConnection(ctx, "w"); err != nil {
			b.Fatal(err)
		}
		for _, m := range ms {
			h := m.Health
			h.Status, h.LastPollAt, h.LastSuccessAt = store.HealthHealthy, now, now
			h.Counts = store.PollCounts{Returned: 3, AlreadyKnown: 3}
			if err := s.FinishPoll(ctx, m.ID, owner, h, now.Add(time.Minute)); err != nil {
				b.Fatal(err)
			}
		}
	}
}
