package main

import (
	"context"
	"strings"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/sqlite"
)

// Tests of the commands that read the ledger first write some history into it, through the ledger as
// serve would, behind the CLI's back.

// testCustomerSecret hashes the customers of the tests that do not need the CLI to know the secret.
const testCustomerSecret = "cli-test-secret-0123456789"

// migratedDB is a new embedded database migrated by tally migrate, which keeps its ledger key beside it.
func migratedDB(t *testing.T) string {
	t.Helper()
	db := tempDB(t)
	mustCLI(t, "migrate", "--db", db)
	return db
}

// mustOpenLedger opens the embedded database db and a ledger over it, keyed with the ledger key the CLI
// keeps beside the database. Close the ledger (it finishes its writes), then the store, before the CLI
// writes to the database.
func mustOpenLedger(t *testing.T, db string, opts ledger.Options) (*sqlite.DB, *ledger.Service) {
	t.Helper()
	path := strings.TrimPrefix(db, "sqlite:")
	store, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	opts.Key = mustKeyFile(t, path)
	return store, ledger.New(store, opts)
}

// mustHasher is the customer hasher of secret.
func mustHasher(t *testing.T, secret string) *tally.CustomerHasher {
	t.Helper()
	h, err := tally.NewCustomerHasher([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// mustWrite writes each request through l, in order, and returns the receipts.
func mustWrite(t *testing.T, l *ledger.Service, reqs ...ledger.Request) []ledger.Receipt {
	t.Helper()
	receipts := make([]ledger.Receipt, len(reqs))
	for i, r := range reqs {
		rc, err := l.Write(context.Background(), r)
		if err != nil {
			t.Fatalf("write %d (%s): %v", i, r.Key, err)
		}
		receipts[i] = rc
	}
	return receipts
}
