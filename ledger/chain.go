package ledger

import (
	"context"
	"errors"
	"fmt"

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

// ErrUnsealed is the error of OpenChain for a ledger that holds transactions but no chain seal.
var ErrUnsealed = errors.New("the ledger holds transactions but no chain seal")

// OpenChain reads the store's chain seal and checks it under key. A new, empty ledger is sealed here.
// A ledger that holds transactions but no seal is not sealed silently: either a Tally without a ledger
// key wrote it (an upgrade: check it, then seal it once with SealExisting), or someone removed the seal
// to pass off chains recomputed without the key, and sealing them now would bless the forgery. It then
// returns an error wrapping ErrUnsealed.
func OpenChain(ctx context.Context, store tally.Store, key *tally.LedgerKey) (*tally.Chain, error) {
	seal, err := store.ChainSeal(ctx)
	if tally.ErrorCode(err) == tally.ENOTFOUND {
		n, cerr := store.Audit().CountTransactions(ctx)
		if cerr != nil {
			return nil, cerr
		}
		if n > 0 {
			return nil, &tally.Error{Code: tally.EINTERNAL, Err: ErrUnsealed, Message: fmt.Sprintf(
				"the ledger holds %d transactions but no chain seal: if a Tally without a ledger key wrote them (an upgrade), check them with 'tally verify --allow-unsealed' and seal them once with 'tally migrate --seal-existing'; if the ledger was sealed before, its seal was removed", n)}
		}
		return SealExisting(ctx, store, key)
	}
	if err != nil {
		return nil, err
	}
	return chainOf(key, seal)
}

// SealExisting seals the chains at the highest sequence number handed out so far, unless they are
// sealed already: the transactions up to it keep their unkeyed (v1) hashes, every later one is keyed.
// Run it once, deliberately, on a ledger written before the ledger key existed; take a checkpoint
// right after, to anchor that unkeyed part.
func SealExisting(ctx context.Context, store tally.Store, key *tally.LedgerKey) (*tally.Chain, error) {
	seal, err := store.InitChainSeal(ctx, key.NewChainSeal)
	if err != nil {
		return nil, err
	}
	return chainOf(key, seal)
}

func chainOf(key *tally.LedgerKey, seal tally.ChainSeal) (*tally.Chain, error) {
	c, err := tally.NewChain(key, seal)
	if err != nil {
		// A seal that does not match the key is not a transient fault: refusing every write until an
		// operator looks is the honest answer.
		return nil, &tally.Error{Code: tally.EINTERNAL, Message: "the ledger's chain seal does not match the ledger key", Err: err}
	}
	return c, nil
}
