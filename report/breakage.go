package report

import (
	"context"
	"math/big"
	"sort"
	"time"

	"github.com/tally-ledger/tally"
)

// Breakage is, per cohort (the lots earned in one UTC month), what became of the points issued: redeemed,
// expired, taken by other debits (negative adjustments, clawbacks, an overdraft settled), or still
// there. A cohort has matured when its month is over and none of its lots can still be spent (every
// one is used up or past its expiry); its breakage rate is then expired / issued.
type Breakage struct {
	AsOf    time.Time
	Value   *PointValue
	Cohorts []CohortLine
}

// CohortLine is one cohort. Redeemed, Expired and Other are the points debits of each sort took from
// its lots; Remaining is what its lots still hold, of which Lapsed is past expiry and waits for the
// expiry job (it is not counted as expired until the job posts it).
type CohortLine struct {
	Cohort    string // YYYY-MM
	Lots      int64
	Issued    int64
	Redeemed  int64
	Expired   int64
	Other     int64
	Remaining int64
	Lapsed    int64
	Matured   bool
	// Rate is Expired / Issued as a decimal fraction with RateDecimals digits, rounded half up; "" when
	// the cohort has not matured.
	Rate string
}

// RateDecimals is the precision of a breakage rate (0.1234 is 12.34 %).
const RateDecimals = 4

// BuildBreakage reads one snapshot of store and makes the breakage report at now.
func BuildBreakage(ctx context.Context, store tally.ReportStore, value *PointValue, now time.Time) (Breakage, error) {
	var cohorts []tally.Cohort
	err := store.Report(ctx, func(ctx context.Context, tx tally.ReportTx) error {
		var err error
		cohorts, err = tx.Cohorts(ctx, now)
		return err
	})
	if err != nil {
		return Breakage{}, err
	}
	b := Breakage{AsOf: now.UTC(), Value: value, Cohorts: []CohortLine{}}
	thisMonth := month(now).Format("2006-01")
	byMonth := map[string]*CohortLine{}
	open := map[string]int64{}
	for _, c := range cohorts {
		key := month(c.Day).Format("2006-01")
		l := byMonth[key]
		if l == nil {
			l = &CohortLine{Cohort: key}
			byMonth[key] = l
		}
		l.Lots += c.Lots
		l.Issued += c.Issued
		l.Remaining += c.Remaining
		l.Lapsed += c.Lapsed
		open[key] += c.Open
		for kind, points := range c.Used {
			switch kind {
			case tally.KindRedemption:
				l.Redeemed += points
			case tally.KindExpiry:
				l.Expired += points
			default:
				l.Other += points
			}
		}
	}
	for key, l := range byMonth {
		l.Matured = open[key] == 0 && key < thisMonth
		if l.Matured && l.Issued > 0 {
			l.Rate = ratio(l.Expired, l.Issued, RateDecimals)
		}
		b.Cohorts = append(b.Cohorts, *l)
	}
	sort.Slice(b.Cohorts, func(i, j int) bool { return b.Cohorts[i].Cohort < b.Cohorts[j].Cohort })
	return b, nil
}

// ratio writes num / den with the given decimals, rounded half up (num, den >= 0, den > 0).
func ratio(num, den int64, decimals int) string {
	scale := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(decimals)), nil)
	n := new(big.Int).Mul(big.NewInt(num), scale)
	n.Mul(n, big.NewInt(2))
	n.Add(n, big.NewInt(den))
	n.Quo(n, new(big.Int).Mul(big.NewInt(den), big.NewInt(2)))
	return formatScaled(n, decimals, decimals)
}
