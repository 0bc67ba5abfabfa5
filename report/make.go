package report

import (
	"context"
	"io"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
)

// Names are the reports, as `tally report NAME` and /v1/admin/reports/NAME name them.
var Names = []string{"outstanding", "rollforward", "breakage"}

// Report is a report made, ready to be written.
type Report interface {
	Write(w io.Writer, f Format) error
	// Balanced reports whether the report reconciled with the accounts read in its snapshot (always
	// true for a report that has nothing to reconcile).
	Balanced() bool
}

// Balanced implements Report.
func (rf RollForward) Balanced() bool { return rf.Check.Reconciled }

// Balanced implements Report.
func (o Outstanding) Balanced() bool { return o.Reconciled }

// Balanced implements Report.
func (b Breakage) Balanced() bool { return true }

// Params are a report's parameters as text, from command-line flags or query parameters alike, so that
// both are read by one set of rules.
type Params struct {
	From, To   string // rollforward: dates (YYYY-MM-DD, UTC), both included; default Jan 1st of To's year, today
	Period     string // rollforward: day, month (default), quarter or year
	PointValue string // money per point, such as 0.01; empty: points only
	Currency   string // with PointValue: an ISO 4217 code
}

// Make checks p and makes report name from one snapshot of store at now. EINVALID for a bad parameter,
// ENOTFOUND for an unknown report.
func Make(ctx context.Context, store tally.ReportStore, name string, p Params, now time.Time) (Report, error) {
	value, err := ParsePointValue(p.PointValue, p.Currency)
	if err != nil {
		return nil, err
	}
	if name != "rollforward" && (p.From != "" || p.To != "" || p.Period != "") {
		return nil, tally.Errorf(tally.EINVALID, "from, to and period are parameters of the rollforward report only")
	}
	switch name {
	case "outstanding":
		return BuildOutstanding(ctx, store, value, now)
	case "breakage":
		return BuildBreakage(ctx, store, value, now)
	case "rollforward":
		q := RollForwardQuery{Value: value, Period: Month}
		if p.Period != "" {
			if q.Period, err = ParsePeriod(p.Period); err != nil {
				return nil, err
			}
		}
		q.To = dayOf(now)
		if p.To != "" {
			if q.To, err = ParseDate("to", p.To); err != nil {
				return nil, err
			}
		}
		q.From = Year.start(q.To)
		if p.From != "" {
			if q.From, err = ParseDate("from", p.From); err != nil {
				return nil, err
			}
		}
		return BuildRollForward(ctx, store, q, now)
	}
	return nil, tally.Errorf(tally.ENOTFOUND, "no report %q: expected %s", name, strings.Join(Names, ", "))
}
