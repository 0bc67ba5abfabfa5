package storetest_test

import (
	"context"
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
