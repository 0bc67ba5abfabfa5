package tally

import (
	"encoding/json"
	"fmt"
	"time"
)

// Lot is the points one crediting transaction (accrual, positive adjustment, reinstatement) put into a
// customer account; its id is that transaction's Seq. Debits take points out of lots in FIFO order
// (LotLess), and a lot's Remaining is what is left of it. A lot with PendingUntil set is pending: its
// points count in the account's balance but are not spendable until it is activated. A lot with
// ExpiresAt set lapses then, and the expiry job posts an expiry for its remainder.
type Lot struct {
	Seq          int64      `json:"seq"`
	AccountID    string     `json:"account_id"`
	Points       int64      `json:"points"`
	Remaining    int64      `json:"remaining"`
	PendingUntil *time.Time `json:"pending_until,omitempty"`
	ExpiresAt    *time.Time `json:"expires_at,omitempty"`
	CreatedAt    time.Time  `json:"created_at"`
	ActivatedAt  *time.Time `json:"activated_at,omitempty"`
}

// Pending reports whether the lot's points are not spendable yet.
func (l Lot) Pending() bool { return l.PendingUntil != nil }

// Lapsed reports whether the lot has expired at now (its remainder is the expiry job's to post).
func (l Lot) Lapsed(now time.Time) bool { return l.ExpiresAt != nil && !l.ExpiresAt.After(now) }

// LotLess is the order debits consume lots in: soonest expiring first, lots that never expire last,
// then oldest first.
func LotLess(a, b Lot) bool {
	switch {
	case a.ExpiresAt == nil && b.ExpiresAt == nil:
	case a.ExpiresAt == nil:
		return false
	case b.ExpiresAt == nil:
		return true
	case !a.ExpiresAt.Equal(*b.ExpiresAt):
		return a.ExpiresAt.Before(*b.ExpiresAt)
	}
	return a.Seq < b.Seq
}

// LotUse records that debit DebitSeq took Points out of lot LotSeq. A lot credited while the account was
// overdrawn records the points that settled the overdraft as a use by its own transaction
// (DebitSeq = LotSeq).
type LotUse struct {
	DebitSeq int64 `json:"debit_seq"`
	LotSeq   int64 `json:"lot_seq"`
	Points   int64 `json:"points"`
}

// LotExpiry is the soonest expiry of an account's open lots: Points lapse at At.
type LotExpiry struct {
	Points int64     `json:"points"`
	At     time.Time `json:"at"`
}

// LapsedLots are an account's open lots that have expired, as the expiry job finds them.
type LapsedLots struct {
	AccountID string
	// BalanceVersion is the account's balance_version when the lots were read: it keys the expiry
	// posted for them, so that replicas that read the same state post under the same key.
	BalanceVersion int64
	Lots           []Lot
}

// ExpiryPolicyKind names how long earned points last.
type ExpiryPolicyKind string

// The expiry policies of the programme file.
const (
	ExpireNever        ExpiryPolicyKind = "never"
	ExpireAfterDays    ExpiryPolicyKind = "days"           // Days days after earning
	ExpireEndOfMonth   ExpiryPolicyKind = "end_of_month"   // the end of the month Months months after earning
	ExpireEndOfQuarter ExpiryPolicyKind = "end_of_quarter" // the end of the quarter Months months after earning
	ExpireEndOfYear    ExpiryPolicyKind = "end_of_year"    // the end of the year Months months after earning
)

// ExpiryPolicy decides when the points of a new lot expire.
type ExpiryPolicy struct {
	Policy ExpiryPolicyKind `json:"policy"`
	Days   int              `json:"days,omitempty"`
	Months int              `json:"months,omitempty"`
}

// ExpiresAt returns when points earned at earned expire under the policy; nil when they never do.
// Periods end at midnight UTC: points expiring "at the end of March" lapse at April 1st 00:00 UTC.
func (p ExpiryPolicy) ExpiresAt(earned time.Time) *time.Time {
	earned = earned.UTC()
	var t time.Time
	switch p.Policy {
	case ExpireAfterDays:
		t = earned.AddDate(0, 0, p.Days)
	case ExpireEndOfMonth, ExpireEndOfQuarter, ExpireEndOfYear:
		// The first of the month Months months on, so that AddDate never overflows a short month.
		m := time.Date(earned.Year(), earned.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, p.Months, 0)
		switch p.Policy {
		case ExpireEndOfMonth:
			t = m.AddDate(0, 1, 0)
		case ExpireEndOfQuarter:
			q := (int(m.Month()) - 1) / 3 * 3
			t = time.Date(m.Year(), time.Month(q+1), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 3, 0)
		default:
			t = time.Date(m.Year()+1, 1, 1, 0, 0, 0, 0, time.UTC)
		}
	default:
		return nil
	}
	return &t
}

// Validate checks the policy's parameters.
func (p ExpiryPolicy) Validate() error {
	switch p.Policy {
	case "", ExpireNever:
		if p.Days != 0 || p.Months != 0 {
			return fmt.Errorf("expiry: policy %q takes neither days nor months", ExpireNever)
		}
	case ExpireAfterDays:
		if p.Days <= 0 || p.Days > 36600 || p.Months != 0 {
			return fmt.Errorf("expiry: policy %q needs days between 1 and 36600, and no months", p.Policy)
		}
	case ExpireEndOfMonth, ExpireEndOfQuarter, ExpireEndOfYear:
		if p.Months < 0 || p.Months > 1200 || p.Days != 0 {
			return fmt.Errorf("expiry: policy %q takes months between 0 and 1200, and no days", p.Policy)
		}
	default:
		return fmt.Errorf("expiry: unknown policy %q (never, days, end_of_month, end_of_quarter, end_of_year)", p.Policy)
	}
	return nil
}

// ReturnPolicy decides what a clawback (the reversal of a credit, as when the purchase that earned it is
// refunded) may do when the points it takes back were already spent.
type ReturnPolicy string

// The return policies.
const (
	// ReturnOnlyPending lets a clawback cancel points only while they are pending and unspent.
	ReturnOnlyPending ReturnPolicy = "only_pending"
	// ReturnWithinBalance (the default) lets a clawback take back spent points from the customer's other
	// spendable points, but never below zero.
	ReturnWithinBalance ReturnPolicy = "within_balance"
	// ReturnAllowNegative lets the spendable balance go below zero, down to the overdraft limit.
	ReturnAllowNegative ReturnPolicy = "allow_negative"
)

// LotPolicy is the programme's points lifecycle: how long points last and what a clawback may do.
type LotPolicy struct {
	Expiry ExpiryPolicy
	Return ReturnPolicy
	// OverdraftLimit bounds a negative spendable balance under ReturnAllowNegative.
	OverdraftLimit int64
}

// lotPolicyFile is the lifecycle part of the programme file.
type lotPolicyFile struct {
	Expiry         *ExpiryPolicy `json:"expiry"`
	ReturnPolicy   ReturnPolicy  `json:"return_policy"`
	OverdraftLimit int64         `json:"overdraft_limit"`
}

// ParseLotPolicy reads the "expiry", "return_policy" and "overdraft_limit" settings of a programme file
// (its other keys are left to their readers). Absent settings mean points never expire and clawbacks stay
// within the balance.
//
//	{"expiry": {"policy": "end_of_quarter", "months": 12},
//	 "return_policy": "allow_negative", "overdraft_limit": 500}
func ParseLotPolicy(b []byte) (LotPolicy, error) {
	var f lotPolicyFile
	if err := json.Unmarshal(b, &f); err != nil {
		return LotPolicy{}, fmt.Errorf("programme: %w", err)
	}
	p := LotPolicy{Expiry: ExpiryPolicy{Policy: ExpireNever}, Return: ReturnWithinBalance}
	if f.Expiry != nil {
		if err := f.Expiry.Validate(); err != nil {
			return LotPolicy{}, fmt.Errorf("programme: %w", err)
		}
		p.Expiry = *f.Expiry
		if p.Expiry.Policy == "" {
			p.Expiry.Policy = ExpireNever
		}
	}
	switch f.ReturnPolicy {
	case ReturnOnlyPending, ReturnWithinBalance, "":
		if f.OverdraftLimit != 0 {
			return LotPolicy{}, fmt.Errorf("programme: overdraft_limit is for return_policy %q only", ReturnAllowNegative)
		}
	case ReturnAllowNegative:
		if f.OverdraftLimit < 0 || f.OverdraftLimit > MaxAmount {
			return LotPolicy{}, fmt.Errorf("programme: overdraft_limit must be between 0 and %d", MaxAmount)
		}
	default:
		return LotPolicy{}, fmt.Errorf("programme: unknown return_policy %q (only_pending, within_balance, allow_negative)", f.ReturnPolicy)
	}
	if f.ReturnPolicy != "" {
		p.Return = f.ReturnPolicy
	}
	p.OverdraftLimit = f.OverdraftLimit
	return p, nil
}
