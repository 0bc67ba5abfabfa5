package tally

import "time"

// Fulfillment methods of a reward.
const (
	MethodWebhook = "webhook" // a job posted to the reward's webhook, signed
	MethodEmail   = "email"   // the same, to a mailer endpoint
	MethodCoupon  = "coupon"  // a code from the reward's uploaded codes, assigned in the redeem decision
	MethodManual  = "manual"  // fulfilled by hand: nothing to deliver
)

// ValidMethod reports whether m is a known fulfillment method.
func ValidMethod(m string) bool {
	return m == MethodWebhook || m == MethodEmail || m == MethodCoupon || m == MethodManual
}

// Fulfillment states of a redemption. A redemption is written in the same database transaction as its
// ledger transaction (the outbox); a worker delivers it; one that cannot be delivered after the
// configured attempts is dead-lettered and, unless configured otherwise, refunded by a reversal.
const (
	FulfillmentPending   = "pending"   // waiting for delivery (or a retry)
	FulfillmentDelivered = "delivered" // the receiver acknowledged it, or a coupon code was assigned
	FulfillmentManual    = "manual"    // nothing to deliver: fulfilled by hand
	FulfillmentDead      = "dead"      // dead-lettered: no more attempts
	FulfillmentRefunded  = "refunded"  // reversed: points and stock given back
)

// Redemption is a reward redeemed: the receipt the customer sees and the fulfillment job.
type Redemption struct {
	ReceiptID     string    `json:"receipt_id"`
	TxSeq         int64     `json:"transaction_id"`
	AccountID     string    `json:"-"`
	RewardID      string    `json:"reward_id"`
	Points        int64     `json:"points_debited"`
	Method        string    `json:"method"`
	Status        string    `json:"status"`
	CouponCode    string    `json:"coupon_code,omitempty"`
	Attempts      int       `json:"attempts"`
	NextAttemptAt time.Time `json:"-"`
	LeaseUntil    time.Time `json:"-"` // while in the future, a fulfillment worker is delivering it
	LastError     string    `json:"last_error,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// TierPolicy is the programme's tier ladder, as the ledger applies it: a customer's tier is stored
// (CustomerTier), raised at once by the accrual that earns enough qualifying points, and lowered only by
// a review at the end of a period (see ledger.ReviewTiers).
type TierPolicy interface {
	// TierOf returns the tier that this many qualifying points reach.
	TierOf(points int64) string
	// Rank orders tiers: a higher rank reaches every reward a lower one does. false for an unknown tier.
	Rank(tier string) (int, bool)
	// QualifyingSince returns where the rolling window of qualifying points that ends at now begins.
	QualifyingSince(now time.Time) time.Time
}
