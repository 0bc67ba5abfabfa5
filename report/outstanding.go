package report

import (
	"context"
	"sort"
	"time"

	"github.com/tally-ledger/tally"
)

// Outstanding is the points the programme owes, from the lots that still hold some: by status (pending
// points are not spendable yet; active ones are) and by the month they expire in. It reconciles with
// the accounts read in the same snapshot: the lots hold every positive balance (an overdrawn account has
// no open lot), and the pending lots hold every account's pending points.
type Outstanding struct {
	AsOf     time.Time
	Value    *PointValue
	Total    int64 // the remaining points of every open lot
	ByStatus []OutstandingLine
	ByExpiry []OutstandingLine
	Accounts tally.CustomerTotals
	// Reconciled: Total = Accounts.Balance - Accounts.Overdrawn and the pending lots hold
	// Accounts.Pending.
	Reconciled bool
}

// OutstandingLine is one bucket. Key is "pending" or "active" by status; by expiry, a month (YYYY-MM,
// UTC) or "never". Lapsed points (by expiry only) are past their expiry and wait for the expiry job.
type OutstandingLine struct {
	Key     string
	Points  int64
	Lots    int64
	Pending int64 // of Points, the pending ones (by expiry only)
	Lapsed  int64 // of Points, the lapsed ones (by expiry only)
}

// Never is the expiry bucket of points that never expire.
const Never = "never"

// BuildOutstanding reads one snapshot of store and sums the outstanding points at now.
func BuildOutstanding(ctx context.Context, store tally.ReportStore, value *PointValue, now time.Time) (Outstanding, error) {
	var buckets []tally.LotBucket
	var totals tally.CustomerTotals
	err := store.Report(ctx, func(ctx context.Context, tx tally.ReportTx) error {
		var err error
		if totals, err = tx.CustomerTotals(ctx); err != nil {
			return err
		}
		buckets, err = tx.OpenLots(ctx, now)
		return err
	})
	if err != nil {
		return Outstanding{}, err
	}
	o := Outstanding{AsOf: now.UTC(), Value: value, Accounts: totals,
		ByStatus: []OutstandingLine{{Key: "pending"}, {Key: "active"}}}
	byMonth := map[string]*OutstandingLine{}
	for _, b := range buckets {
		o.Total += b.Points
		s := &o.ByStatus[1]
		if b.Pending {
			s = &o.ByStatus[0]
		}
		s.Points += b.Points
		s.Lots += b.Lots
		key := Never
		if !b.Expires.IsZero() {
			key = month(b.Expires).Format("2006-01")
		}
		m := byMonth[key]
		if m == nil {
			m = &OutstandingLine{Key: key}
			byMonth[key] = m
		}
		m.Points += b.Points
		m.Lots += b.Lots
		if b.Pending {
			m.Pending += b.Points
		}
		if b.Lapsed {
			m.Lapsed += b.Points
		}
	}
	for _, m := range byMonth {
		o.ByExpiry = append(o.ByExpiry, *m)
	}
	// Months in order, points that never expire last.
	sort.Slice(o.ByExpiry, func(i, j int) bool {
		a, b := o.ByExpiry[i].Key, o.ByExpiry[j].Key
		if (a == Never) != (b == Never) {
			return b == Never
		}
		return a < b
	})
	o.Reconciled = o.Total == totals.Balance-totals.Overdrawn && o.ByStatus[0].Points == totals.Pending
	return o, nil
}
