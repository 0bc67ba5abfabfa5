package breaker

import (
	"context"

	"github.com/tally-ledger/tally"
)

// Erase is the inner store's, behind the breaker.
func (s *Store) Erase(ctx context.Context, id string, plan func(tally.ErasureState) (tally.Rekeying, error)) (tally.Erasure, error) {
	return call(s, func() (tally.Erasure, error) { return s.inner.Erase(ctx, id, plan) })
}

// Erasures is the inner store's, behind the breaker.
func (s *Store) Erasures(ctx context.Context) ([]tally.Erasure, error) {
	return call(s, func() ([]tally.Erasure, error) { return s.inner.Erasures(ctx) })
}
