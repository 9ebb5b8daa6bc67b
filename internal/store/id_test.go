package store_test

import (
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/clarion/sentinel/internal/store"
)

var uuidV7 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestNewIDIsAUUIDv7(t *testing.T) {
	t.Parallel()
	before := time.Now().UnixMilli()
	id := store.NewID()
	after := time.Now().UnixMilli()
	if !uuidV7.MatchString(id) {
		t.Fatalf("NewID() = %q, not a canonical UUIDv7", id)
	}
	var ms int64
	for _, c := range id[0:8] + id[9:13] {
		ms = ms<<4 | int64(hexVal(c))
	}
	// Strict ordering may run the clock of the ids a little ahead of the
	// wall clock while ids are made faster than one per 250 ns.
	if ms < before || ms > after+1000 {
		t.Fatalf("timestamp %d outside [%d, %d]", ms, before, after)
	}
}

func hexVal(c rune) int {
	if c >= 'a' {
		return int(c-'a') + 10
	}
	return int(c - '0')
}

func TestNewIDSortsByCreation(t *testing.T) {
	t.Parallel()
	prev := store.NewID()
	for range 10000 {
		id := store.NewID()
		if id <= prev {
			t.Fatalf("%q came after %q", id, prev)
		}
		prev = id
	}
}

func TestNewIDUniqueAcrossGoroutines(t *testing.T) {
	t.Parallel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[string]bool{}
	)
	for range 8 {
		wg.Go(func() {
			ids := make([]string, 2000)
			for i := range ids {
				ids[i] = store.NewID()
			}
			mu.Lock()
			defer mu.Unlock()
			for _, id := range ids {
				if seen[id] {
					t.Errorf("duplicate id %s", id)
				}
				seen[id] = true
			}
		})
	}
	wg.Wait()
}
