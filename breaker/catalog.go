package breaker

import (
	"context"
	"time"

	"github.com/tally-ledger/tally"
)

// CreateReward implements tally.CatalogStore.
func (s *Store) CreateReward(ctx context.Context, r tally.Reward) error {
	return s.exec(func() error { return s.inner.CreateReward(ctx, r) })
}

// UpdateReward implements tally.CatalogStore.
func (s *Store) UpdateReward(ctx context.Context, id string, fn func(*tally.Reward) error) (tally.Reward, error) {
	return call(s, func() (tally.Reward, error) { return s.inner.UpdateReward(ctx, id, fn) })
}

// SetInventory implements tally.CatalogStore.
func (s *Store) SetInventory(ctx context.Context, id string, n *int64) (tally.Reward, error) {
	return call(s, func() (tally.Reward, error) { return s.inner.SetInventory(ctx, id, n) })
}

// AddStock implements tally.CatalogStore.
func (s *Store) AddStock(ctx context.Context, id string, delta int64) (tally.Reward, error) {
	return call(s, func() (tally.Reward, error) { return s.inner.AddStock(ctx, id, delta) })
}

// AddCoupons implements tally.CatalogStore.
func (s *Store) AddCoupons(ctx context.Context, rewardID string, codes []string) (tally.CouponUpload, error) {
	return call(s, func() (tally.CouponUpload, error) { return s.inner.AddCoupons(ctx, rewardID, codes) })
}

// CouponCounts implements tally.CatalogStore.
func (s *Store) CouponCounts(ctx context.Context) (map[string]tally.CouponCount, error) {
	return call(s, func() (map[string]tally.CouponCount, error) { return s.inner.CouponCounts(ctx) })
}

// Redemptions implements tally.CatalogStore.
func (s *Store) Redemptions(ctx context.Context, f tally.RedemptionFilter) ([]tally.Redemption, error) {
	return call(s, func() ([]tally.Redemption, error) { return s.inner.Redemptions(ctx, f) })
}

// RetryRedemption implements tally.CatalogStore.
func (s *Store) RetryRedemption(ctx context.Context, receiptID string, now time.Time) (tally.Redemption, error) {
	return call(s, func() (tally.Redemption, error) { return s.inner.RetryRedemption(ctx, receiptID, now) })
}
