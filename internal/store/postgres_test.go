package store_test

import (
	"strings"
	"testing"

	"github.com/clarion/sentinel/internal/store"
	"github.com/clarion/sentinel/internal/store/storetest"
)

// TestPostgres runs the conformance suite on the server named by
// CLARION_TEST_DATABASE_URL, each subtest in a schema of its own.
func TestPostgres(t *testing.T) {
	t.Parallel()
	storetest.PostgresURL(t) // skip (or, under CI, fail) once, not per subtest
	storetest.Run(t, func(t *testing.T) store.Store { return storetest.Postgres(t) })
}

// TestPostgresPoolMaxConns: pool_max_conns in the URL sizes the process's
// pool and is not passed on to the server (which would refuse it).
func TestPostgresPoolMaxConns(t *testing.T) {
	t.Parallel()
	dsn := storetest.PostgresDSN(t)
	tests := []struct {
		value   string
		wantErr bool
	}{
		{"2", false},
		{"0", true},
		{"many", true},
		{"", true},
	}
	for _, tc := range tests {
		t.Run("pool_max_conns="+tc.value, func(t *testing.T) {
			s, err := store.Open(t.Context(), dsn+"&pool_max_conns="+tc.value, store.Options{AutoMigrate: true})
			if tc.wantErr {
				if err == nil {
					s.Close()
					t.Fatal("Open succeeded, want an error")
				}
				if !strings.Contains(err.Error(), "pool_max_conns") {
					t.Fatalf("error %q does not name pool_max_conns", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.CreateWorkspace(t.Context(), store.Workspace{ID: "w", Name: "w"}); err != nil {
				t.Fatal(err)
			}
		})
	}
}
