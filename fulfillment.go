package tally

import (
	"context"
	"time"
)

// FulfillmentStore is the fulfillment outbox: the redemptions that wait for delivery, leased by the
// workers of every replica so that no two deliver one job at the same time. Storage adapters implement
// it beside Store (as they do CredentialStore); package fulfillment runs the workers over it. Listing
// and retrying dead letters is CatalogStore's (Redemptions, RetryRedemption).
//
// A lease is an owner token and an expiry stored on the row. Whoever holds an unexpired lease is the only
// one who may deliver; a worker that dies loses its jobs only until their leases run out, and then
// another takes them. Times are the callers' clocks: replicas whose clocks disagree by more than the
// margin a worker keeps between its last request and its lease's end could overlap (see package
// fulfillment).
//
// Every method returns a *Error with code EUNAVAILABLE when the database cannot be reached or reports a
// transient fault.
type FulfillmentStore interface {
	// LeaseRedemptions takes up to limit redemptions that are pending, due (NextAttemptAt <= now) and not
	// leased (no lease, or one that ended before now), oldest due first; leases them to owner until
	// until; and returns them. Concurrent callers never receive the same redemption while its lease
	// runs (PostgreSQL: FOR UPDATE SKIP LOCKED, so they do not wait on each other either).
	LeaseRedemptions(ctx context.Context, owner string, now, until time.Time, limit int) ([]Redemption, error)
	// FinishAttempt records what became of a leased redemption and ends the lease. It applies only while
	// owner still holds the lease (even an expired one no one took over) and the redemption is still
	// pending (or, for a.Status refunded, pending or refunded already); otherwise it changes nothing and
	// returns ECONFLICT (the lease was lost, or someone else settled the redemption). ENOTFOUND when
	// the redemption does not exist; EINVALID for a status other than the four below.
	FinishAttempt(ctx context.Context, receiptID, owner string, a Attempt) error
}

// Attempt is what FinishAttempt records of a leased redemption.
type Attempt struct {
	// Status is the redemption's new status: FulfillmentPending (try again at RetryAt),
	// FulfillmentDelivered, FulfillmentDead, or FulfillmentRefunded (a reversal refunded it; the
	// ledger sets that status itself, and this records the attempt beside it).
	Status string
	// Tried is true when a delivery was attempted: the redemption's Attempts grows by one. A dead letter
	// whose refund failed for a while is not a new delivery attempt.
	Tried bool
	// Error is the redemption's LastError: why the attempt failed ("" for a delivery).
	Error string
	// RetryAt is when a pending redemption is due again (ignored for the other statuses).
	RetryAt time.Time
	// At is the time of the attempt: the redemption's UpdatedAt.
	At time.Time
}

// Valid reports whether a's status is one FinishAttempt accepts.
func (a Attempt) Valid() bool {
	switch a.Status {
	case FulfillmentPending, FulfillmentDelivered, FulfillmentDead, FulfillmentRefunded:
		return true
	}
	return false
}
