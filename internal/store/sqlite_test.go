package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/store"
	"github.com/clarion/sentinel/internal/store/storetest"
)

func TestSQLite(t *testing.T) {
	t.Parallel()
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.SQLite(t) })
}

func TestSQLiteDSNForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		dsn     func(dir string) string
		wantErr bool
	}{
		{"sqlite: prefix", func(dir string) string { return "sqlite:" + filepath.Join(dir, "a.db") }, false},
		{"plain path", func(dir string) string { return filepath.Join(dir, "b.db") }, false},
		{"file URI", func(dir string) string { return "file:" + filepath.Join(dir, "c.db") + "?cache=private" }, false},
		{"in memory", func(string) string { return ":memory:" }, true},
		{"sqlite: with nothing", func(string) string { return "sqlite:" }, true},
		{"empty", func(string) string { return "" }, true},
		{"question mark in a plain path", func(dir string) string { return filepath.Join(dir, "what?.db") }, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, err := store.Open(t.Context(), tc.dsn(t.TempDir()), store.Options{AutoMigrate: true})
			if tc.wantErr {
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded, want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if s.Engine() != "sqlite" {
				t.Fatalf("Engine() = %q", s.Engine())
			}
			if err := s.CreateWorkspace(t.Context(), store.Workspace{ID: "w", Name: "w"}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSQLiteFileIsWAL(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "clarion.db")
	s, err := store.Open(t.Context(), path, store.Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var mode string
	if err := db.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Fatalf("journal_mode = %q, want wal", mode)
	}
}

// TestSQLitePollWritesUnderConcurrentReads: a poll's writes never fail with
// SQLITE_BUSY while the API reads as hard as it can, and a second store on
// the same file (say, a `clarion migrate` next to the server) only waits.
func TestSQLitePollWritesUnderConcurrentReads(t *testing.T) {
	t.Parallel()
	dsn := storetest.SQLiteDSN(t)
	open := func() store.Store {
		s, err := store.Open(context.Background(), dsn, store.Options{AutoMigrate: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	s, other := open(), open()
	ctx := t.Context()
	t0 := time.Date(2024, 6, 21, 1, 0, 0, 0, time.UTC)
	if err := s.CreateWorkspace(ctx, store.Workspace{ID: "w", Name: "w", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	mons := make([]store.Monitor, 4)
	for i := range mons {
		mons[i] = store.Monitor{ID: store.NewID(), WorkspaceID: "w", Name: fmt.Sprint("m", i), SourceKind: store.SourceSIEM, Enabled: true, CreatedAt: t0}
		if err := s.CreateMonitor(ctx, mons[i]); err != nil {
			t.Fatal(err)
		}
	}

	done := make(chan struct{})
	var readers sync.WaitGroup
	for i := range 6 {
		readers.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				var err error
				switch i % 3 {
				case 0:
					_, err = s.ListAlerts(ctx, "w", store.AlertFilter{Limit: 100})
				case 1:
					_, err = s.ListMonitors(ctx, "w")
				case 2:
					_, err = other.ListAlerts(ctx, "w", store.AlertFilter{})
				}
				if err != nil {
					t.Errorf("read: %v", err)
					return
				}
			}
		})
	}

	var writers sync.WaitGroup
	errs := make(chan error, len(mons)*2)
	for i, m := range mons {
		st := s
		if i%2 == 1 {
			st = other // a second writer on the same file
		}
		writers.Go(func() {
			owner := "poller-" + m.ID
			for round := range 25 {
				now := t0.Add(time.Duration(round) * time.Minute)
				if _, ok, err := st.ClaimPoll(ctx, m.ID, owner, now, now.Add(time.Minute)); err != nil || !ok {
					errs <- fmt.Errorf("claim %d: ok=%v %w", round, ok, err)
					return
				}
				page := make([]store.Alert, 10)
				for j := range page {
					page[j] = store.Alert{ID: store.NewID(), IncidentID: fmt.Sprintf("%s-%d-%d", m.ID, round, j),
						Severity: "high", IngestedAt: now, Payload: []byte(`{"x":1}`)}
				}
				if _, err := st.CommitPage(ctx, m.ID, owner, page, store.Progress{Watermark: now}); err != nil {
					errs <- fmt.Errorf("commit %d: %w", round, err)
					return
				}
				if err := st.FinishPoll(ctx, m.ID, owner, store.Health{Status: store.HealthHealthy, LastPollAt: now}, now.Add(time.Minute)); err != nil {
					errs <- fmt.Errorf("finish %d: %w", round, err)
					return
				}
			}
		})
	}
	writers.Wait()
	close(done)
	readers.Wait()
	close(errs)
	for err := range errs {
		if strings.Contains(err.Error(), "SQLITE_BUSY") || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("write failed under concurrent reads: %v", err)
		} else {
			t.Error(err)
		}
	}
	known, err := s.KnownIncidents(ctx, "w", []string{mons[0].ID + "-24-9", mons[3].ID + "-0-0"})
	if err != nil || len(known) != 2 {
		t.Fatalf("KnownIncidents = %v, %v; want both", known, err)
	}
}
