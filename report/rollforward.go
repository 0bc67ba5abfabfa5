package report

import (
	"context"
	"time"

	"github.com/tally-ledger/tally"
)

// MaxRows bounds the rows of one roll-forward (ten years of days), so that one request cannot ask for
// an unbounded answer.
const MaxRows = 3660

// RollForwardQuery asks for a roll-forward from the first day of From to the last day of To (both UTC
// dates, included), one row per Period. Value, when set, adds money columns.
type RollForwardQuery struct {
	From, To time.Time
	Period   Period
	Value    *PointValue
}

// RollForward is the movement of the points the programme owes its customers, period by period.
// Every amount is signed, as it moved the customers' balances: Closing = Opening + Issued + Redeemed +
// Expired + Adjusted, and each row's Closing is the next row's Opening.
//
// What goes where (decided once, here):
//   - Issued: accruals, and adjustments that credit the customer (goodwill, reinstated points): every
//     credit that creates a lot of points.
//   - Redeemed: redemptions (negative).
//   - Expired: expiry transactions (negative).
//   - Adjusted: adjustments that debit the customer, and every reversal, either way (a reversed accrual
//     or clawback is negative, a reversed redemption or expiry positive): corrections of what was
//     posted, kept apart from the business of the period so that issuance is not netted silently.
type RollForward struct {
	Period Period
	From   time.Time // the first day
	To     time.Time // the last day
	AsOf   time.Time // when the snapshot was read
	Value  *PointValue
	Rows   []RollForwardRow
	Check  Reconciliation
}

// RollForwardRow is one period. Start and End are its first and last days, clipped to the report's.
type RollForwardRow struct {
	Period   string
	Start    time.Time
	End      time.Time
	Opening  int64
	Issued   int64
	Redeemed int64
	Expired  int64
	Adjusted int64
	Closing  int64
}

// Reconciliation ties the roll-forward to the accounts, from the same snapshot: the last Closing plus
// what moved after To equals the sum of the customer balances.
type Reconciliation struct {
	CustomerBalances int64 // the sum of every customer account's balance
	LaterMovements   int64 // what transactions after To moved
	Reconciled       bool
}

// BuildRollForward reads one snapshot of store and makes the roll-forward q asks for. EINVALID for a
// query out of bounds.
func BuildRollForward(ctx context.Context, store tally.ReportStore, q RollForwardQuery, now time.Time) (RollForward, error) {
	rows, err := q.periods()
	if err != nil {
		return RollForward{}, err
	}
	var totals tally.CustomerTotals
	var moves []tally.DailyMovement
	err = store.Report(ctx, func(ctx context.Context, tx tally.ReportTx) error {
		var err error
		if totals, err = tx.CustomerTotals(ctx); err != nil {
			return err
		}
		moves, err = tx.DailyMovements(ctx)
		return err
	})
	if err != nil {
		return RollForward{}, err
	}
	rf := RollForward{Period: q.Period, From: q.From, To: q.To, AsOf: now.UTC(), Value: q.Value, Rows: rows}
	var opening int64
	i := 0
	for _, m := range moves {
		switch {
		case m.Day.Before(q.From):
			opening += m.Points
			continue
		case m.Day.After(q.To):
			rf.Check.LaterMovements += m.Points
			continue
		}
		for m.Day.After(rows[i].End) {
			i++
		}
		r := &rows[i]
		switch {
		case m.Kind == tally.KindAccrual, m.Kind == tally.KindAdjustment && m.Credit:
			r.Issued += m.Points
		case m.Kind == tally.KindRedemption:
			r.Redeemed += m.Points
		case m.Kind == tally.KindExpiry:
			r.Expired += m.Points
		default: // debiting adjustments, reversals
			r.Adjusted += m.Points
		}
	}
	for i := range rows {
		rows[i].Opening = opening
		rows[i].Closing = opening + rows[i].Issued + rows[i].Redeemed + rows[i].Expired + rows[i].Adjusted
		opening = rows[i].Closing
	}
	rf.Check.CustomerBalances = totals.Balance
	rf.Check.Reconciled = opening+rf.Check.LaterMovements == totals.Balance
	return rf, nil
}

// periods validates q and returns its empty rows.
func (q *RollForwardQuery) periods() ([]RollForwardRow, error) {
	if q.Period == "" {
		q.Period = Month
	}
	if _, err := ParsePeriod(string(q.Period)); err != nil {
		return nil, err
	}
	q.From, q.To = dayOf(q.From), dayOf(q.To)
	if q.To.Before(q.From) {
		return nil, tally.Errorf(tally.EINVALID, "from (%s) is after to (%s)", q.From.Format(dateLayout), q.To.Format(dateLayout))
	}
	var rows []RollForwardRow
	for start := q.Period.start(q.From); !start.After(q.To); start = q.Period.next(start) {
		if len(rows) == MaxRows {
			return nil, tally.Errorf(tally.EINVALID, "from %s to %s by %s is more than %d rows: choose a longer period or a shorter range",
				q.From.Format(dateLayout), q.To.Format(dateLayout), q.Period, MaxRows)
		}
		end := q.Period.next(start).AddDate(0, 0, -1)
		r := RollForwardRow{Period: q.Period.label(start), Start: start, End: end}
		if r.Start.Before(q.From) {
			r.Start = q.From
		}
		if r.End.After(q.To) {
			r.End = q.To
		}
		rows = append(rows, r)
	}
	return rows, nil
}
