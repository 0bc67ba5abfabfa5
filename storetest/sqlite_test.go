package storetest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/sqlite"
	"github.com/tally-ledger/tally/storetest"
)

func TestSQLite(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t testing.TB) tally.Store {
			db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "tally.db"))
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Migrate(context.Background()); err != nil {
				t.Fatal(err)
			}
			return db
		},
		Exec: func(t testing.TB, s tally.Store, sql string) {
			t.Helper()
			if _, err := s.(*sqlite.DB).SQL().Exec(sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		},
		Dump: func(t testing.TB, s tally.Store) []byte {
			t.Helper()
			db := s.(*sqlite.DB)
			if _, err := db.SQL().Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
				t.Fatal(err)
			}
			var all []byte
			files, _ := filepath.Glob(db.Path() + "*")
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, b...)
			}
			return all
		},
	})
}
