package tools

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"

	"github.com/clarion/sentinel/internal/store"
)

// gatedStore keeps the audit records it is given, each insert waiting until
// the gate opens, so that a test can hold the writer still.
type gatedStore struct {
	gate chan struct{}
	mu   sync.Mutex
	recs []store.ToolCall
}

func (s *gatedStore) InsertToolCall(ctx context.Context, c store.ToolCall) error {
	<-s.gate
	s.mu.Lock()
	s.recs = append(s.recs, c)
	s.mu.Unlock()
	return nil
}

func (s *gatedStore) ids() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]bool{}
	for _, r := range s.recs {
		out[r.ID] = true
	}
	return out
}

func auditRec(i int) store.ToolCall {
	return store.ToolCall{ID: fmt.Sprintf("call-%05d", i), WorkspaceID: "w", Tool: "query_lake", Outcome: CodeOK}
}

// TestAuditWriterWaitsForRoomInsteadOfDropping: with the database stalled,
// calls queue their records until the queue is full and then wait; once the
// database moves again every record is written, none twice.
func TestAuditWriterWaitsForRoomInsteadOfDropping(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := &gatedStore{gate: make(chan struct{})}
		w := newAuditWriter(st, slog.New(slog.DiscardHandler))
		total := auditQueueSize + auditBatchSize + 50
		var added atomic.Int64
		done := make(chan struct{})
		for p := range 5 { // several callers at once
			go func() {
				for i := p; i < total; i += 5 {
					w.add(auditRec(i))
					added.Add(1)
				}
				done <- struct{}{}
			}()
		}
		synctest.Wait()
		if n := added.Load(); n >= int64(total) || n < auditQueueSize {
			t.Fatalf("%d of %d records queued while the database was stalled; want the queue (%d) full and the rest waiting", n, total, auditQueueSize)
		}
		close(st.gate)
		for range 5 {
			<-done
		}
		w.close()
		if got := st.ids(); len(got) != total || len(st.recs) != total {
			t.Fatalf("%d records written (%d distinct), want %d", len(st.recs), len(got), total)
		}
	})
}

// TestAuditWriterCloseAndSyncWaitForTheQueue: close returns once the queued
// records are written; sync returns once those queued before it are; a
// record added after close is written before add returns.
func TestAuditWriterCloseAndSyncWaitForTheQueue(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := &gatedStore{gate: make(chan struct{})}
		w := newAuditWriter(st, slog.New(slog.DiscardHandler))
		for i := range 100 {
			w.add(auditRec(i))
		}
		synced := make(chan error, 1)
		go func() { synced <- w.sync(context.Background()) }()
		closed := make(chan struct{})
		go func() { w.close(); close(closed) }()
		synctest.Wait()
		select {
		case err := <-synced:
			t.Fatalf("sync returned (%v) before the records were written", err)
		case <-closed:
			t.Fatal("close returned before the records were written")
		default:
		}

		close(st.gate)
		<-closed
		if err := <-synced; err != nil {
			t.Fatal(err)
		}
		if got := len(st.ids()); got != 100 {
			t.Fatalf("%d records written by close, want 100", got)
		}
		w.add(auditRec(100))
		if !st.ids()["call-00100"] {
			t.Fatal("a record added after close was not written")
		}
		w.close() // idempotent
		if err := w.sync(context.Background()); err != nil {
			t.Fatalf("sync after close: %v", err)
		}
	})
}

// TestAuditWriterSyncGivesUpWithItsContext: a reader whose request ends
// does not wait for a stalled database.
func TestAuditWriterSyncGivesUpWithItsContext(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		st := &gatedStore{gate: make(chan struct{})}
		w := newAuditWriter(st, slog.New(slog.DiscardHandler))
		w.add(auditRec(0))
		ctx, cancel := context.WithCancel(context.Background())
		synced := make(chan error, 1)
		go func() { synced <- w.sync(ctx) }()
		synctest.Wait()
		cancel()
		if err := <-synced; err == nil {
			t.Fatal("sync returned nil with its context cancelled and the record unwritten")
		}
		close(st.gate)
		w.close()
	})
}
