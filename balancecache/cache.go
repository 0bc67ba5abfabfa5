// Package balancecache keeps the last balance each customer was seen with, so that balance lookups can
// still answer, marked stale, while the store is down.
//
// Writers race: two requests may read balances 7 and 8 and put them in either order. A cache therefore
// never lets an entry with a lower BalanceVersion replace a higher one, so a late writer cannot roll a
// balance back. An equal version replaces the entry, refreshing AsOf and the expiry.
package balancecache

import (
	"context"
	"errors"
	"time"
)

// DefaultTTL is how long an entry lives when a constructor is given no TTL.
const DefaultTTL = 24 * time.Hour

// Entry is a customer's balance as last read from the store.
type Entry struct {
	CustomerHash   string    `json:"customer_hash"`
	Balance        int64     `json:"balance"`
	BalanceVersion int64     `json:"balance_version"`
	Tier           string    `json:"tier"`
	AsOf           time.Time `json:"as_of"` // when the balance was read from the store
}

// Cache stores the last known Entry per customer.
//
// Get reports false when there is no live entry. Put stores e unless the cache holds a live entry with
// a higher BalanceVersion, in which case it does nothing and returns nil. Entries expire a TTL after
// their last Put. Delete drops a customer's entry (a forgotten customer's must not outlive the
// erasure). Errors mean the cache could not be reached; callers log them and carry on without it.
type Cache interface {
	Get(ctx context.Context, customerHash string) (Entry, bool, error)
	Put(ctx context.Context, e Entry) error
	Delete(ctx context.Context, customerHash string) error
}

var errNoCustomer = errors.New("balancecache: entry has no customer hash")
