package store

import (
	"context"
	"io/fs"
	"log/slog"
)

// MigrationNames lists the embedded migrations, in order.
func MigrationNames() []string {
	names := make([]string, len(migrations))
	for i, m := range migrations {
		names[i] = m.name
	}
	return names
}

// ParseMigrations parses the *.sql files at the root of fsys.
func ParseMigrations(fsys fs.FS) ([]string, error) {
	ms, err := parseMigrations(fsys, ".")
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.name
	}
	return names, err
}

// MigrateFS is Migrate with the migrations at the root of fsys instead of
// the embedded ones.
func MigrateFS(ctx context.Context, dsn string, fsys fs.FS) ([]string, error) {
	ms, err := parseMigrations(fsys, ".")
	if err != nil {
		return nil, err
	}
	s, err := openDB(ctx, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		return nil, err
	}
	defer s.Close()
	return s.migrate(ctx, ms)
}

// CheckFS is Open's schema check against the migrations in fsys.
func CheckFS(ctx context.Context, dsn string, fsys fs.FS) error {
	ms, err := parseMigrations(fsys, ".")
	if err != nil {
		return err
	}
	s, err := openDB(ctx, dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer s.Close()
	return s.checkSchema(ctx, ms)
}

// DisableStmtCache makes s run every statement unprepared, as it did before
// the statement cache, for benchmarks that compare the two. Call it before
// using s.
func DisableStmtCache(s Store) {
	ss := s.(*sqlStore)
	ss.ws.close()
	ss.rs.close()
	ss.ws, ss.rs = nil, nil
}
