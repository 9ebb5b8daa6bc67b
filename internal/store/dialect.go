package store

import (
	"errors"
	"strconv"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// dialect holds the few things that differ between the engines. Every query
// is written once, with `?` placeholders, and rebound for PostgreSQL.
type dialect struct {
	name string // "sqlite" or "postgres"
	// bytesType replaces {{bytes}} in migrations.
	bytesType string
	// forUpdate is appended to a SELECT that must lock the rows it reads
	// until the transaction ends. SQLite has no row locks: its write
	// transactions are serialised (one writer, BEGIN IMMEDIATE).
	forUpdate string
	// dollar: PostgreSQL numbers its placeholders ($1, $2, …).
	dollar bool
	// lockMigrations, run first in a migration transaction, serialises
	// concurrent migrators (several replicas starting at once).
	lockMigrations string
	// tableExists returns one boolean row: does the table named by the only
	// parameter exist (in the current schema)?
	tableExists string

	rebound sync.Map // query → rebound query
}

var (
	sqliteDialect = &dialect{
		name:        "sqlite",
		bytesType:   "BLOB",
		tableExists: "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = ?",
	}
	postgresDialect = &dialect{
		name:      "postgres",
		bytesType: "BYTEA",
		forUpdate: " FOR UPDATE",
		dollar:    true,
		// An arbitrary constant shared by every clarion process ("clarion"
		// in ASCII); the lock is held until the transaction ends.
		lockMigrations: "SELECT pg_advisory_xact_lock(99108097114105111)",
		tableExists:    "SELECT to_regclass(?) IS NOT NULL",
	}
)

// q returns query with placeholders in the engine's syntax.
func (d *dialect) q(query string) string {
	if !d.dollar {
		return query
	}
	if v, ok := d.rebound.Load(query); ok {
		return v.(string)
	}
	v := rebindDollar(query)
	d.rebound.Store(query, v)
	return v
}

// rebindDollar turns each `?` outside quotes into $1, $2, …
func rebindDollar(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	var quote byte // the quote character we are inside of, or 0
	for i := 0; i < len(query); i++ {
		c := query[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// placeholders returns "?, ?, …" (n of them).
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// isBusy reports a SQLITE_BUSY error (any extended code).
func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// constraint classifies a driver error as a violated uniqueness rule
// (ErrConflict) or a missing referenced row (ErrNotFound); nil otherwise.
func constraint(err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
			return ErrConflict
		case sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY:
			return ErrNotFound
		}
		return nil
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "23505": // unique_violation
			return ErrConflict
		case "23503": // foreign_key_violation
			return ErrNotFound
		}
	}
	return nil
}
