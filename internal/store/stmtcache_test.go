package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func setup(t *testing.T) *sqlStore {
	t.Helper()
	st, err := Open(t.Context(), filepath.Join(t.TempDir(), "clarion.db"), Options{AutoMigrate: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(*sqlStore)
}

// entries counts c's statements and checks them against its counter.
func entries(t *testing.T, c *stmtCache) int {
	t.Helper()
	n := 0
	c.stmts.Range(func(any, any) bool { n++; return true })
	c.mu.Lock()
	defer c.mu.Unlock()
	if n != c.n {
		t.Fatalf("cache holds %d statements but counts %d", n, c.n)
	}
	return n
}

func cached(c *stmtCache, query string) bool {
	_, ok := c.stmts.Load(query)
	return ok
}

func TestStmtCacheKeepsOneStatementPerTextUnderConcurrentFirstUse(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	before := entries(t, s.rs)
	const q = `SELECT count(*) FROM monitors WHERE workspace_id = ?`
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			var n int
			if err := s.queryRow(ctx, q, "w").Scan(&n); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if !cached(s.rs, q) {
		t.Fatal("the statement was not cached")
	}
	if got := entries(t, s.rs); got != before+1 {
		t.Fatalf("cache holds %d statements, want %d", got, before+1)
	}
}

func TestStmtCacheRunsTextsUnpreparedPastItsLimit(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	s.rs.limit = entries(t, s.rs) + 2
	for i := range 5 {
		var n int
		q := fmt.Sprintf(`SELECT %d FROM workspaces WHERE id = ? UNION ALL SELECT %d`, i, i)
		if err := s.queryRow(ctx, q, "none").Scan(&n); err != nil || n != i {
			t.Fatalf("text %d: got %d, %v", i, n, err)
		}
	}
	if got := entries(t, s.rs); got != s.rs.limit {
		t.Fatalf("cache holds %d statements, want its limit %d", got, s.rs.limit)
	}
}

func TestStmtCachePreparesATextFirstMetInATransactionAfterIt(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	const (
		ins = `INSERT INTO workspaces (id, name, created_at) VALUES (?, ?, 0)`
		sel = `SELECT name FROM workspaces WHERE id = ?`
	)
	run := func(id string, fail bool) error {
		return s.inTx(ctx, func(t txn) error {
			if _, err := t.exec(ctx, ins, id, "name-"+id); err != nil {
				return err
			}
			rows, err := t.query(ctx, sel, id)
			if err != nil {
				return err
			}
			defer rows.Close()
			if !rows.Next() {
				return fmt.Errorf("%s not found in its transaction: %v", id, rows.Err())
			}
			if fail {
				return errors.New("roll back")
			}
			return rows.Close()
		})
	}
	if err := run("a", false); err != nil {
		t.Fatal(err)
	}
	if !cached(s.ws, ins) || !cached(s.ws, sel) {
		t.Fatal("texts first met in a transaction were not prepared after it")
	}
	// Now through the cached statements, committed and rolled back.
	if err := run("b", false); err != nil {
		t.Fatal(err)
	}
	if err := run("c", true); err == nil || err.Error() != "roll back" {
		t.Fatalf("rolled back transaction: %v", err)
	}
	for id, want := range map[string]error{"a": nil, "b": nil, "c": sql.ErrNoRows} {
		var name string
		if err := s.queryRow(ctx, sel, id).Scan(&name); !errors.Is(err, want) {
			t.Errorf("workspace %s: %v, want %v", id, err, want)
		}
	}
}

func TestStmtCacheLeavesAFailedPrepareToTheUnpreparedCall(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	const q = `SELECT id FROM nowhere WHERE id = ?`
	err := s.queryRow(ctx, q, "x").Scan(new(string))
	if err == nil || !strings.Contains(err.Error(), "no such table") {
		t.Fatalf("got %v, want the driver's no such table error", err)
	}
	if cached(s.rs, q) {
		t.Fatal("a text that failed to prepare was cached")
	}
}

func TestStmtCacheCallsAfterCloseFailAsWithoutIt(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	const q = `SELECT name FROM workspaces WHERE id = ?`
	var name string
	if err := s.queryRow(ctx, q, "x").Scan(&name); !errors.Is(err, sql.ErrNoRows) {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, s.rs) + entries(t, s.ws); got != 0 {
		t.Fatalf("%d statements left after Close", got)
	}
	if err := s.queryRow(ctx, q, "x").Scan(&name); err == nil || !strings.Contains(err.Error(), "database is closed") {
		t.Fatalf("read after Close: %v", err)
	}
	if _, err := s.exec(ctx, `DELETE FROM workspaces WHERE id = ?`, "x"); err == nil || !strings.Contains(err.Error(), "database is closed") {
		t.Fatalf("write after Close: %v", err)
	}
}
