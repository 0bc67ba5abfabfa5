package main

import (
	"context"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// keyedStore is a store opened from --db with the ledger key kept outside it: what a command run beside
// serve needs to check the ledger, sign for it, or write to it.
type keyedStore struct {
	*openedStore
	key *tally.LedgerKey
}

// openKeyed opens the store url names with open (openCurrent, openExisting, openExistingMigrated or
// openMigrated: how much the command may create or change) and loads the ledger key, which must exist
// already: a new key would not open the chains that the existing one sealed.
func openKeyed(ctx context.Context, url string, open func(context.Context, string) (*openedStore, error)) (*keyedStore, error) {
	s, err := open(ctx, url)
	if err != nil {
		return nil, err
	}
	key, err := existingLedgerKey(s)
	if err != nil {
		s.Close()
		return nil, err
	}
	return &keyedStore{openedStore: s, key: key}, nil
}

// ledger starts a ledger service over the store, keyed with its ledger key. Close it before the store.
func (s *keyedStore) ledger(opts ledger.Options) *ledger.Service {
	opts.Key = s.key
	return ledger.New(s.Store, opts)
}
