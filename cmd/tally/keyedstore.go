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
	key     *tally.LedgerKey
	service *ledger.Service // started by ledger, closed by Close
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

// ledger starts the ledger service over the store, keyed with its ledger key (once: opts are those of
// the first call). Close closes it.
func (s *keyedStore) ledger(opts ledger.Options) *ledger.Service {
	if s.service == nil {
		opts.Key = s.key
		s.service = ledger.New(s.Store, opts)
	}
	return s.service
}

// Close closes the ledger service, which finishes the writes it has queued, then the store.
func (s *keyedStore) Close() error {
	if s.service != nil {
		s.service.Close()
	}
	return s.openedStore.Close()
}
