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
	// their customer accounts (the customer's postings), ordered by day, kind, then debits first.
	DailyMovements(ctx context.Context) ([]DailyMovement, error)
}

// CustomerTotals are sums over every customer account.
type CustomerTotals struct {
	Accounts int64 // how many customer accounts exist
	Balance  int64 // the sum of their balances: the points the programme owes
	Pending  int64 // of Balance, the points not spendable yet
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
