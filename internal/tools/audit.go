package tools

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/clarion/sentinel/internal/store"
)

// Audit queue sizes. The queue is bounded so that a slow database pushes
// back on the calls (they wait to queue their record) instead of growing
// memory or dropping records; a batch's records are written a few at a time
// so that PostgreSQL can fold their commits into one WAL flush.
const (
	auditQueueSize    = 1024
	auditBatchSize    = 64
	auditParallel     = 4
	auditWriteTimeout = 10 * time.Second
)

// auditWriter writes the audit records of tool calls off the calls' path:
// committing a record costs a WAL flush on PostgreSQL, which an agent
// should not wait for before it sees its answer.
//
// Every record queued is written before close returns, and a record
// queued before sync is visible to a read after it, so the audit API of
// this replica reads its own calls. The risk accepted: records still in
// the queue when the process dies without Close (a crash, SIGKILL, an OOM
// kill) are lost — at most auditQueueSize of them plus the batch being
// written. Before, a crash lost only the calls in flight; their answers
// had not been sent either.
type auditWriter struct {
	store auditStore
	log   *slog.Logger

	// mu keeps senders and close apart: senders hold it shared while they
	// queue, close holds it exclusively to close the queue, so nothing is
	// ever sent on a closed channel.
	mu     sync.RWMutex
	closed bool
	queue  chan auditItem
	done   chan struct{}
}

// auditStore is the part of store.Store the writer uses.
type auditStore interface {
	InsertToolCall(ctx context.Context, c store.ToolCall) error
}

// auditItem is a record to write, or (rec nil) a barrier closed once every
// item queued before it is written.
type auditItem struct {
	rec     *store.ToolCall
	barrier chan struct{}
}

func newAuditWriter(st auditStore, log *slog.Logger) *auditWriter {
	w := &auditWriter{store: st, log: log, queue: make(chan auditItem, auditQueueSize), done: make(chan struct{})}
	go w.run()
	return w
}

// add queues a record. When the queue is full it waits for room: a record
// is never dropped. After close it writes the record itself.
func (w *auditWriter) add(rec store.ToolCall) {
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		w.write(rec)
		return
	}
	w.queue <- auditItem{rec: &rec}
	w.mu.RUnlock()
}

// sync waits until every record queued before it is written (or ctx ends).
func (w *auditWriter) sync(ctx context.Context) error {
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		select {
		case <-w.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b := make(chan struct{})
	select {
	case w.queue <- auditItem{barrier: b}:
		w.mu.RUnlock()
	case <-ctx.Done():
		w.mu.RUnlock()
		return ctx.Err()
	}
	select {
	case <-b:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// close writes what is queued and stops the writer; later records are
// written by their callers. It is idempotent.
func (w *auditWriter) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.done
}

func (w *auditWriter) run() {
	defer close(w.done)
	batch := make([]store.ToolCall, 0, auditBatchSize)
	var barriers []chan struct{}
	take := func(it auditItem) {
		if it.rec != nil {
			batch = append(batch, *it.rec)
		} else {
			barriers = append(barriers, it.barrier)
		}
	}
	for it := range w.queue {
		take(it)
	more:
		for len(batch) < auditBatchSize {
			select {
			case it, ok := <-w.queue:
				if !ok {
					break more
				}
				take(it)
			default:
				break more
			}
		}
		w.writeBatch(batch)
		for _, b := range barriers {
			close(b)
		}
		clear(batch)
		batch, barriers = batch[:0], barriers[:0]
	}
}

func (w *auditWriter) writeBatch(batch []store.ToolCall) {
	if len(batch) == 1 {
		w.write(batch[0])
		return
	}
	sem := make(chan struct{}, auditParallel)
	var wg sync.WaitGroup
	for _, rec := range batch {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			w.write(rec)
		})
	}
	wg.Wait()
}

// write inserts one record. A failure is logged, as it was when records
// were written on the call's path: the caller has its answer already.
func (w *auditWriter) write(rec store.ToolCall) {
	ctx, cancel := context.WithTimeout(context.Background(), auditWriteTimeout)
	defer cancel()
	if err := w.store.InsertToolCall(ctx, rec); err != nil {
		w.log.Error("tools: write audit record", "workspace_id", rec.WorkspaceID, "tool", rec.Tool, "err", err)
	}
}
