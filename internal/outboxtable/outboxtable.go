// Package outboxtable describes, once for both SQL store adapters, the tables that workers lease rows
// from and deliver: redemptions (the fulfillment outbox), webhook_deliveries (events out) and
// contact_mirror (balances mirrored to Genesys). The adapters write the SQL of leasing and finishing in
// their own dialects from these descriptions.
package outboxtable

import (
	"sort"
	"time"

	"github.com/tally-ledger/tally"
)

// Table is one outbox table. Its rows keep their delivery state in the same columns (attempts,
// next_attempt_at, last_error, lease_owner, lease_until, updated_at), so that leasing and finishing are
// written once per adapter.
type Table struct {
	Name    string   // the table
	Key     []string // its primary key's columns
	Columns string   // what a lease returns of each row
	// Undelivered is the condition of a row still to deliver (default: status 'pending').
	Undelivered string
	// Again is a status a settled row may be finished with once more ("" for none): a redemption a
	// reversal refunded meanwhile is recorded as refunded by the worker's refund too.
	Again             string
	LeaseOp, FinishOp string // the operations, as errors name them
	// NotFound and Lost explain why finishing changed nothing: no row has key, or the row is status and
	// leased to holder.
	NotFound func(key []any) error
	Lost     func(key []any, owner, holder, status string) error
}

// Pending is the condition of a row still to deliver.
func (t Table) Pending() string {
	if t.Undelivered != "" {
		return t.Undelivered
	}
	return "status = 'pending'"
}

// The columns a lease returns, in the order the adapters scan them.
const (
	RedemptionColumns = `receipt_id, tx_seq, account_id, reward_id, points, method, status, coupon_code,
	attempts, next_attempt_at, last_error, created_at, updated_at, lease_until`
	DeliveryColumns = `event_id, subscription_id, event_type, account_id, payload, status, attempts, next_attempt_at, last_error, created_at, updated_at`
	MirrorColumns   = `account_id, contact_sealed, wanted_version, sent_version, next_attempt_at, attempts, last_error, updated_at`
)

// Redemptions is the fulfillment outbox.
var Redemptions = Table{
	Name: "redemptions", Key: []string{"receipt_id"}, Columns: RedemptionColumns, Again: tally.FulfillmentRefunded,
	LeaseOp: "lease redemptions", FinishOp: "finish delivery attempt",
	NotFound: func(key []any) error { return tally.Errorf(tally.ENOTFOUND, "no receipt %q", key[0]) },
	Lost: func(key []any, owner, holder, status string) error {
		if holder != owner {
			return tally.Errorf(tally.ECONFLICT, "the lease on receipt %q was lost: another worker took it over", key[0])
		}
		return tally.Errorf(tally.ECONFLICT, "receipt %q is %s now: it was settled while it was being delivered", key[0], status)
	},
}

// Deliveries is the webhook outbox.
var Deliveries = Table{
	Name: "webhook_deliveries", Key: []string{"event_id", "subscription_id"}, Columns: DeliveryColumns,
	LeaseOp: "lease deliveries", FinishOp: "finish delivery",
	NotFound: func(key []any) error {
		return tally.Errorf(tally.ENOTFOUND, "no delivery of event %q to %q", key[0], key[1])
	},
	Lost: func(key []any, _, holder, status string) error {
		return tally.Errorf(tally.ECONFLICT, "the delivery of event %q to %q is %s, leased to %q: the lease was lost", key[0], key[1], status, holder)
	},
}

// Mirrors is the contact mirror: a row is due while a newer version is wanted than was sent. It is
// leased as the outboxes are, and finished its own way.
var Mirrors = Table{Name: "contact_mirror", Key: []string{"account_id"}, Columns: MirrorColumns,
	Undelivered: "wanted_version > sent_version", LeaseOp: "lease contact mirrors"}

// CheckLease refuses a lease request that could not be told apart from no lease, or that asks for none.
func CheckLease(owner string, limit int) error {
	if owner == "" || len(owner) > 200 {
		return tally.Errorf(tally.EINVALID, "a lease owner must be 1 to 200 bytes")
	}
	if err := tally.CheckText("lease owner", owner); err != nil {
		return err
	}
	if limit <= 0 {
		return tally.Errorf(tally.EINVALID, "a lease must take at least one redemption")
	}
	return nil
}

// SortChosen puts leased rows back in the order a lease chose them, by due time and then key (order
// gives both): RETURNING does not promise an order.
func SortChosen[T any](rows []T, order func(T) (time.Time, string)) {
	sort.Slice(rows, func(i, j int) bool {
		ti, ki := order(rows[i])
		tj, kj := order(rows[j])
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return ki < kj
	})
}
