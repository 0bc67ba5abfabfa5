package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// testWarnExpiring checks the expiring-soon job: it warns of the open lots that expire within a
// subscription's days ahead (not of later ones, lapsed ones, or spent ones), once however often it runs.
func testWarnExpiring(t *testing.T, h Harness) {
	e := newLotsEnv(t, h, tally.LotPolicy{})
	now := e.clk.Now()
	sub := func(id string, types []string, days int, active bool) {
		t.Helper()
		err := e.store.PutSubscription(e.ctx, tally.WebhookSubscription{ID: id, URL: "https://example.com/" + id, EventTypes: types,
			ExpiringDays: days, SecretVersion: 1, Active: active, CreatedAt: now, UpdatedAt: now})
		if err != nil {
			t.Fatal(err)
		}
	}
	deliveries := func(id string) []tally.WebhookDelivery {
		t.Helper()
		ds, err := e.store.Deliveries(e.ctx, id, "", 100)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	warn := func() int {
		t.Helper()
		n, err := e.l.WarnExpiring(e.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := warn(); n != 0 {
		t.Fatalf("no subscription: %d warnings", n)
	}

	c, d := e.customer("expiring-a"), e.customer("expiring-b")
	soon := e.accrue(c, "soon", 40, expiring(now.Add(3*24*time.Hour)))
	e.accrue(c, "later", 50, expiring(now.Add(20*24*time.Hour)))
	e.accrue(c, "never", 60, expiring(now.Add(10*365*24*time.Hour)))
	e.accrue(d, "spent", 10, expiring(now.Add(24*time.Hour)))
	e.write(ledger.Request{Kind: tally.KindRedemption, Account: d, Key: "spend", Amount: 10})
	e.accrue(d, "lapsing", 5, expiring(now.Add(time.Hour)))

	sub("whs_week", []string{tally.EventPointsExpiringSoon}, 7, true)
	sub("whs_other", []string{tally.EventPointsEarned}, 7, true)       // not subscribed to warnings
	sub("whs_off", []string{tally.EventPointsExpiringSoon}, 30, false) // inactive: its 30 days are not looked at
	e.clk.advance(2 * time.Hour)                                       // "lapsing" has lapsed, not yet expired by the job

	for range 2 {
		if n := warn(); n != 1 {
			t.Fatalf("warnings %d, want 1 (the lot expiring in 3 days)", n)
		}
	}
	got := deliveries("whs_week")
	if len(got) != 1 || got[0].EventType != tally.EventPointsExpiringSoon ||
		!strings.Contains(string(got[0].Payload), `"points":40`) || !strings.Contains(string(got[0].Payload), `"days":7`) {
		t.Fatalf("deliveries %+v, want one warning of the 40 points of lot %d", got, soon.Transaction.Seq)
	}
	if len(deliveries("whs_other")) != 0 || len(deliveries("whs_off")) != 0 {
		t.Fatal("a subscription without warnings, or inactive, got one")
	}

	// Two weeks on, the 20-day lot comes within the week: one more warning, the first not repeated.
	e.clk.advance(14 * 24 * time.Hour)
	if n := warn(); n != 1 {
		t.Fatalf("warnings %d two weeks on, want 1", n)
	}
	if got := deliveries("whs_week"); len(got) != 2 {
		t.Fatalf("deliveries %d two weeks on, want 2", len(got))
	}
}
