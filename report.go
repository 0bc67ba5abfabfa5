package tally

import (
	"context"
	"time"
)

// ReportStore reads the aggregates that reports (roll-forward, outstanding points, breakage) are made
// of. The sums are taken in the database; the reports' rules (which movement is issuance, what a period
// is, when a cohort has matured) live in package report, written once.
type ReportStore interface {
	// Report runs fn in one read-only transaction: every read through tx sees one committed state of
	// the ledger, however many writes commit meanwhile, so the numbers of one report add up. It never
	// writes and takes no lock that writers wait for.
	Report(ctx context.Context, fn func(ctx context.Context, tx ReportTx) error) error
}

// ReportTx reads one snapshot of the ledger (see ReportStore.Report).
type ReportTx interface {
	// CustomerTotals sums the customer accounts.
	CustomerTotals(ctx context.Context) (CustomerTotals, error)
	// DailyMovements sums, per UTC day of created_at, kind and direction, what transactions did to
	// their customer accounts, ordered by day, kind, then debits first. A transaction's movement is read
	// from its own row where its kind fixes it (the ledger posts +amount for an accrual or an adjustment,
	// whose amount is signed, and -amount for a redemption or an expiry) and from the customer's posting
	// for a reversal (which mirrors whatever it reverses), so that the sum needs one pass over
	// transactions and no join with every posting. The reports reconcile the sum with the balances.
	DailyMovements(ctx context.Context) ([]DailyMovement, error)
	// OpenLots sums the remaining points of the lots that have some left, by pending or not (pending
	// until activated: pending_until set), UTC day of expiry (never expiring apart) and lapsed or not
	// (expiring at or before now), in no particular order. Days, not months: the database groups by
	// integer arithmetic rather than formatting a date per lot; the report rolls days into months.
	OpenLots(ctx context.Context, now time.Time) ([]LotBucket, error)
	// Cohorts sums the lots by the UTC day they were created on, with the points each kind of debit
	// consumed of them, in no particular order.
	Cohorts(ctx context.Context, now time.Time) ([]Cohort, error)
}

// LotBucket is a sum of open lots (see ReportTx.OpenLots).
type LotBucket struct {
	Pending bool
	Expires time.Time // 00:00 UTC of the day the lots expire; zero when they never do
	Lapsed  bool      // past their expiry, waiting for the expiry job
	Points  int64     // the remaining points
	Lots    int64
}

// Cohort is the lots created on one UTC day (see ReportTx.Cohorts).
type Cohort struct {
	Day       time.Time      // 00:00 UTC
	Lots      int64          // how many lots
	Issued    int64          // their points when created
	Remaining int64          // what is left of them
	Lapsed    int64          // of Remaining, the points of lots past their expiry (the expiry job is due)
	Open      int64          // lots with points left that have not lapsed (that may still be spent)
	Used      map[Kind]int64 // the points that debits consumed of them, by the debit's kind
}

// CustomerTotals are sums over every customer account.
type CustomerTotals struct {
	Accounts int64 // how many customer accounts exist
	Balance  int64 // the sum of their balances: the points the programme owes
	Pending  int64 // of Balance, the points not spendable yet
	// Overdrawn is the sum of the balances below zero (zero or negative): what customers owe after a
	// clawback of points they had spent, under an overdraft limit. Balance includes it.
	Overdrawn int64
}

// DailyMovement is the sum of one kind of transaction on one UTC day, in one direction, as its
// customers' accounts saw it.
type DailyMovement struct {
	Day    time.Time // 00:00 UTC
	Kind   Kind
	Credit bool  // the customers were credited (Points > 0); else debited (Points < 0)
	Points int64 // the signed sum of the customer postings
	Count  int64 // how many transactions
}
