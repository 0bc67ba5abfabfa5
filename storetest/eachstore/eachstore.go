// Package eachstore runs a test of a package over the store (fulfillment, webhooks, csvimport...)
// against every store Tally has: SQLite, and PostgreSQL through package pgtest (skipped without a
// database, except in CI). The adapters themselves are held equal by storetest's conformance suite.
package eachstore

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/postgres/pgtest"
	"github.com/tally-ledger/tally/sqlite"
)

// Run runs fn in a parallel subtest per store, named after it ("sqlite", "postgres"), on a new,
// migrated, empty store that is closed when the subtest ends (after fn's own cleanups, so a ledger
// over it is closed first).
func Run(t *testing.T, fn func(t *testing.T, s tally.Store)) {
	open := map[string]func(t *testing.T) tally.Store{
		"sqlite":   func(t *testing.T) tally.Store { return OpenSQLite(t) },
		"postgres": func(t *testing.T) tally.Store { return pgtest.Open(t) },
	}
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, open[name](t))
		})
	}
}

// OpenSQLite returns a migrated SQLite database in a temporary directory, closed when the test ends.
func OpenSQLite(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), filepath.Join(tb.TempDir(), "tally.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return db
}
