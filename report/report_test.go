package report

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

func TestPeriods(t *testing.T) {
	d := func(s string) time.Time { t, _ := time.Parse(dateLayout, s); return t }
	for _, c := range []struct {
		period   Period
		from, to string
		want     string // label start..end, ...
	}{
		{Day, "2026-02-27", "2026-03-01", "2026-02-27 2026-02-27..2026-02-27, 2026-02-28 2026-02-28..2026-02-28, 2026-03-01 2026-03-01..2026-03-01"},
		{Month, "2026-01-15", "2026-03-10", "2026-01 2026-01-15..2026-01-31, 2026-02 2026-02-01..2026-02-28, 2026-03 2026-03-01..2026-03-10"},
		{Quarter, "2025-12-31", "2026-04-01", "2025-Q4 2025-12-31..2025-12-31, 2026-Q1 2026-01-01..2026-03-31, 2026-Q2 2026-04-01..2026-04-01"},
		{Year, "2024-02-29", "2025-12-31", "2024 2024-02-29..2024-12-31, 2025 2025-01-01..2025-12-31"},
	} {
		q := RollForwardQuery{From: d(c.from), To: d(c.to), Period: c.period}
		rows, err := q.periods()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range rows {
			got = append(got, r.Period+" "+r.Start.Format(dateLayout)+".."+r.End.Format(dateLayout))
		}
		if strings.Join(got, ", ") != c.want {
			t.Errorf("%s %s..%s:\n%s\nwant\n%s", c.period, c.from, c.to, strings.Join(got, ", "), c.want)
		}
	}
}

func TestPointValue(t *testing.T) {
	for _, c := range []struct {
		value  string
		points int64
		want   string
	}{
		{"0.01", 12345, "123.45"},
		{"0.01", -5, "-0.05"},
		{"0.0125", 3, "0.0375"},
		{"2", 7, "14.00"},
		{"0.000000001", 1, "0.000000001"},
		{"999999999999.999999999", tally.MaxAmount, "9007199254740990999990992800.745259009"},
	} {
		v, err := ParsePointValue(c.value, "EUR")
		if err != nil {
			t.Fatal(err)
		}
		if got := v.Of(c.points); got != c.want {
			t.Errorf("%s x %d = %s, want %s", c.value, c.points, got, c.want)
		}
	}
	// Money adds up exactly as points do: the sum of the values is the value of the sum.
	v, _ := ParsePointValue("0.003", "EUR")
	if v.Of(1)+" "+v.Of(2)+" "+v.Of(3) != "0.003 0.006 0.009" {
		t.Errorf("thirds of a cent: %s %s %s", v.Of(1), v.Of(2), v.Of(3))
	}
	for _, bad := range [][2]string{{"0", "EUR"}, {"-1", "EUR"}, {"1e-2", "EUR"}, {"0.1234567891", "EUR"}, {"0.01", "eur"}, {"0.01", ""}, {"", "EUR"}, {".5", "EUR"}} {
		if _, err := ParsePointValue(bad[0], bad[1]); tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("%q %q: %v, want invalid", bad[0], bad[1], err)
		}
	}
	if v, err := ParsePointValue("", ""); v != nil || err != nil {
		t.Errorf("no value: %v, %v", v, err)
	}
}

func TestRatio(t *testing.T) {
	for _, c := range []struct {
		num, den int64
		want     string
	}{{70, 150, "0.4667"}, {0, 10, "0.0000"}, {10, 10, "1.0000"}, {1, 3, "0.3333"}, {2, 3, "0.6667"}, {1, 20000, "0.0001"}, {1, 20001, "0.0000"}} {
		if got := ratio(c.num, c.den, RateDecimals); got != c.want {
			t.Errorf("%d/%d = %s, want %s", c.num, c.den, got, c.want)
		}
	}
}

func TestWrite(t *testing.T) {
	v, _ := ParsePointValue("0.01", "EUR")
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	asOf := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC)
	rf := RollForward{Period: Month, From: day, To: day.AddDate(0, 1, -1), AsOf: asOf, Value: v,
		Rows:  []RollForwardRow{{Period: "2026-03", Start: day, End: day.AddDate(0, 1, -1), Opening: 10, Issued: 5, Redeemed: -3, Expired: -1, Adjusted: 2, Closing: 13}},
		Check: Reconciliation{CustomerBalances: 13, Reconciled: true}}
	o := Outstanding{AsOf: asOf, Total: 30, ByStatus: []OutstandingLine{{Key: "pending", Points: 10, Lots: 1}, {Key: "active", Points: 20, Lots: 2}},
		ByExpiry: []OutstandingLine{{Key: "2026-05", Points: 20, Lots: 2, Lapsed: 20}, {Key: Never, Points: 10, Lots: 1, Pending: 10}}}
	b := Breakage{AsOf: asOf, Value: v, Cohorts: []CohortLine{{Cohort: "2026-01", Lots: 2, Issued: 150, Redeemed: 30, Expired: 70, Remaining: 50, Lapsed: 50, Matured: true, Rate: "0.4667"}}}
	for _, c := range []struct {
		name string
		r    Report
		f    Format
		want string
	}{
		{"rollforward csv", rf, CSV, "period,start,end,opening,issued,redeemed,expired,adjusted,closing,currency,opening_value,issued_value,redeemed_value,expired_value,adjusted_value,closing_value\n" +
			"2026-03,2026-03-01,2026-03-31,10,5,-3,-1,2,13,EUR,0.10,0.05,-0.03,-0.01,0.02,0.13\n"},
		{"outstanding csv", o, CSV, "dimension,bucket,points,lots,pending_points,lapsed_points\nstatus,pending,10,1,,\nstatus,active,20,2,,\n" +
			"expiry_month,2026-05,20,2,0,20\nexpiry_month,never,10,1,10,0\n"},
		{"breakage csv", b, CSV, "cohort,lots,issued,redeemed,expired,other,remaining,lapsed,matured,breakage_rate,currency,issued_value,expired_value\n" +
			"2026-01,2,150,30,70,0,50,50,true,0.4667,EUR,1.50,0.70\n"},
		{"rollforward json", rf, JSON, `"value": {
        "adjusted": "0.02",
        "closing": "0.13",`},
		{"outstanding json", o, JSON, `"by_expiry_month": [
    {
      "month": "2026-05",
      "points": 20,
      "lots": 2,
      "pending_points": 0,
      "lapsed_points": 20
    },`},
		{"breakage json", b, JSON, `"breakage_rate": "0.4667",
      "issued_value": "1.50",`},
	} {
		var buf bytes.Buffer
		if err := c.r.Write(&buf, c.f); err != nil {
			t.Fatal(err)
		}
		if c.f == CSV && buf.String() != c.want || c.f == JSON && !strings.Contains(buf.String(), c.want) {
			t.Errorf("%s:\n%s\nwant\n%s", c.name, buf.String(), c.want)
		}
	}
}
