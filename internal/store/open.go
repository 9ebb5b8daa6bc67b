package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// Options tune Open.
type Options struct {
	// AutoMigrate applies pending migrations on Open. Without it, Open
	// refuses a schema older than this binary with ErrSchemaOutdated.
	AutoMigrate bool
	// Logger receives one line per applied migration; nil discards.
	Logger *slog.Logger
}

// SQLite settings. busy_timeout only matters when another process (say,
// `clarion migrate` next to a running server) writes the same file: inside
// one Store every write goes through a single connection, and WAL readers
// never block it.
const (
	sqliteBusyTimeout = 10 * time.Second
	sqliteMaxReaders  = 8
	postgresMaxConns  = 20
)

// Open opens the store named by dsn:
//
//   - "postgres://…" or "postgresql://…": PostgreSQL (pgx). Any libpq URL
//     parameter works, including search_path to pick a schema; and
//     pool_max_conns=N (as pgxpool spells it) sets how many connections
//     this process opens at most (default 20): with several replicas, keep
//     their sum below the server's max_connections.
//   - "sqlite:PATH" or a plain file path: SQLite in WAL mode. The file is
//     created if missing. A "file:" URI is accepted too.
//
// The schema is checked against the embedded migrations: with
// opts.AutoMigrate the missing ones are applied; without it an older schema
// is ErrSchemaOutdated. A schema newer than this binary is ErrSchemaNewer.
func Open(ctx context.Context, dsn string, opts Options) (Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := openDB(ctx, dsn, log)
	if err != nil {
		return nil, err
	}
	if opts.AutoMigrate {
		_, err = s.migrate(ctx, migrations)
	} else {
		err = s.checkSchema(ctx, migrations)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Migrate applies the pending migrations to the database named by dsn (see
// Open) and returns the names of those it applied, in order. Each migration
// runs in its own transaction; concurrent migrators are serialised.
func Migrate(ctx context.Context, dsn string) (applied []string, err error) {
	s, err := openDB(ctx, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.migrate(ctx, migrations)
}

// openDB connects without looking at the schema.
func openDB(ctx context.Context, dsn string, log *slog.Logger) (*sqlStore, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openPostgres(ctx, dsn, log)
	case dsn == "":
		return nil, errors.New("store: open: empty database name")
	default:
		return openSQLite(ctx, strings.TrimPrefix(dsn, "sqlite:"), log)
	}
}

func openPostgres(ctx context.Context, dsn string, log *slog.Logger) (*sqlStore, error) {
	dsn, maxConns, err := poolMaxConns(dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open postgres: %w", err)
	}
	return &sqlStore{d: postgresDialect, w: db, r: db, log: log}, nil
}

// poolMaxConns takes the pool_max_conns parameter out of a postgres:// URL
// (the server would refuse it as an unknown setting) and returns it, or
// postgresMaxConns when there is none.
func poolMaxConns(dsn string) (string, int, error) {
	if !strings.Contains(dsn, "pool_max_conns") {
		return dsn, postgresMaxConns, nil // left to pgx as it is (multi-host URLs, …)
	}
	u, err := url.Parse(dsn)
	if err != nil {
		return "", 0, errors.New("the database URL does not parse") // url's error would repeat the URL, password included
	}
	q := u.Query()
	v := q.Get("pool_max_conns")
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return "", 0, fmt.Errorf("pool_max_conns=%q: want a whole number of connections, at least 1", v)
	}
	q.Del("pool_max_conns")
	u.RawQuery = q.Encode()
	return u.String(), n, nil
}

// openSQLite opens two pools on one file: a writer of exactly one
// connection, whose transactions begin IMMEDIATE (so a transaction never
// has to upgrade a read lock, which is where SQLITE_BUSY comes from), and
// query-only readers. In WAL mode readers and the writer never block each
// other, so API reads never make a poll's writes fail.
func openSQLite(ctx context.Context, path string, log *slog.Logger) (*sqlStore, error) {
	if path == "" || path == ":memory:" || strings.Contains(path, "mode=memory") {
		return nil, errors.New("store: open sqlite: an in-memory database is not supported, give a file path")
	}
	base, query := path, ""
	if strings.HasPrefix(path, "file:") {
		if i := strings.IndexByte(path, '?'); i >= 0 {
			base, query = path[:i], path[i+1:]
		}
	} else if strings.ContainsRune(path, '?') {
		return nil, fmt.Errorf("store: open sqlite: the path %q contains '?'; use a file: URI", path)
	}
	params := func(extra ...string) string {
		v := url.Values{}
		v.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", sqliteBusyTimeout.Milliseconds()))
		v.Add("_pragma", "foreign_keys(1)")
		for i := 0; i+1 < len(extra); i += 2 {
			v.Add(extra[i], extra[i+1])
		}
		s := v.Encode()
		if query != "" {
			s = query + "&" + s
		}
		return base + "?" + s
	}

	w, err := sql.Open("sqlite", params(
		"_pragma", "synchronous(NORMAL)",
		"_txlock", "immediate",
	))
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxIdleTime(0)
	w.SetConnMaxLifetime(0)
	// Connect the writer first: it creates the file and switches it to WAL
	// before any reader looks at it.
	if err := enableWAL(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}

	r, err := sql.Open("sqlite", params("_pragma", "query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open sqlite: %w", err)
	}
	n := max(4, min(runtime.GOMAXPROCS(0)*2, sqliteMaxReaders))
	r.SetMaxOpenConns(n)
	r.SetMaxIdleConns(n)
	return &sqlStore{d: sqliteDialect, w: w, r: r, ws: newStmtCache(w), rs: newStmtCache(r), log: log}, nil
}

// enableWAL switches the file to WAL (a persistent setting). Switching
// needs an exclusive lock, and SQLite reports SQLITE_BUSY at once, without
// waiting busy_timeout, when another connection is opening or migrating
// the same new file; so that case is retried for up to sqliteBusyTimeout.
func enableWAL(ctx context.Context, db *sql.DB) error {
	deadline := time.Now().Add(sqliteBusyTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		var mode string
		err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode)
		switch {
		case err == nil && strings.EqualFold(mode, "wal"):
			return nil
		case err == nil:
			return fmt.Errorf("journal mode is %q, not WAL (does the file system support WAL?)", mode)
		case !isBusy(err) || time.Now().After(deadline):
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}
