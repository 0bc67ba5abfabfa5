package postgres

import (
	"context"
	"time"

	"github.com/tally-ledger/tally"
)

var _ tally.FulfillmentStore = (*DB)(nil)

// redemptionOutbox is the fulfillment outbox.
var redemptionOutbox = outbox{
	table: "redemptions", key: []string{"receipt_id"}, columns: redemptionColumns, again: tally.FulfillmentRefunded,
	leaseOp: "lease redemptions", finishOp: "finish delivery attempt",
	notFound: func(key []any) error { return tally.Errorf(tally.ENOTFOUND, "no receipt %q", key[0]) },
	lost: func(key []any, owner, holder, status string) error {
		if holder != owner {
			return tally.Errorf(tally.ECONFLICT, "the lease on receipt %q was lost: another worker took it over", key[0])
		}
		return tally.Errorf(tally.ECONFLICT, "receipt %q is %s now: it was settled while it was being delivered", key[0], status)
	},
}

// LeaseRedemptions leases due, unleased pending redemptions in one statement (see outbox.leaseSQL).
func (db *DB) LeaseRedemptions(ctx context.Context, owner string, now, until time.Time, limit int) ([]tally.Redemption, error) {
	return leaseDue(ctx, db, redemptionOutbox, owner, now, until, limit, scanRedemption,
		func(r tally.Redemption) (time.Time, string) { return r.NextAttemptAt, r.ReceiptID })
}

// FinishAttempt records an attempt's result while owner holds the lease, in one statement.
func (db *DB) FinishAttempt(ctx context.Context, receiptID, owner string, a tally.Attempt) error {
	if !a.Valid() {
		return tally.Errorf(tally.EINVALID, "a delivery attempt cannot leave a redemption %q", a.Status)
	}
	if err := tally.CheckText("last error", a.Error); err != nil {
		return err
	}
	return db.finishLeased(ctx, redemptionOutbox, []any{receiptID}, owner, a)
}
