package store

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// stmtCacheLimit bounds the SQL texts one pool keeps prepared. The store's
// fixed statements number well under a hundred; the rest of the room goes
// to texts built with a variable row count (alertInsert(n), IN lists),
// and past the limit a text simply runs unprepared, as every text did
// before.
const stmtCacheLimit = 256

// stmtCache keeps one prepared statement per SQL text for one SQLite pool.
// Without it every call parses and plans its SQL anew and finalizes it: in
// a profile of an idle Clarion polling its monitors, about a tenth of the
// process's CPU went to sqlite3_prepare. modernc.org/sqlite keeps the
// parsed statement of a prepared single-statement text and resets it
// between uses; database/sql prepares a *sql.Stmt once on each connection
// of the pool that runs it.
//
// PostgreSQL gets none: pgx's database/sql driver already keeps prepared
// statements per connection, keyed by SQL text. A nil *stmtCache caches
// nothing, so callers need no engine check.
type stmtCache struct {
	db    *sql.DB
	limit int
	// stmts maps SQL text → *sql.Stmt. A sync.Map because, once warm, every
	// call only reads it, from many goroutines at once on the reader pool.
	stmts sync.Map

	mu     sync.Mutex // guards the rest, and every store into stmts
	n      int        // entries in stmts
	missed map[string]struct{}
	closed bool
}

func newStmtCache(db *sql.DB) *stmtCache {
	return &stmtCache{db: db, limit: stmtCacheLimit, missed: map[string]struct{}{}}
}

// get returns the prepared statement of query, preparing it on first use.
// nil means run query unprepared: the cache is full or closed, or the
// prepare failed, in which case running query unprepared fails the same
// way and the caller reports that error as before.
//
// Not for use inside a transaction on this pool (see lookupInTx).
func (c *stmtCache) get(ctx context.Context, query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	if st, ok := c.stmts.Load(query); ok {
		return st.(*sql.Stmt)
	}
	c.mu.Lock()
	full := c.closed || c.n >= c.limit
	c.mu.Unlock()
	if full {
		return nil
	}
	// Prepared without the lock: on the writer pool it waits for the one
	// connection, and a transaction holding that connection may be waiting
	// for the lock in lookupInTx.
	st, err := c.db.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	kept, extra := c.add(query, st)
	if extra != nil {
		extra.Close() // it only ever held driver statements; nothing to report
	}
	return kept
}

// add stores st as query's statement unless another goroutine got there
// first or there is no room; it returns the statement to use (nil: run
// unprepared) and the one to close.
func (c *stmtCache) add(query string, st *sql.Stmt) (kept, extra *sql.Stmt) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.stmts.Load(query); ok {
		return prev.(*sql.Stmt), st
	}
	if c.closed || c.n >= c.limit {
		return nil, st
	}
	c.stmts.Store(query, st)
	c.n++
	return st, nil
}

// lookupInTx returns query's statement, if it is prepared, for a
// transaction of this pool to bind with tx.StmtContext. A text met first
// inside a transaction is not prepared then: db.PrepareContext needs a
// connection of its own, and on SQLite the transaction holds the writer's
// only one, so it would wait forever. The text is noted instead and
// prepared by prepareMissed once the transaction is over.
func (c *stmtCache) lookupInTx(query string) *sql.Stmt {
	if c == nil {
		return nil
	}
	if st, ok := c.stmts.Load(query); ok {
		return st.(*sql.Stmt)
	}
	c.mu.Lock()
	if !c.closed && c.n+len(c.missed) < c.limit {
		c.missed[query] = struct{}{}
	}
	c.mu.Unlock()
	return nil
}

// prepareMissed prepares the texts lookupInTx noted. Run it after a
// transaction ends, never inside one. A text that fails to prepare now
// (ctx ended, say) is noted again the next time a transaction runs it.
func (c *stmtCache) prepareMissed(ctx context.Context) {
	if c == nil {
		return
	}
	c.mu.Lock()
	if len(c.missed) == 0 {
		c.mu.Unlock()
		return
	}
	missed := c.missed
	c.missed = map[string]struct{}{}
	c.mu.Unlock()
	for query := range missed {
		c.get(ctx, query)
	}
}

// close closes the statements and stops caching; later calls run
// unprepared (and fail on the closed pool as they did before the cache).
// A statement still in use by a transaction is released by database/sql
// when that use ends.
func (c *stmtCache) close() error {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	c.closed = true
	c.missed = nil
	c.n = 0
	c.mu.Unlock()
	// add stores nothing once closed is set, so this sees every statement.
	var errs []error
	c.stmts.Range(func(query, st any) bool {
		c.stmts.Delete(query)
		errs = append(errs, st.(*sql.Stmt).Close())
		return true
	})
	return errors.Join(errs...)
}
