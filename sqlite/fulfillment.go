package sqlite

import (
	"context"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/internal/outboxtable"
)

var _ tally.FulfillmentStore = (*DB)(nil)

// LeaseRedemptions leases due, unleased pending redemptions in one write transaction (see leaseDue).
func (db *DB) LeaseRedemptions(ctx context.Context, owner string, now, until time.Time, limit int) ([]tally.Redemption, error) {
	return leaseDue(ctx, db, outboxtable.Redemptions, owner, now, until, limit, scanRedemption,
		func(r tally.Redemption) (time.Time, string) { return r.NextAttemptAt, r.ReceiptID })
}

// FinishAttempt records an attempt's result while owner holds the lease.
func (db *DB) FinishAttempt(ctx context.Context, receiptID, owner string, a tally.Attempt) error {
	if !a.Valid() {
		return tally.Errorf(tally.EINVALID, "a delivery attempt cannot leave a redemption %q", a.Status)
	}
	if err := tally.CheckText("last error", a.Error); err != nil {
		return err
	}
	return db.finishLeased(ctx, outboxtable.Redemptions, []any{receiptID}, owner, a)
}
