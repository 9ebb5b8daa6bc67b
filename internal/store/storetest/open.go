// Package storetest is the conformance suite of store.Store: Run checks
// every method and rule of the contract against one engine. The store
// package runs it on SQLite and on PostgreSQL; a new engine must pass it
// unchanged.
//
// It also opens fresh, migrated stores for the tests of other packages:
// SQLite(t) in t.TempDir(), Postgres(t) in a schema of its own on the
// server named by CLARION_TEST_DATABASE_URL.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/clarion/sentinel/internal/store"
)

// EnvDatabaseURL names the PostgreSQL server the tests use, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable. Unset: the
// PostgreSQL tests are skipped, except under CI=true, where they fail.
const EnvDatabaseURL = "CLARION_TEST_DATABASE_URL"

// SQLiteDSN returns the DSN of a new, empty SQLite file in t.TempDir().
func SQLiteDSN(t testing.TB) string {
	t.Helper()
	return "sqlite:" + filepath.Join(t.TempDir(), "clarion.db")
}

// SQLite opens a fresh, migrated SQLite store, closed when t ends.
func SQLite(t testing.TB) store.Store {
	t.Helper()
	return open(t, SQLiteDSN(t))
}

// PostgresDSN creates a schema with a random name on the server named by
// CLARION_TEST_DATABASE_URL and returns a DSN whose search_path is that
// schema, so that parallel tests never see each other's tables. The schema
// is dropped when t ends.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	base := PostgresURL(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", EnvDatabaseURL, err)
	}
	var r [8]byte
	rand.Read(r[:])
	schema := "clarion_test_" + hex.EncodeToString(r[:])

	admin := func(stmt string) error {
		db, err := sql.Open("pgx", base)
		if err != nil {
			return err
		}
		defer db.Close()
		_, err = db.ExecContext(context.Background(), stmt)
		return err
	}
	if err := admin("CREATE SCHEMA " + schema); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	t.Cleanup(func() {
		if err := admin("DROP SCHEMA " + schema + " CASCADE"); err != nil {
			t.Errorf("drop test schema %s: %v", schema, err)
		}
	})
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// PostgresURL returns CLARION_TEST_DATABASE_URL. When it is unset it skips
// t, or fails it under CI=true: CI must not silently skip PostgreSQL.
func PostgresURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv(EnvDatabaseURL)
	if base == "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not set: CI must run the PostgreSQL tests", EnvDatabaseURL)
		}
		t.Skipf("%s is not set; set it to a PostgreSQL URL (e.g. postgres://postgres@127.0.0.1:5432/test?sslmode=disable) to run the PostgreSQL tests", EnvDatabaseURL)
	}
	return base
}

// Postgres opens a fresh, migrated PostgreSQL store in a schema of its own
// (see PostgresDSN), closed when t ends.
func Postgres(t testing.TB) store.Store {
	t.Helper()
	return open(t, PostgresDSN(t))
}

func open(t testing.TB, dsn string) store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), dsn, store.Options{AutoMigrate: true})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s
}
