package tally

import (
	"context"
	"time"
)

// LotStore reads the points lots of customer accounts.
type LotStore interface {
	// AccountLots returns the open lots (Remaining > 0) of an account in the order debits consume them
	// (LotLess); none for an unknown account.
	AccountLots(ctx context.Context, accountID string) ([]Lot, error)
	// Lot returns one lot by the seq of its crediting transaction. ENOTFOUND when absent.
	Lot(ctx context.Context, seq int64) (Lot, error)
	// NextExpiry returns the soonest ExpiresAt among the account's open lots and the points that lapse
	// then (pending or not). ENOTFOUND when none of its open lots expires.
	NextExpiry(ctx context.Context, accountID string) (LotExpiry, error)
	// LapsedPoints returns what remains of the account's active (not pending) open lots that have
	// expired at now (ExpiresAt <= now): points that are no longer spendable although the expiry job
	// has not posted their expiry yet. 0 for an unknown account.
	LapsedPoints(ctx context.Context, accountID string, now time.Time) (int64, error)
	// LotUsesOf returns the lots each given debit consumed, by debit, in lot order; debits that consumed
	// none are left out.
	LotUsesOf(ctx context.Context, debitSeqs []int64) (map[int64][]LotUse, error)
	// LapsedLots returns, for up to limit accounts with id > afterAccount in id order, the open lots
	// that have expired at now (ExpiresAt <= now), in seq order.
	LapsedLots(ctx context.Context, now time.Time, afterAccount string, limit int) ([]LapsedLots, error)
	// DuePendingLots returns up to limit pending lots whose PendingUntil <= now, with seq > afterSeq, in
	// seq order.
	DuePendingLots(ctx context.Context, now time.Time, afterSeq int64, limit int) ([]Lot, error)
}

// LotWriteTx is the part of a WriteTx that writes lots. Accounts must be locked first (LockAccounts).
type LotWriteTx interface {
	// OpenLots returns the open lots (Remaining > 0) of the given accounts (sorted, distinct), by
	// account, each in the order debits consume them (LotLess).
	OpenLots(ctx context.Context, accountIDs []string) (map[string][]Lot, error)
	// LapsedPointsOf is LotStore.LapsedPoints for the given accounts (sorted, distinct), read in the
	// transaction; accounts with none are left out.
	LapsedPointsOf(ctx context.Context, accountIDs []string, now time.Time) (map[string]int64, error)
	// LotsBySeq returns the given lots, open or not; absent ones are left out.
	LotsBySeq(ctx context.Context, seqs []int64) (map[int64]Lot, error)
	// InsertLots writes new lots, after their transactions. ECONFLICT when a seq is reused.
	InsertLots(ctx context.Context, lots []Lot) error
	// UpdateLots writes the Remaining, PendingUntil and ActivatedAt of existing lots. EINTERNAL when one
	// does not exist, or when Remaining leaves [0, Points] (the database refuses it).
	UpdateLots(ctx context.Context, lots []Lot) error
	// LotUses is LotStore.LotUsesOf, read in the transaction.
	LotUses(ctx context.Context, debitSeqs []int64) (map[int64][]LotUse, error)
	// InsertLotUses records which lots debits consumed. ECONFLICT when a (DebitSeq, LotSeq) is reused.
	InsertLotUses(ctx context.Context, uses []LotUse) error
}
