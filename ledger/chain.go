package ledger

import (
	"context"

	"github.com/tally-ledger/tally"
)

// loadChain returns the chain hasher, sealing the chains first when the store has no seal yet: every
// transaction written from now on is hashed with the ledger key. The seal is read once; a failure to
// read it fails the batch (it is a store fault) and is tried again by the next one.
func (s *Service) loadChain(ctx context.Context) (*tally.Chain, error) {
	s.chainMu.Lock()
	defer s.chainMu.Unlock()
	if s.chain != nil {
		return s.chain, nil
	}
	c, err := OpenChain(ctx, s.store, s.opts.Key)
	if err != nil {
		return nil, err
	}
	s.chain = c
	return c, nil
}

// OpenChain reads the store's chain seal, storing one first if there is none (a new ledger, or one
// written before the ledger key existed, whose transactions so far stay v1), and checks it under key.
// tally migrate calls it so that an upgraded ledger is sealed before anything else writes.
func OpenChain(ctx context.Context, store tally.Store, key *tally.LedgerKey) (*tally.Chain, error) {
	seal, err := store.InitChainSeal(ctx, key.NewChainSeal)
	if err != nil {
		return nil, err
	}
	c, err := tally.NewChain(key, seal)
	if err != nil {
		// A seal that does not match the key is not a transient fault: refusing every write until an
		// operator looks is the honest answer.
		return nil, &tally.Error{Code: tally.EINTERNAL, Message: "the ledger's chain seal does not match the ledger key", Err: err}
	}
	return c, nil
}
