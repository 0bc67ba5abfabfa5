package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// testQualifyingBound holds the ledger to its shortcut for tier upgrades: an accrual sums the customer's
// qualifying window only when the account's stored bound could reach a higher tier, so the bound must
// never fall below the window's sum, must be exact once summed, and must not be trusted for a window
// older than the one it was summed for.
func testQualifyingBound(t *testing.T, h Harness) {
	p := newProgrammeEnv(t, h, tierProgramme) // silver 100, gold 500, 12 months
	c := p.customer("ager")
	chat := func(id string, points int) ledger.Receipt {
		return p.mustEvent(c, id, map[string]any{"type": "WebChat", "points": points})
	}
	p.clock.Set(time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC))
	if rc := chat("old", 450); rc.TierChange == nil || rc.TierChange.To != "silver" {
		t.Fatalf("450 points: %+v", rc.TierChange)
	}
	if b, from := p.bound(c); b != 450 || from.IsZero() {
		t.Fatalf("bound after 450 points: %d from %v", b, from)
	}
	// Thirteen months on, the 450 points have left the window. The bound (450 + 60) reaches gold, so the
	// window is summed: 60 points, no upgrade, and the exact sum becomes the bound from the window's start.
	p.clock.Set(time.Date(2026, 2, 20, 12, 0, 0, 0, time.UTC))
	if rc := chat("new1", 60); rc.TierChange != nil || rc.Tier != "silver" {
		t.Fatalf("60 points with 450 aged out: %+v, tier %q", rc.TierChange, rc.Tier)
	}
	since := time.Date(2025, 2, 20, 12, 0, 0, 0, time.UTC)
	if b, from := p.bound(c); b != 60 || !from.Equal(since) {
		t.Fatalf("bound after the window was summed: %d from %v, want 60 from %v", b, from, since)
	}
	// A reversal lowers the sum, not the bound (which stays an upper bound).
	rc := chat("new2", 300)
	if rc.TierChange != nil {
		t.Fatalf("360 points: %+v", rc.TierChange)
	}
	p.mustWrite(ledger.Request{Kind: tally.KindReversal, Key: "undo-new2", ReversesSeq: rc.Transaction.Seq, Reason: "refund", Actor: "test"})
	if b, _ := p.bound(c); b != 360 {
		t.Fatalf("bound after a reversal: %d, want 360", b)
	}
	// 360 + 150 in the bound reaches gold; the window holds 60 + 150: still silver.
	if rc := chat("new3", 150); rc.TierChange != nil || rc.Tier != "silver" {
		t.Fatalf("210 points after a reversal: %+v, tier %q", rc.TierChange, rc.Tier)
	}
	if b, _ := p.bound(c); b != 210 {
		t.Fatalf("bound once summed after a reversal: %d, want 210", b)
	}
	// Well below gold, the bound answers alone; at 500 the sum upgrades at once.
	chat("new4", 100)
	if rc := chat("new5", 190); rc.TierChange == nil || rc.TierChange.To != "gold" || rc.Tier != "gold" {
		t.Fatalf("500 points in the window: %+v, tier %q", rc.TierChange, rc.Tier)
	}

	// A programme with a longer window must not trust a bound summed for a shorter one: for a customer
	// whose old points left the 12-month window but are inside 24 months, the next accrual sums again.
	d := p.customer("longer")
	p.clock.Set(time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC))
	p.mustEvent(d, "d-old", map[string]any{"type": "WebChat", "points": 90})
	p.clock.Set(time.Date(2026, 2, 20, 12, 0, 0, 0, time.UTC))
	p.mustEvent(d, "d-new", map[string]any{"type": "WebChat", "points": 9}) // bound 99: no sum, silver not reached
	if b, from := p.bound(d); b != 99 || from.After(time.Date(2025, 1, 10, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("bound below silver: %d from %v", b, from)
	}
	p.mustEvent(d, "d-new2", map[string]any{"type": "WebChat", "points": 2}) // bound 101: summed (11), reset
	if b, _ := p.bound(d); b != 11 {
		t.Fatalf("bound once summed: %d, want 11", b)
	}
	_, long := programmeLedger(t, p, `{
	"earning_rules": [{"name": "chat", "filter": "$.type = 'WebChat'", "points": "points"}],
	"tiers": [{"name": "base", "min_points": 0}, {"name": "silver", "min_points": 100}, {"name": "gold", "min_points": 500}],
	"tier_qualification": {"window_months": 24, "review": "month"}
}`)
	fields := map[string]any{"type": "WebChat", "points": 1}
	rc, err := long.Write(p.ctx, ledger.Request{Kind: tally.KindAccrual, Event: true, Channel: "webhook", Key: "d-long",
		Account: d, Earn: fields, Identity: "event:" + d})
	if err != nil {
		t.Fatal(err)
	}
	if rc.TierChange == nil || rc.TierChange.To != "silver" {
		t.Fatalf("102 points in 24 months: %+v", rc.TierChange)
	}
}

// newAccountBound is where a new account's qualifying bound (0) starts: it holds for every window.
var newAccountBound = time.Unix(0, 0).UTC()

// bound reads the account's qualifying bound as the ledger sees it under the lock.
func (p *programmeEnv) bound(account string) (int64, time.Time) {
	p.t.Helper()
	var a tally.Account
	err := p.store.Update(p.ctx, func(ctx context.Context, tx tally.WriteTx) error {
		m, err := tx.LockAccounts(ctx, []string{account})
		a = m[account]
		return err
	})
	if err != nil {
		p.t.Fatal(err)
	}
	return a.QualifyingBound, a.QualifyingFrom
}

// testQualifyingBoundStored checks that a store keeps an account's bound and where it starts, and keeps
// "no bound known" (a zero QualifyingFrom) as such.
func testQualifyingBoundStored(t *testing.T, h Harness) {
	e := newEnv(t, h)
	c := e.customer("stored")
	e.mustAccrue(c, "a", 70)
	from := time.Date(2026, 5, 1, 8, 30, 0, 0, time.UTC)
	for _, want := range []struct {
		bound int64
		from  time.Time
	}{{1234, from}, {5, time.Time{}}} {
		err := e.store.Update(e.ctx, func(ctx context.Context, tx tally.WriteTx) error {
			m, err := tx.LockAccounts(ctx, []string{c})
			if err != nil {
				return err
			}
			a := m[c]
			a.QualifyingBound, a.QualifyingFrom = want.bound, want.from
			return tx.UpdateAccounts(ctx, []tally.Account{a})
		})
		if err != nil {
			t.Fatal(err)
		}
		var got tally.Account
		err = e.store.Update(e.ctx, func(ctx context.Context, tx tally.WriteTx) error {
			m, err := tx.LockAccounts(ctx, []string{c})
			got = m[c]
			return err
		})
		if err != nil || got.QualifyingBound != want.bound || !got.QualifyingFrom.Equal(want.from) {
			t.Fatalf("stored bound %d from %v, read back %d from %v (%v)", want.bound, want.from, got.QualifyingBound, got.QualifyingFrom, err)
		}
	}
	// A new account's bound is 0 and holds for any window: it has no accruals before it exists.
	n := e.customer("new")
	e.mustAccrue(n, "n", 8)
	var a tally.Account
	err := e.store.Update(e.ctx, func(ctx context.Context, tx tally.WriteTx) error {
		m, err := tx.LockAccounts(ctx, []string{n})
		a = m[n]
		return err
	})
	if b, ok := a.QualifyingBoundFor(time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil || !ok || b != 8 {
		t.Fatalf("a new account's bound: %d %v (%v)", b, ok, err)
	}
}
