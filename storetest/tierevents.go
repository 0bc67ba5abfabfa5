package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

// testTierEvents checks that tier changes, the upgrade an accrual earns and a review's downgrade, each
// write one tier.changed event with them, and that a replayed accrual writes none.
func testTierEvents(t *testing.T, h Harness) {
	p := newProgrammeEnv(t, h, tierProgramme)
	at := p.clock.Now()
	if err := p.store.PutSubscription(p.ctx, tally.WebhookSubscription{ID: "whs_tiers", URL: "https://crm.example.com/tiers",
		EventTypes: []string{tally.EventTierChanged}, SecretVersion: 1, Active: true, CreatedAt: at, UpdatedAt: at}); err != nil {
		t.Fatal(err)
	}
	c := p.customer("tier-events")
	p.clock.Set(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	up := p.mustEvent(c, "te1", map[string]any{"type": "WebChat", "points": 520})
	p.mustEvent(c, "te1", map[string]any{"type": "WebChat", "points": 520}) // a replay
	p.clock.Set(time.Date(2027, 4, 3, 0, 0, 0, 0, time.UTC))
	if _, err := p.l.ReviewTiers(p.ctx, time.Date(2027, 4, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	ds, err := p.store.Deliveries(p.ctx, "whs_tiers", "", 10)
	if err != nil || len(ds) != 2 {
		t.Fatalf("tier.changed deliveries %+v (%v), want the upgrade and the downgrade", ds, err)
	}
	var sawUp, sawDown bool
	for _, d := range ds {
		body := string(d.Payload)
		switch {
		case d.EventID == "evt_tier_up_"+itoa(int(up.Transaction.Seq)) && strings.Contains(body, `"from":"base","to":"gold"`):
			sawUp = true
		case strings.HasPrefix(d.EventID, "evt_tier_review_") && strings.Contains(body, `"from":"gold","to":"base"`):
			sawDown = true
		}
		if !strings.Contains(body, `"customer_hash":"th_`+c+`"`) {
			t.Errorf("event %s does not name the customer: %s", d.EventID, body)
		}
	}
	if !sawUp || !sawDown {
		t.Fatalf("tier.changed deliveries %+v", ds)
	}
}
