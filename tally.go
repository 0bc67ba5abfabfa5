// Package tally holds the domain of the Tally points ledger: accounts, transactions and postings, the
// error vocabulary, and the interfaces that storage adapters implement. It imports no adapter.
package tally

import (
	"encoding/json"
	"time"
)

// Kind is the kind of a ledger transaction.
type Kind string

// Transaction kinds. Every kind moves points between exactly one customer account and one system account.
const (
	KindAccrual    Kind = "accrual"
	KindRedemption Kind = "redemption"
	KindExpiry     Kind = "expiry"
	KindAdjustment Kind = "adjustment"
	KindReversal   Kind = "reversal"
)

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool {
	switch k {
	case KindAccrual, KindRedemption, KindExpiry, KindAdjustment, KindReversal:
		return true
	}
	return false
}

// AccountStatus is the life-cycle state of an account.
type AccountStatus string

// Account states. A frozen account takes only administrative adjustments and reversals; a closed one
// takes nothing.
const (
	StatusActive AccountStatus = "active"
	StatusFrozen AccountStatus = "frozen"
	StatusClosed AccountStatus = "closed"
)

// Valid reports whether s is a known status.
func (s AccountStatus) Valid() bool {
	return s == StatusActive || s == StatusFrozen || s == StatusClosed
}

// System accounts. Points are issued from AccountIssuance (whose balance is therefore the negative of
// all points ever issued) and flow to the others when they leave customers. Their balances are kept in
// shards (see Store.AddSystemBalances) so that no single row is updated by every transaction.
const (
	AccountIssuance    = "system:issuance"
	AccountRedemptions = "system:redemptions"
	AccountExpired     = "system:expired"
	AccountAdjustments = "system:adjustments"
)

// SystemAccounts lists every system account in lock order.
var SystemAccounts = []string{AccountAdjustments, AccountExpired, AccountIssuance, AccountRedemptions}

// IsSystemAccount reports whether id names a system account.
func IsSystemAccount(id string) bool {
	for _, s := range SystemAccounts {
		if s == id {
			return true
		}
	}
	return false
}

// SystemShards is how many balance rows each system account is spread over.
const SystemShards = 16

// MaxAmount bounds a single amount and any balance: 2^53-1 keeps every value exact in JavaScript clients.
const MaxAmount int64 = 1<<53 - 1

// Account is a customer's points account, or a system account.
// For a customer, ID is the customer hash; for a system account, one of the Account* constants.
type Account struct {
	ID             string        `json:"id"`
	Status         AccountStatus `json:"status"`
	Balance        int64         `json:"balance"`
	BalanceVersion int64         `json:"balance_version"`
	LastTxHash     string        `json:"last_tx_hash,omitempty"`
	CreatedAt      time.Time     `json:"created_at"`
	// Pending is the part of Balance not spendable yet (the remainders of pending lots); Balance counts
	// it, as it counts every posted point. Customers spend Balance - Pending (Spendable).
	Pending int64 `json:"pending,omitempty"`
	// OverdraftLimit is how far below zero the spendable balance may go: set by a clawback under the
	// allow_negative return policy, 0 otherwise.
	OverdraftLimit int64 `json:"overdraft_limit,omitempty"`
	// Lapsed is the part of Balance - Pending whose lots have expired although the expiry job has not
	// posted their expiry yet: gone for the customer at their expiry time, whenever the job runs. It is
	// not stored: the ledger fills it in from the lots when it reads a balance for a customer (0 as the
	// stores read it).
	Lapsed int64 `json:"expired_pending_posting,omitempty"`
	// QualifyingBound is at least the account's qualifying points (its accruals not reversed) in every
	// window that starts at or after QualifyingFrom: each accrual adds to it, and the ledger sums a window
	// only when the bound could reach a higher tier. A zero QualifyingFrom means no bound is known.
	QualifyingBound int64     `json:"-"`
	QualifyingFrom  time.Time `json:"-"`
}

// QualifyingBoundFor returns the bound of the account's qualifying points in the window that starts at
// since, and whether the bound holds for that window.
func (a Account) QualifyingBoundFor(since time.Time) (int64, bool) {
	if a.QualifyingFrom.IsZero() || a.QualifyingFrom.After(since) {
		return 0, false
	}
	return a.QualifyingBound, true
}

// Spendable is what the customer can spend: the balance less its pending points and its lapsed ones.
// It goes below zero only after a clawback under the allow_negative return policy.
func (a Account) Spendable() int64 { return a.Balance - a.Pending - a.Lapsed }

// Posted is the balance less its pending points, lapsed points included: what the active lots hold
// (when not below zero), and what the database's overdraft constraint bounds.
func (a Account) Posted() int64 { return a.Balance - a.Pending }

// Posting moves Amount points into (positive) or out of (negative) an account.
// The postings of one transaction sum to zero.
type Posting struct {
	AccountID string `json:"account_id"`
	Amount    int64  `json:"amount"`
}

// Transaction is one immutable ledger entry. Seq is its strictly increasing ledger sequence number and
// its identity. AccountID is the customer account on whose hash chain it sits.
type Transaction struct {
	Seq            int64           `json:"seq"`
	Kind           Kind            `json:"kind"`
	AccountID      string          `json:"account_id"`
	Channel        string          `json:"channel"`
	IdempotencyKey string          `json:"idempotency_key"`
	RequestHash    string          `json:"-"`
	Amount         int64           `json:"amount"`
	Reason         string          `json:"reason,omitempty"`
	Actor          string          `json:"actor,omitempty"`
	Metadata       json.RawMessage `json:"metadata,omitempty"`
	ReversesSeq    int64           `json:"reverses_seq,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	Postings       []Posting       `json:"postings"`
	Hash           string          `json:"hash"`
}

// Delta is the signed change the transaction makes to its customer account.
func (t *Transaction) Delta() int64 {
	var d int64
	for _, p := range t.Postings {
		if p.AccountID == t.AccountID {
			d += p.Amount
		}
	}
	return d
}

// Reward is an item of the reward catalog.
type Reward struct {
	ID                string    `json:"reward_id"`
	Name              string    `json:"name"`
	Description       string    `json:"description"`
	ImageURL          string    `json:"image_url"`
	PointCost         int64     `json:"point_cost"`
	Inventory         *int64    `json:"inventory"` // units left; nil: unlimited
	MinTier           string    `json:"min_tier,omitempty"`
	FulfillmentMethod string    `json:"fulfillment_method"`
	WebhookURL        string    `json:"webhook_url,omitempty"`
	Active            bool      `json:"active"`
	CreatedAt         time.Time `json:"created_at"`
	UpdatedAt         time.Time `json:"updated_at"`
}
