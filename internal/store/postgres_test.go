package store_test

import (
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
