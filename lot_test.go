package tally_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

func TestExpiryPolicy(t *testing.T) {
	earned := time.Date(2026, 2, 14, 15, 30, 0, 0, time.UTC)
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		p    tally.ExpiryPolicy
		want *time.Time
	}{
		{tally.ExpiryPolicy{Policy: tally.ExpireNever}, nil},
		{tally.ExpiryPolicy{}, nil},
		{tally.ExpiryPolicy{Policy: tally.ExpireAfterDays, Days: 30}, ptr(earned.AddDate(0, 0, 30))},
		{tally.ExpiryPolicy{Policy: tally.ExpireEndOfMonth}, ptr(day(2026, 3, 1))},
		{tally.ExpiryPolicy{Policy: tally.ExpireEndOfMonth, Months: 12}, ptr(day(2027, 3, 1))},
		{tally.ExpiryPolicy{Policy: tally.ExpireEndOfQuarter}, ptr(day(2026, 4, 1))},
		{tally.ExpiryPolicy{Policy: tally.ExpireEndOfQuarter, Months: 2}, ptr(day(2026, 7, 1))},
		{tally.ExpiryPolicy{Policy: tally.ExpireEndOfYear}, ptr(day(2027, 1, 1))},
		{tally.ExpiryPolicy{Policy: tally.ExpireEndOfYear, Months: 11}, ptr(day(2028, 1, 1))},
	} {
		got := tc.p.ExpiresAt(earned)
		if (got == nil) != (tc.want == nil) || got != nil && !got.Equal(*tc.want) {
			t.Errorf("%+v: expires %v, want %v", tc.p, got, tc.want)
		}
	}
}

func ptr(t time.Time) *time.Time { return &t }

func TestParseLotPolicy(t *testing.T) {
	p, err := tally.ParseLotPolicy([]byte(`{"earning_rules":[],"expiry":{"policy":"end_of_quarter","months":12},"return_policy":"allow_negative","overdraft_limit":500}`))
	if err != nil || p.Expiry.Policy != tally.ExpireEndOfQuarter || p.Expiry.Months != 12 || p.Return != tally.ReturnAllowNegative || p.OverdraftLimit != 500 {
		t.Fatalf("ParseLotPolicy = %+v, %v", p, err)
	}
	p, err = tally.ParseLotPolicy([]byte(`{}`))
	if err != nil || p.Expiry.Policy != tally.ExpireNever || p.Return != tally.ReturnWithinBalance {
		t.Fatalf("defaults = %+v, %v", p, err)
	}
	for body, want := range map[string]string{
		`{"expiry":{"policy":"days"}}`:                             "days between 1",
		`{"expiry":{"policy":"weekly"}}`:                           "unknown policy",
		`{"expiry":{"policy":"never","days":3}}`:                   "neither days nor months",
		`{"return_policy":"sometimes"}`:                            "unknown return_policy",
		`{"return_policy":"within_balance","overdraft_limit":5}`:   "overdraft_limit is for",
		`{"return_policy":"allow_negative","overdraft_limit":-1}`:  "between 0",
		`{"expiry":{"policy":"end_of_month","months":2,"days":1}}`: "no days",
	} {
		if _, err := tally.ParseLotPolicy([]byte(body)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error mentioning %q", body, err, want)
		}
	}
}

func TestLotLess(t *testing.T) {
	a, b := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	lots := []tally.Lot{{Seq: 1}, {Seq: 2, ExpiresAt: &b}, {Seq: 3, ExpiresAt: &a}, {Seq: 4, ExpiresAt: &a}}
	order := []int{2, 3, 1, 0} // soonest expiry first, then seq; never last
	for i := 0; i+1 < len(order); i++ {
		if !tally.LotLess(lots[order[i]], lots[order[i+1]]) || tally.LotLess(lots[order[i+1]], lots[order[i]]) {
			t.Fatalf("lot %d should come before lot %d", lots[order[i]].Seq, lots[order[i+1]].Seq)
		}
	}
}
