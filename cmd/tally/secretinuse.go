package main

import (
	"context"

	"github.com/tally-ledger/tally"
)

// A secret kept beside the embedded database is generated on first start only: a database that was
// written with a secret given in the environment, and is later opened without it, must not get a new
// one (the customers would hash to new, empty accounts; the chains would not verify, and writes would be
// refused). These tell whether the database already depends on its secrets.

// holdsTransactions tells whether the ledger holds any transaction.
func holdsTransactions(store *openedStore) (bool, error) {
	n, err := store.Audit().CountTransactions(context.Background())
	return n > 0, err
}

// sealedOrWritten tells whether the ledger's chains are sealed with a ledger key or hold transactions.
func sealedOrWritten(store *openedStore) (bool, error) {
	_, err := store.ChainSeal(context.Background())
	switch tally.ErrorCode(err) {
	case "":
		return true, nil
	case tally.ENOTFOUND:
		return holdsTransactions(store)
	default:
		return false, err
	}
}
