package store

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The schema's history: one SQL file per step, named NNNN_what.sql, applied
// in number order, each in its own transaction, and recorded in
// schema_migrations (version, name, applied_at).
//
// To change the schema (skills, audit, users and sessions, …):
//
//  1. add migrations/NNNN_what.sql with the next number; never edit,
//     rename or renumber a file that has shipped;
//  2. write SQL that both engines run unchanged, following the conventions
//     at the top of 0001_init.sql ({{bytes}} is the binary column type; ids
//     TEXT, times BIGINT nanoseconds, lists JSON TEXT). SQLite's ALTER TABLE
//     is limited: add columns (with a DEFAULT when NOT NULL) or tables, don't
//     drop or retype columns in place;
//  3. add the Store methods, their SQL in this package, and their rules to
//     the conformance suite (package storetest), which runs on both engines.
//
// An older binary refuses a database that has a migration it does not know
// (ErrSchemaNewer); a newer binary refuses an unmigrated one unless asked to
// migrate (ErrSchemaOutdated).
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

// migrations is the embedded history, parsed once.
var migrations = mustParseMigrations(migrationFiles, "migrations")

// migration is one numbered schema step.
type migration struct {
	version int64  // 1 for 0001_init.sql
	name    string // "0001_init"
	sql     string
}

func mustParseMigrations(fsys fs.FS, dir string) []migration {
	m, err := parseMigrations(fsys, dir)
	if err != nil {
		panic(err)
	}
	return m
}

// parseMigrations reads dir's *.sql files, sorted by number, refusing
// malformed names and duplicate numbers.
func parseMigrations(fsys fs.FS, dir string) ([]migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("store: migrations: %w", err)
	}
	var out []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		name := strings.TrimSuffix(e.Name(), ".sql")
		num, _, ok := strings.Cut(name, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || len(num) != 4 || err != nil || v <= 0 {
			return nil, fmt.Errorf("store: migration %q: want a name like 0001_what.sql", e.Name())
		}
		b, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("store: migration %q: %w", e.Name(), err)
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	slices.SortFunc(out, func(a, b migration) int { return int(a.version - b.version) })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("store: migrations %q and %q share a number", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    BIGINT PRIMARY KEY,
	name       TEXT   NOT NULL,
	applied_at BIGINT NOT NULL
)`

// querier is *sqlStore (reads) or txn.
type querier interface {
	query(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// appliedVersions reads schema_migrations: version → name.
func appliedVersions(ctx context.Context, q querier) (map[int64]string, error) {
	applied := map[int64]string{}
	rows, err := q.query(ctx, `SELECT version, name FROM schema_migrations`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var (
			v    int64
			name string
		)
		if err := rows.Scan(&v, &name); err != nil {
			return nil, err
		}
		applied[v] = name
	}
	return applied, rows.Err()
}

// compare returns the known migrations not applied yet, and an
// ErrSchemaNewer error if the database has one this binary does not know.
func compare(known []migration, applied map[int64]string) ([]migration, error) {
	var pending []migration
	have := make(map[int64]bool, len(known))
	for _, m := range known {
		have[m.version] = true
		if _, ok := applied[m.version]; !ok {
			pending = append(pending, m)
		}
	}
	var unknown []string
	for v, name := range applied {
		if !have[v] {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return nil, fmt.Errorf("%w (database has %s)", ErrSchemaNewer, strings.Join(unknown, ", "))
	}
	return pending, nil
}

// checkSchema returns nil if every known migration is applied.
func (s *sqlStore) checkSchema(ctx context.Context, known []migration) error {
	var exists bool
	if err := s.queryRow(ctx, s.d.tableExists, "schema_migrations").Scan(&exists); err != nil {
		return fmt.Errorf("store: check schema: %w", err)
	}
	applied := map[int64]string{}
	if exists {
		var err error
		applied, err = appliedVersions(ctx, s)
		if err != nil {
			return fmt.Errorf("store: check schema: %w", err)
		}
	}
	pending, err := compare(known, applied)
	if err != nil {
		return err
	}
	if len(pending) > 0 {
		names := make([]string, len(pending))
		for i, m := range pending {
			names[i] = m.name
		}
		return fmt.Errorf("%w (missing %s)", ErrSchemaOutdated, strings.Join(names, ", "))
	}
	return nil
}

// migrate applies the pending migrations one transaction each. Each
// transaction first takes the migration lock (PostgreSQL: an advisory lock;
// SQLite: BEGIN IMMEDIATE), then re-reads what is applied, so concurrent
// migrators apply every step exactly once.
func (s *sqlStore) migrate(ctx context.Context, known []migration) ([]string, error) {
	var applied []string
	for {
		var done *migration
		err := s.inTx(ctx, func(t txn) error {
			if s.d.lockMigrations != "" {
				if _, err := t.exec(ctx, s.d.lockMigrations); err != nil {
					return err
				}
			}
			if _, err := t.exec(ctx, createMigrationsTable); err != nil {
				return err
			}
			have, err := appliedVersions(ctx, t)
			if err != nil {
				return err
			}
			pending, err := compare(known, have)
			if err != nil || len(pending) == 0 {
				return err
			}
			m := pending[0]
			// Straight to the driver: no placeholder rewriting in DDL.
			if _, err := t.tx.ExecContext(ctx, strings.ReplaceAll(m.sql, "{{bytes}}", s.d.bytesType)); err != nil {
				return fmt.Errorf("apply %s: %w", m.name, err)
			}
			if _, err := t.exec(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`,
				m.version, m.name, time.Now().UnixNano()); err != nil {
				return fmt.Errorf("record %s: %w", m.name, err)
			}
			done = &m
			return nil
		})
		if err != nil {
			if errors.Is(err, ErrSchemaNewer) {
				return applied, err
			}
			return applied, fmt.Errorf("store: migrate: %w", err)
		}
		if done == nil {
			return applied, nil
		}
		s.log.Info("store: applied migration", "engine", s.d.name, "migration", done.name)
		applied = append(applied, done.name)
	}
}
