package store_test

import (
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/clarion/sentinel/internal/store"
	"github.com/clarion/sentinel/internal/store/storetest"
)

// engine is how a migration test gets a fresh, empty database.
type engine struct {
	name string
	dsn  func(t testing.TB) string
}

var engines = []engine{
	{"sqlite", storetest.SQLiteDSN},
	{"postgres", storetest.PostgresDSN},
}

// rawDB opens the database behind dsn directly, to tamper with it.
func rawDB(t *testing.T, dsn string) *sql.DB {
	t.Helper()
	driver, name := "pgx", dsn
	if !strings.HasPrefix(dsn, "postgres") {
		driver, name = "sqlite", strings.TrimPrefix(dsn, "sqlite:")
	}
	db, err := sql.Open(driver, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func forEachEngine(t *testing.T, fn func(t *testing.T, dsn string)) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			fn(t, e.dsn(t))
		})
	}
}

func openErr(t *testing.T, dsn string, opts store.Options) error {
	t.Helper()
	s, err := store.Open(t.Context(), dsn, opts)
	if err == nil {
		s.Close()
	}
	return err
}

func TestEmbeddedMigrationsAreNumberedInOrder(t *testing.T) {
	t.Parallel()
	names := store.MigrationNames()
	if len(names) == 0 || names[0] != "0001_init" {
		t.Fatalf("migrations = %v, want 0001_init first", names)
	}
	for i, n := range names {
		if want := fmt.Sprintf("%04d_", i+1); !strings.HasPrefix(n, want) {
			t.Fatalf("migration %d is %q, want the numbers without gaps", i, n)
		}
	}
}

func TestMigrateFreshDatabase(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		if err := openErr(t, dsn, store.Options{}); !errors.Is(err, store.ErrSchemaOutdated) {
			t.Fatalf("Open of an empty database without AutoMigrate: %v, want ErrSchemaOutdated", err)
		}
		applied, err := store.Migrate(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(applied, store.MigrationNames()) {
			t.Fatalf("applied %v, want %v", applied, store.MigrationNames())
		}
		again, err := store.Migrate(ctx, dsn)
		if err != nil || len(again) != 0 {
			t.Fatalf("second Migrate applied %v, %v; want nothing", again, err)
		}
		if err := openErr(t, dsn, store.Options{}); err != nil {
			t.Fatalf("Open of a migrated database: %v", err)
		}
	})
}

func TestOpenRefusesMissingMigration(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, dsn string) {
		if _, err := store.Migrate(t.Context(), dsn); err != nil {
			t.Fatal(err)
		}
		if _, err := rawDB(t, dsn).ExecContext(t.Context(), "DELETE FROM schema_migrations WHERE version = 1"); err != nil {
			t.Fatal(err)
		}
		err := openErr(t, dsn, store.Options{})
		if !errors.Is(err, store.ErrSchemaOutdated) || !strings.Contains(err.Error(), "0001_init") {
			t.Fatalf("Open: %v, want ErrSchemaOutdated naming 0001_init", err)
		}
	})
}

func TestNewerSchemaRefused(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, dsn string) {
		if _, err := store.Migrate(t.Context(), dsn); err != nil {
			t.Fatal(err)
		}
		if _, err := rawDB(t, dsn).ExecContext(t.Context(),
			"INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_from_the_future', 0)"); err != nil {
			t.Fatal(err)
		}
		for _, opts := range []store.Options{{}, {AutoMigrate: true}} {
			if err := openErr(t, dsn, opts); !errors.Is(err, store.ErrSchemaNewer) {
				t.Fatalf("Open(%+v): %v, want ErrSchemaNewer", opts, err)
			}
		}
		if _, err := store.Migrate(t.Context(), dsn); !errors.Is(err, store.ErrSchemaNewer) {
			t.Fatalf("Migrate: %v, want ErrSchemaNewer", err)
		}
	})
}

// TestConcurrentMigrateAppliesEachOnce: replicas (or a server and a
// `clarion migrate`) starting together on a new database all succeed, and
// each migration is applied once. Several rounds, since the interesting
// interleavings (two connections switching a new SQLite file to WAL) are
// narrow.
func TestConcurrentMigrateAppliesEachOnce(t *testing.T) {
	t.Parallel()
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			for round := range 10 {
				dsn := e.dsn(t)
				var (
					wg  sync.WaitGroup
					mu  sync.Mutex
					all []string
				)
				for range 4 {
					wg.Go(func() {
						applied, err := store.Migrate(t.Context(), dsn)
						if err != nil {
							t.Errorf("round %d: Migrate: %v", round, err)
						}
						mu.Lock()
						all = append(all, applied...)
						mu.Unlock()
					})
				}
				wg.Wait()
				slices.Sort(all)
				if !slices.Equal(all, store.MigrationNames()) {
					t.Fatalf("round %d: applied %v in total, want each of %v once", round, all, store.MigrationNames())
				}
			}
		})
	}
}

func TestMigrationFailureRollsBack(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		fsys := fstest.MapFS{
			"0001_a.sql": {Data: []byte("CREATE TABLE a (id TEXT PRIMARY KEY, data {{bytes}});\nCREATE INDEX a_data ON a (data);")},
			"0002_b.sql": {Data: []byte("CREATE TABLE b (id TEXT PRIMARY KEY);\nINSERT INTO no_such_table VALUES (1);")},
		}
		applied, err := store.MigrateFS(ctx, dsn, fsys)
		if err == nil || !strings.Contains(err.Error(), "0002_b") {
			t.Fatalf("Migrate: %v, want a failure naming 0002_b", err)
		}
		if !slices.Equal(applied, []string{"0001_a"}) {
			t.Fatalf("applied %v, want [0001_a]", applied)
		}
		db := rawDB(t, dsn)
		if _, err := db.ExecContext(ctx, "SELECT id FROM b"); err == nil {
			t.Fatal("table b exists: the failed migration was not rolled back")
		}
		if err := store.CheckFS(ctx, dsn, fsys); !errors.Is(err, store.ErrSchemaOutdated) {
			t.Fatalf("check: %v, want ErrSchemaOutdated", err)
		}

		fsys["0002_b.sql"] = &fstest.MapFile{Data: []byte("CREATE TABLE b (id TEXT PRIMARY KEY);")}
		applied, err = store.MigrateFS(ctx, dsn, fsys)
		if err != nil || !slices.Equal(applied, []string{"0002_b"}) {
			t.Fatalf("Migrate after the fix: %v, %v; want [0002_b]", applied, err)
		}
		if err := store.CheckFS(ctx, dsn, fsys); err != nil {
			t.Fatalf("check: %v", err)
		}
		if _, err := db.ExecContext(ctx, "INSERT INTO a (id, data) VALUES ('x', NULL)"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestParseMigrations(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		files   []string
		want    []string
		wantErr bool
	}{
		{"sorted by number", []string{"0010_j.sql", "0002_b.sql", "0001_a.sql", "README.md"}, []string{"0001_a", "0002_b", "0010_j"}, false},
		{"duplicate number", []string{"0001_a.sql", "0001_b.sql"}, nil, true},
		{"no description", []string{"0001.sql"}, nil, true},
		{"short number", []string{"1_a.sql"}, nil, true},
		{"not a number", []string{"abcd_a.sql"}, nil, true},
		{"zero", []string{"0000_a.sql"}, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fsys := fstest.MapFS{}
			for _, f := range tc.files {
				fsys[f] = &fstest.MapFile{Data: []byte("SELECT 1;")}
			}
			got, err := store.ParseMigrations(fsys)
			if (err != nil) != tc.wantErr {
				t.Fatalf("error = %v, wantErr %v", err, tc.wantErr)
			}
			if !tc.wantErr && !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
