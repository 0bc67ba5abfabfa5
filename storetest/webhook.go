package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// testWebhooks checks the webhook outbox: an event is written with, and only with, the ledger write that
// causes it, once per subscription of its type; job events are written once however often emitted;
// leases are exclusive and finishing needs the lease.
func testWebhooks(t *testing.T, h Harness) {
	e := newEnv(t, h)
	now := time.Now().UTC().Truncate(time.Second)
	put := func(id string, types []string, days int, active bool) {
		t.Helper()
		err := e.store.PutSubscription(e.ctx, tally.WebhookSubscription{ID: id, URL: "https://example.com/" + id, EventTypes: types,
			ExpiringDays: days, SecretVersion: 1, Active: active, CreatedAt: now, UpdatedAt: now})
		if err != nil {
			t.Fatal(err)
		}
	}
	// wanted asks a write transaction whether events are wanted, answered with a later read (then) or,
	// with none, on its own.
	wanted := func(then bool) bool {
		t.Helper()
		var want bool
		err := e.store.Update(e.ctx, func(ctx context.Context, tx tally.WriteTx) error {
			answer := tx.EventsWanted(ctx)
			if then {
				if _, err := tx.LockAccounts(ctx, []string{e.customer("nobody")}); err != nil {
					return err
				}
			}
			var err error
			want, err = answer()
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return want
	}
	c := e.customer("webhook-customer")
	e.mustAccrue(c, "before", 10) // no subscription yet: no event
	put("whs_off", []string{tally.EventPointsEarned}, 0, false)
	if wanted(false) || wanted(true) {
		t.Fatal("events wanted with no active subscription")
	}
	put("whs_money", []string{tally.EventPointsEarned, tally.EventPointsRedeemed}, 0, true)
	put("whs_soon", []string{tally.EventPointsExpiringSoon}, 7, true)
	if !wanted(false) || !wanted(true) {
		t.Fatal("events not wanted with active subscriptions")
	}

	earned := e.mustAccrue(c, "w1", 100)
	redeemed := e.mustWrite(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "w2", Amount: 30})
	if _, err := e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "w3", Amount: 1000}); tally.ErrorCode(err) != tally.EINSUFFICIENT {
		t.Fatalf("overdraft: %v", err)
	}
	e.mustAccrue(c, "w1", 100) // a replay causes nothing new

	list := func(sub, status string) []tally.WebhookDelivery {
		t.Helper()
		ds, err := e.store.Deliveries(e.ctx, sub, status, 100)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	money := list("whs_money", "")
	if len(money) != 2 || len(list("whs_off", "")) != 0 || len(list("whs_soon", "")) != 0 {
		t.Fatalf("deliveries: money %+v, want the accrual and the redemption only", money)
	}
	byType := map[string]tally.WebhookDelivery{}
	for _, d := range money {
		byType[d.EventType] = d
	}
	ed, rd := byType[tally.EventPointsEarned], byType[tally.EventPointsRedeemed]
	if ed.EventID != "evt_"+itoa(int(earned.Transaction.Seq)) || rd.EventID != "evt_"+itoa(int(redeemed.Transaction.Seq)) ||
		ed.Status != tally.DeliveryPending || !strings.Contains(string(ed.Payload), `"balance":110`) ||
		!strings.Contains(string(rd.Payload), `"points":30`) || !strings.Contains(string(ed.Payload), `"customer_hash":"th_`+c+`"`) {
		t.Fatalf("deliveries %+v", money)
	}

	// A job's warning, emitted twice, is written once, to the subscription of its number of days only.
	for range 2 {
		w7, err := ledger.ExpiringSoonEvent(c, earned.Transaction.Seq, 100, now.Add(7*24*time.Hour), 7, now)
		if err != nil {
			t.Fatal(err)
		}
		w30, err := ledger.ExpiringSoonEvent(c, earned.Transaction.Seq, 100, now.Add(30*24*time.Hour), 30, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.ledger.EmitEvents(e.ctx, []tally.Event{w7, w30}); err != nil {
			t.Fatal(err)
		}
	}
	if soon := list("whs_soon", ""); len(soon) != 1 || !strings.Contains(string(soon[0].Payload), `"days":7`) {
		t.Fatalf("expiring_soon deliveries %+v", soon)
	}

	// An expiry posts points.expired; a tier change, written in a transaction of its own as the tier
	// job would, tier.changed; a transaction that rolls back leaves no event.
	put("whs_life", []string{tally.EventPointsExpired, tally.EventTierChanged}, 0, true)
	expired := e.mustWrite(ledger.Request{Kind: tally.KindExpiry, Account: c, Key: "x1", Amount: 5, Reason: "lapsed"})
	tier, err := ledger.TierChangedEvent(c, "t1", "silver", "gold", "qualifying points", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Update(e.ctx, func(ctx context.Context, tx tally.WriteTx) error { return tx.InsertEvents(ctx, []tally.Event{tier}) }); err != nil {
		t.Fatal(err)
	}
	rolledBack, err := ledger.TierChangedEvent(c, "t2", "gold", "silver", "period end", now)
	if err != nil {
		t.Fatal(err)
	}
	abort := errors.New("abort")
	if err := e.store.Update(e.ctx, func(ctx context.Context, tx tally.WriteTx) error {
		if err := tx.InsertEvents(ctx, []tally.Event{rolledBack}); err != nil {
			return err
		}
		return abort
	}); !errors.Is(err, abort) {
		t.Fatalf("rolled back update: %v", err)
	}
	life := list("whs_life", "")
	if len(life) != 2 {
		t.Fatalf("lifecycle deliveries %+v, want the expiry and the committed tier change", life)
	}
	for _, d := range life {
		switch d.EventType {
		case tally.EventPointsExpired:
			if d.EventID != "evt_"+itoa(int(expired.Transaction.Seq)) || !strings.Contains(string(d.Payload), `"balance":75`) {
				t.Fatalf("expiry event %+v", d)
			}
		case tally.EventTierChanged:
			if d.EventID != "evt_tier_t1" || !strings.Contains(string(d.Payload), `"to":"gold"`) {
				t.Fatalf("tier event %+v", d)
			}
		default:
			t.Fatalf("unexpected %+v", d)
		}
	}
	if err := e.store.DeleteSubscription(e.ctx, "whs_life"); err != nil {
		t.Fatal(err)
	}

	// Leases: two owners at once share nothing; finishing needs the lease. Times are a minute past every
	// event's, so that all are due whatever the machine's speed.
	now = time.Now().UTC().Add(time.Minute)
	a, err := e.store.LeaseDeliveries(e.ctx, "a", now, now.Add(time.Minute), 2)
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.store.LeaseDeliveries(e.ctx, "b", now, now.Add(time.Minute), 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 2 || len(b) != 1 || a[0].EventID == b[0].EventID && a[0].SubscriptionID == b[0].SubscriptionID {
		t.Fatalf("leases a %d, b %d", len(a), len(b))
	}
	d := a[0]
	err = e.store.FinishDelivery(e.ctx, d.EventID, d.SubscriptionID, "b", tally.DeliveryAttempt{Status: tally.DeliveryDelivered, Tried: true, At: now})
	wantCode(t, err, tally.ECONFLICT)
	retry := now.Add(time.Hour)
	if err := e.store.FinishDelivery(e.ctx, d.EventID, d.SubscriptionID, "a", tally.DeliveryAttempt{Status: tally.DeliveryPending, Tried: true, Error: "HTTP 500", RetryAt: retry, At: now}); err != nil {
		t.Fatal(err)
	}
	if again, err := e.store.LeaseDeliveries(e.ctx, "c", now.Add(2*time.Minute), now.Add(3*time.Minute), 10); err != nil || len(again) != 2 {
		t.Fatalf("after the leases ended, before the retry is due: %d leased (%v), want the other two", len(again), err)
	}
	due, err := e.store.LeaseDeliveries(e.ctx, "d", retry.Add(time.Minute), retry.Add(2*time.Minute), 10)
	if err != nil || len(due) != 3 {
		t.Fatalf("when the retry is due: %d leased (%v), want 3", len(due), err)
	}
	for _, x := range due {
		if x.EventID == d.EventID && x.SubscriptionID == d.SubscriptionID && (x.Attempts != 1 || x.LastError != "HTTP 500") {
			t.Fatalf("retried delivery %+v", x)
		}
		if err := e.store.FinishDelivery(e.ctx, x.EventID, x.SubscriptionID, "d", tally.DeliveryAttempt{Status: tally.DeliveryDelivered, Tried: true, At: retry}); err != nil {
			t.Fatal(err)
		}
	}
	if rest, err := e.store.LeaseDeliveries(e.ctx, "e", retry.Add(time.Hour), retry.Add(2*time.Hour), 10); err != nil || len(rest) != 0 {
		t.Fatalf("after delivery: %d leased (%v)", len(rest), err)
	}
	err = e.store.FinishDelivery(e.ctx, "evt_none", "whs_money", "d", tally.DeliveryAttempt{Status: tally.DeliveryDelivered, At: now})
	wantCode(t, err, tally.ENOTFOUND)
	err = e.store.FinishDelivery(e.ctx, d.EventID, d.SubscriptionID, "d", tally.DeliveryAttempt{Status: "lost", At: now})
	wantCode(t, err, tally.EINVALID)
	if n := len(list("whs_money", tally.DeliveryDelivered)); n != 2 {
		t.Fatalf("%d delivered, want 2", n)
	}

	if err := e.store.DeleteSubscription(e.ctx, "whs_money"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, e.store.DeleteSubscription(e.ctx, "whs_money"), tally.ENOTFOUND)
	if _, err := e.store.Subscription(e.ctx, "whs_money"); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("deleted subscription: %v", err)
	}
	if subs, err := e.store.Subscriptions(e.ctx); err != nil || len(subs) != 2 || subs[0].ID != "whs_off" || subs[1].ExpiringDays != 7 {
		t.Fatalf("subscriptions %+v, %v", subs, err)
	}
	e.mustVerify()
}
