package storetest_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/sqlite"
	"github.com/tally-ledger/tally/storetest"
)

func TestSQLiteCredentials(t *testing.T) {
	storetest.RunCredentials(t, func(t testing.TB) tally.CredentialStore {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "tally.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		if err := db.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return db
	})
}

// TestSQLiteKeysAtRest steals the signing keys from a copy of the database file (VACUUM INTO), read
// with the SQLite driver alone.
func TestSQLiteKeysAtRest(t *testing.T) {
	open := func(t testing.TB) tally.CredentialStore {
		db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "tally.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		if err := db.Migrate(context.Background()); err != nil {
			t.Fatal(err)
		}
		return db
	}
	storetest.RunKeysAtRest(t, open, func(t testing.TB, s tally.CredentialStore) []storetest.StolenRow {
		ctx := context.Background()
		stolen := filepath.Join(t.TempDir(), "stolen.db")
		if _, err := s.(*sqlite.DB).SQL().ExecContext(ctx, `VACUUM INTO ?`, stolen); err != nil {
			t.Fatal(err)
		}
		db, err := sql.Open("sqlite", stolen)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rows, err := db.QueryContext(ctx, `SELECT * FROM signing_keys`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		var out []storetest.StolenRow
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			row := storetest.StolenRow{}
			for i, c := range cols {
				row[c] = vals[i]
			}
			out = append(out, row)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	})
}
