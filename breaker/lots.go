package breaker

import (
	"context"
	"time"

	"github.com/tally-ledger/tally"
)

// AccountLots implements tally.LotStore.
func (s *Store) AccountLots(ctx context.Context, accountID string) ([]tally.Lot, error) {
	return call(s, func() ([]tally.Lot, error) { return s.inner.AccountLots(ctx, accountID) })
}

// Lot implements tally.LotStore.
func (s *Store) Lot(ctx context.Context, seq int64) (tally.Lot, error) {
	return call(s, func() (tally.Lot, error) { return s.inner.Lot(ctx, seq) })
}

// NextExpiry implements tally.LotStore.
func (s *Store) NextExpiry(ctx context.Context, accountID string) (tally.LotExpiry, error) {
	return call(s, func() (tally.LotExpiry, error) { return s.inner.NextExpiry(ctx, accountID) })
}

// LotUsesOf implements tally.LotStore.
func (s *Store) LotUsesOf(ctx context.Context, debitSeqs []int64) (map[int64][]tally.LotUse, error) {
	return call(s, func() (map[int64][]tally.LotUse, error) { return s.inner.LotUsesOf(ctx, debitSeqs) })
}

// LapsedLots implements tally.LotStore.
func (s *Store) LapsedLots(ctx context.Context, now time.Time, afterAccount string, limit int) ([]tally.LapsedLots, error) {
	return call(s, func() ([]tally.LapsedLots, error) { return s.inner.LapsedLots(ctx, now, afterAccount, limit) })
}

// DuePendingLots implements tally.LotStore.
func (s *Store) DuePendingLots(ctx context.Context, now time.Time, afterSeq int64, limit int) ([]tally.Lot, error) {
	return call(s, func() ([]tally.Lot, error) { return s.inner.DuePendingLots(ctx, now, afterSeq, limit) })
}

// LapsedPoints implements tally.LotStore.
func (s *Store) LapsedPoints(ctx context.Context, accountID string, now time.Time) (int64, error) {
	return call(s, func() (int64, error) { return s.inner.LapsedPoints(ctx, accountID, now) })
}
