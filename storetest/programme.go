package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/earning"
	"github.com/tally-ledger/tally/ledger"
)

// testProgramme holds every store to tally.ProgrammeStore and checks earning rules and tiers through
// the real ledger: rules versioned, awards decided under the account lock (caps hold however many events
// of one customer arrive at once), tiers raised in the accrual's transaction and lowered by the
// end-of-period review, once, however many replicas run it.
func testProgramme(t *testing.T, h Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"rule versions", testRuleVersions},
		{"earning", testEarning},
		{"caps under concurrency", testCapsConcurrent},
		{"replay after a rule change", testRuleReplay},
		{"a rule's return window", testRulePendingDays},
		{"tier upgrade at once", testTierUpgrade},
		{"tier review at period end", testTierReview},
		{"tier backfill", testTierBackfill},
		{"qualifying bound", testQualifyingBound},
		{"qualifying bound stored", testQualifyingBoundStored},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { t.Parallel(); tc.fn(t, h) })
	}
}

// programmeEnv is a ledger that earns by a programme's rules, on a controllable clock.
type programmeEnv struct {
	*env
	ps     tally.ProgrammeStore
	clock  *clock
	engine *earning.Engine
	l      *ledger.Service
}

func newProgrammeEnv(t *testing.T, h Harness, programme string) *programmeEnv {
	t.Helper()
	e := newEnv(t, h)
	ps, ok := e.store.(tally.ProgrammeStore)
	if !ok {
		t.Fatalf("%T does not implement tally.ProgrammeStore", e.store)
	}
	c := &clock{now: time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC)} // a Tuesday
	p := &programmeEnv{env: e, ps: ps, clock: c}
	p.engine, p.l = programmeLedger(t, p, programme)
	return p
}

// programmeLedger returns an earning engine and a ledger that run programme over p's store and clock,
// as another replica with another programme file would.
func programmeLedger(t *testing.T, p *programmeEnv, programme string) (*earning.Engine, *ledger.Service) {
	t.Helper()
	prog, err := earning.ParseProgramme([]byte(programme))
	if err != nil {
		t.Fatal(err)
	}
	eng := earning.NewEngine(p.ps, prog, p.clock.Now)
	if _, err := eng.Seed(p.ctx); err != nil {
		t.Fatal(err)
	}
	l := ledger.New(p.store, ledger.Options{Key: p.key, Tiers: prog, Earner: eng, Clock: p.clock.Now, Workers: max(p.h.Workers, 2)})
	t.Cleanup(l.Close)
	return eng, l
}

// event writes an event's accrual as the API does.
func (p *programmeEnv) event(customer, id string, fields map[string]any) (ledger.Receipt, error) {
	if _, err := p.engine.Earns(p.ctx, fields); err != nil {
		return ledger.Receipt{}, err
	}
	return p.l.Write(p.ctx, ledger.Request{Kind: tally.KindAccrual, Event: true, Channel: "webhook", Key: id,
		Account: customer, Earn: fields, Identity: "event:" + customer})
}

func (p *programmeEnv) mustEvent(customer, id string, fields map[string]any) ledger.Receipt {
	p.t.Helper()
	rc, err := p.event(customer, id, fields)
	if err != nil {
		p.t.Fatalf("event %s: %v", id, err)
	}
	return rc
}

func (p *programmeEnv) tier(customer string) string {
	p.t.Helper()
	tier, err := p.engine.Tier(p.ctx, customer)
	if err != nil {
		p.t.Fatal(err)
	}
	return tier
}

func testRuleVersions(t *testing.T, h Harness) {
	e := newEnv(t, h)
	ps := e.store.(tally.ProgrammeStore)
	ctx := e.ctx
	if _, err := ps.RuleVersions(ctx, "none"); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("versions of no rule: %v", err)
	}
	zero := int64(0)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	v1, err := ps.AddRuleVersion(ctx, tally.RuleVersion{Name: "r", Active: true, Definition: json.RawMessage(`{"points":1}`), Actor: "a", CreatedAt: at}, &zero)
	if err != nil || v1.Version != 1 {
		t.Fatalf("first version: %+v %v", v1, err)
	}
	if _, err := ps.AddRuleVersion(ctx, tally.RuleVersion{Name: "r", Active: true, Definition: json.RawMessage(`{"points":2}`)}, &zero); tally.ErrorCode(err) != tally.ECONFLICT {
		t.Fatalf("a second first version: %v", err)
	}
	v2, err := ps.AddRuleVersion(ctx, tally.RuleVersion{Name: "r", Active: false, Definition: json.RawMessage(`{"points":2}`), CreatedAt: at}, nil)
	if err != nil || v2.Version != 2 {
		t.Fatalf("second version: %+v %v", v2, err)
	}
	for _, bad := range []tally.RuleVersion{{Name: "", Definition: json.RawMessage(`{}`)}, {Name: "x", Definition: json.RawMessage(`[1]`)}, {Name: "x\x00", Definition: json.RawMessage(`{}`)}} {
		if _, err := ps.AddRuleVersion(ctx, bad, nil); tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("%+v: %v", bad, err)
		}
	}
	vs, err := ps.RuleVersions(ctx, "r")
	if err != nil || len(vs) != 2 || vs[0].Version != 1 || string(vs[0].Definition) != `{"points":1}` || !vs[0].Active || vs[1].Active ||
		vs[0].Actor != "a" || !vs[0].CreatedAt.Equal(at) {
		t.Fatalf("history: %+v %v", vs, err)
	}
	newest, err := ps.EarningRules(ctx)
	if err != nil || len(newest) != 1 || newest[0].Version != 2 {
		t.Fatalf("newest: %+v %v", newest, err)
	}
}

// earningProgramme exercises every part of a rule: fixed and computed points, stacking and priority,
// multipliers (programme-wide and per rule), a campaign window and caps.
const earningProgramme = `{
	"earning_rules": [
		{"name": "chat", "filter": "$.type = 'WebChat'", "points": 10, "priority": 5},
		{"name": "chat-long", "filter": "$.type = 'WebChat' and $.handle_time_seconds > 600", "points": "20 + handle_time_seconds / 60", "priority": 9},
		{"name": "survey", "filter": "$.survey = true", "points": 3, "stackable": true, "caps": {"day": 5, "week": 8}},
		{"name": "spring", "filter": "$.type = 'WebChat'", "points": 7, "stackable": true,
			"start": "2026-03-01T00:00:00Z", "end": "2026-04-01T00:00:00Z", "tier_multipliers": {"gold": 300}},
		{"name": "voice", "filter": "$.type = 'Voice'", "points": "handle_time_seconds / 0"}
	],
	"tiers": [{"name": "base", "min_points": 0}, {"name": "gold", "min_points": 1000, "multiplier_percent": 150}]
}`

func testEarning(t *testing.T, h Harness) {
	p := newProgrammeEnv(t, h, earningProgramme)
	type line = tally.AccrualRule
	cases := []struct {
		name   string
		at     time.Time
		fields map[string]any
		want   int64
		lines  []line
	}{
		{"fixed rule plus a stackable campaign", time.Time{}, map[string]any{"type": "WebChat"}, 17,
			[]line{{Rule: "chat", Version: 1, Points: 10}, {Rule: "spring", Version: 1, Points: 7}}},
		{"the higher priority wins, computed points", time.Time{}, map[string]any{"type": "WebChat", "handle_time_seconds": 1260.9}, 48,
			[]line{{Rule: "chat-long", Version: 1, Points: 41}, {Rule: "spring", Version: 1, Points: 7}}},
		{"after the campaign", time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC), map[string]any{"type": "WebChat"}, 10,
			[]line{{Rule: "chat", Version: 1, Points: 10}}},
		{"stackable alone", time.Time{}, map[string]any{"survey": true}, 3, []line{{Rule: "survey", Version: 1, Points: 3}}},
		{"stackable again: the day cap leaves 2", time.Time{}, map[string]any{"survey": true}, 2, []line{{Rule: "survey", Version: 1, Points: 2}}},
		{"the day cap is reached", time.Time{}, map[string]any{"survey": true}, 0, nil},
		{"next day, the week cap leaves 3", time.Date(2026, 3, 11, 9, 0, 0, 0, time.UTC), map[string]any{"survey": true}, 3, []line{{Rule: "survey", Version: 1, Points: 3}}},
		{"the week cap is reached", time.Date(2026, 3, 12, 9, 0, 0, 0, time.UTC), map[string]any{"survey": true}, 0, nil},
		{"a new week", time.Date(2026, 3, 16, 0, 0, 0, 0, time.UTC), map[string]any{"survey": true}, 3, []line{{Rule: "survey", Version: 1, Points: 3}}},
		{"an undefined expression pays nothing", time.Time{}, map[string]any{"type": "Voice", "handle_time_seconds": 60}, 0, nil},
		{"no rule matches", time.Time{}, map[string]any{"type": "Email"}, 0, nil},
	}
	c := p.customer("earner")
	start := p.clock.Now()
	var total int64
	for n, tc := range cases {
		at := tc.at
		if at.IsZero() {
			at = start
		}
		p.clock.Set(at)
		rc := p.mustEvent(c, fmt.Sprintf("e%d", n), tc.fields)
		if rc.Transaction.Amount != tc.want || fmt.Sprint(rc.Rules) != fmt.Sprint(tc.lines) {
			t.Errorf("%s: earned %d by %+v, want %d by %+v", tc.name, rc.Transaction.Amount, rc.Rules, tc.want, tc.lines)
		}
		total += tc.want
		if tc.want > 0 {
			stored, err := p.ps.AccrualRules(p.ctx, rc.Transaction.Seq)
			if err != nil || len(stored) != len(tc.lines) {
				t.Errorf("%s: stored lines %+v %v", tc.name, stored, err)
			}
		}
	}
	if got := p.balance(c); got != total {
		t.Fatalf("balance %d, want %d", got, total)
	}

	// Multipliers: a gold customer earns 150% of chat (15), and spring's own 300% (21).
	g := p.customer("gold")
	p.clock.Set(start)
	if rc, err := p.l.Write(p.ctx, ledger.Request{Kind: tally.KindAccrual, Account: g, Key: "seed-gold", Amount: 1000, Reason: "seed"}); err != nil || rc.TierChange == nil {
		t.Fatalf("an accrual of 1000 points: %+v %v", rc, err)
	}
	if tier := p.tier(g); tier != "gold" {
		t.Fatalf("tier %q after 1001 qualifying points", tier)
	}
	rc := p.mustEvent(g, "g1", map[string]any{"type": "WebChat"})
	if rc.Transaction.Amount != 36 || rc.Transaction.Reason != "earning rules chat, spring" {
		t.Fatalf("gold earned %d (%s) by %+v, want 15 + 21", rc.Transaction.Amount, rc.Transaction.Reason, rc.Rules)
	}
	p.mustVerify()
}

func testCapsConcurrent(t *testing.T, h Harness) {
	p := newProgrammeEnv(t, h, `{"earning_rules": [{"name": "survey", "filter": "$.survey = true", "points": 3, "caps": {"day": 10}}]}`)
	c := p.customer("racer")
	const events = 24
	var wg sync.WaitGroup
	errs := make(chan error, events)
	for i := range events {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := p.event(c, fmt.Sprintf("s%d", i), map[string]any{"survey": true}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := p.balance(c); got != 10 {
		t.Fatalf("%d concurrent events at a day cap of 10 earned %d", events, got)
	}
	usage, err := p.ps.RuleUsageOf(p.ctx, c, time.Time{})
	if err != nil || len(usage) != 1 || usage[0].Points != 10 || usage[0].Period != "day" {
		t.Fatalf("usage %+v %v", usage, err)
	}
}

func testRuleReplay(t *testing.T, h Harness) {
	p := newProgrammeEnv(t, h, `{"earning_rules": [{"name": "chat", "filter": "$.type = 'WebChat'", "points": 10}]}`)
	c := p.customer("replayer")
	ev := map[string]any{"type": "WebChat"}
	first := p.mustEvent(c, "x1", ev)
	v, err := p.engine.Put(p.ctx, "chat", earning.RuleDef{Filter: "$.type = 'WebChat'", Points: json.RawMessage(`25`)}, "tester", false, nil)
	if err != nil || v.Version != 2 {
		t.Fatalf("new version: %+v %v", v, err)
	}
	again := p.mustEvent(c, "x1", ev)
	if !again.Replayed || again.Transaction.Seq != first.Transaction.Seq || again.Transaction.Amount != 10 || again.Rules[0].Version != 1 {
		t.Fatalf("redelivery after the change: %+v", again)
	}
	fresh := p.mustEvent(c, "x2", ev)
	if fresh.Transaction.Amount != 25 || fresh.Rules[0].Version != 2 {
		t.Fatalf("a new event after the change: %+v", fresh)
	}
	if _, err := p.engine.Deactivate(p.ctx, "chat", "tester"); err != nil {
		t.Fatal(err)
	}
	if rc := p.mustEvent(c, "x3", ev); rc.Transaction.Seq != 0 {
		t.Fatalf("a deactivated rule paid: %+v", rc)
	}
	if p.balance(c) != 35 {
		t.Fatalf("balance %d", p.balance(c))
	}
}

// testRulePendingDays checks a rule's return window: its points are in the balance but not spendable
// until the window ends (the longest of the paying rules'), then the activation job makes them so.
func testRulePendingDays(t *testing.T, h Harness) {
	p := newProgrammeEnv(t, h, `{"earning_rules": [
		{"name": "purchase", "filter": "$.type = 'Purchase'", "points": 100, "pending_days": 14, "stackable": true},
		{"name": "bonus", "filter": "$.type = 'Purchase'", "points": 5, "pending_days": 3, "stackable": true},
		{"name": "chat", "filter": "$.type = 'WebChat'", "points": 10}]}`)
	c := p.customer("returner")
	bought := p.mustEvent(c, "p1", map[string]any{"type": "Purchase"})
	p.mustEvent(c, "c1", map[string]any{"type": "WebChat"})
	acct, err := p.store.Account(p.ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if acct.Balance != 115 || acct.Pending != 105 || acct.Spendable() != 10 {
		t.Fatalf("after a purchase and a chat: balance %d, pending %d, spendable %d; want 115, 105, 10", acct.Balance, acct.Pending, acct.Spendable())
	}
	lot, err := p.store.Lot(p.ctx, bought.Transaction.Seq)
	if err != nil || lot.PendingUntil == nil || !lot.PendingUntil.Equal(p.clock.Now().AddDate(0, 0, 14)) {
		t.Fatalf("the purchase's lot: %+v %v, want pending for 14 days", lot, err)
	}
	if _, err := p.l.Write(p.ctx, ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "r1", Amount: 50}); tally.ErrorCode(err) != tally.EINSUFFICIENT {
		t.Fatalf("spending pending points: %v, want insufficient", err)
	}
	p.clock.Set(p.clock.Now().AddDate(0, 0, 14))
	if n, err := p.l.ActivateDue(p.ctx, 0); err != nil || n != 1 {
		t.Fatalf("activation after the window: %d %v", n, err)
	}
	if _, err := p.l.Write(p.ctx, ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "r2", Amount: 50}); err != nil {
		t.Fatalf("spending after the window: %v", err)
	}
	if _, err := earning.CompileRule("x", 1, true, earning.RuleDef{Filter: "$.a = 1", Points: json.RawMessage(`1`), PendingDays: -1}); err == nil {
		t.Fatal("a negative return window compiled")
	}
}

const tierProgramme = `{
	"earning_rules": [{"name": "chat", "filter": "$.type = 'WebChat'", "points": "points"}],
	"tiers": [{"name": "base", "min_points": 0}, {"name": "silver", "min_points": 100}, {"name": "gold", "min_points": 500}],
	"tier_qualification": {"window_months": 12, "review": "month"}
}`

func testTierUpgrade(t *testing.T, h Harness) {
	p := newProgrammeEnv(t, h, tierProgramme)
	c := p.customer("climber")
	if rc := p.mustEvent(c, "t1", map[string]any{"type": "WebChat", "points": 99}); rc.TierChange != nil || p.tier(c) != "base" || rc.Tier != "base" {
		t.Fatalf("99 points: %+v, tier %s, receipt's tier %q", rc.TierChange, p.tier(c), rc.Tier)
	}
	rc := p.mustEvent(c, "t2", map[string]any{"type": "WebChat", "points": 450})
	if rc.TierChange == nil || rc.TierChange.To != "gold" || rc.TierChange.From != "base" || rc.TierChange.Seq != rc.Transaction.Seq || p.tier(c) != "gold" || rc.Tier != "gold" {
		t.Fatalf("549 points: %+v, tier %s, receipt's tier %q", rc.TierChange, p.tier(c), rc.Tier)
	}
	// Redemptions do not lower the tier; one that names no reward does not read it (its receipt has none).
	if rc := p.mustWrite(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "spend", Amount: 500, Reason: "spend"}); rc.Tier != "" {
		t.Fatalf("a plain redemption's receipt has tier %q", rc.Tier)
	}
	if p.tier(c) != "gold" {
		t.Fatalf("tier after spending: %s", p.tier(c))
	}
	if rc := p.mustEvent(c, "t3", map[string]any{"type": "WebChat", "points": 1}); rc.TierChange != nil || rc.Tier != "gold" {
		t.Fatalf("an accrual at gold: %+v, receipt's tier %q", rc.TierChange, rc.Tier)
	}
	hist, err := p.ps.TierChanges(p.ctx, c)
	if err != nil || len(hist) != 1 || hist[0].To != "gold" || hist[0].Reason == "" {
		t.Fatalf("history %+v %v", hist, err)
	}
	// A redelivered event does not upgrade twice.
	if again := p.mustEvent(c, "t2", map[string]any{"type": "WebChat", "points": 450}); !again.Replayed {
		t.Fatal("not a replay")
	}
	if hist, _ := p.ps.TierChanges(p.ctx, c); len(hist) != 1 {
		t.Fatalf("history after a replay: %+v", hist)
	}
}

func testTierReview(t *testing.T, h Harness) {
	p := newProgrammeEnv(t, h, tierProgramme)
	stayer, faller, late := p.customer("stayer"), p.customer("faller"), p.customer("late")
	// March 2026: everyone reaches gold.
	p.clock.Set(time.Date(2026, 3, 10, 12, 0, 0, 0, time.UTC))
	p.mustEvent(stayer, "s1", map[string]any{"type": "WebChat", "points": 600})
	p.mustEvent(faller, "f1", map[string]any{"type": "WebChat", "points": 520})
	// A year on, the faller's points have left the window; the stayer earned more in between.
	p.clock.Set(time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC))
	p.mustEvent(stayer, "s2", map[string]any{"type": "WebChat", "points": 500})
	p.clock.Set(time.Date(2027, 4, 2, 0, 0, 0, 0, time.UTC))
	// The late customer reaches gold after the period under review ended: not reviewed for it.
	p.mustEvent(late, "l1", map[string]any{"type": "WebChat", "points": 510})
	p.clock.Set(time.Date(2027, 4, 3, 0, 0, 0, 0, time.UTC))
	end := time.Date(2027, 4, 1, 0, 0, 0, 0, time.UTC)

	// Two replicas review at once, then one again: each customer changes once.
	var wg sync.WaitGroup
	reps := make([]ledger.TierReview, 2)
	errs := make([]error, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reps[i], errs[i] = p.l.ReviewTiers(context.Background(), end)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if reps[0].Downgraded+reps[1].Downgraded != 1 || reps[0].Reviewed+reps[1].Reviewed != 2 {
		t.Fatalf("concurrent reviews: %+v", reps)
	}
	if again, err := p.l.ReviewTiers(p.ctx, end); err != nil || again.Reviewed != 0 || again.Downgraded != 0 {
		t.Fatalf("review again: %+v %v", again, err)
	}
	if p.tier(stayer) != "gold" || p.tier(faller) != "base" || p.tier(late) != "gold" {
		t.Fatalf("tiers after review: stayer %s, faller %s, late %s", p.tier(stayer), p.tier(faller), p.tier(late))
	}
	hist, err := p.ps.TierChanges(p.ctx, faller)
	if err != nil || len(hist) != 2 || hist[1].From != "gold" || hist[1].To != "base" || hist[1].Seq != 0 {
		t.Fatalf("faller's history %+v %v", hist, err)
	}
	if _, err := p.l.ReviewTiers(p.ctx, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)); tally.ErrorCode(err) != tally.EINVALID {
		t.Fatalf("review of a period not ended: %v", err)
	}
}

func testTierBackfill(t *testing.T, h Harness) {
	p := newProgrammeEnv(t, h, tierProgramme)
	// Written by a ledger that stored no tiers (as before tiers were stored).
	rich, poor := p.customer("rich"), p.customer("poor")
	p.mustAccrue(rich, "r1", 600)
	p.mustAccrue(poor, "p1", 50)
	if p.tier(rich) != "base" {
		t.Fatalf("tier before the backfill: %s", p.tier(rich))
	}
	var wg sync.WaitGroup
	raised := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, err := p.l.BackfillTiers(context.Background())
			if err != nil {
				t.Error(err)
			}
			raised[i] = n
		}()
	}
	wg.Wait()
	if raised[0]+raised[1] != 1 || p.tier(rich) != "gold" || p.tier(poor) != "base" {
		t.Fatalf("backfill raised %v: rich %s, poor %s", raised, p.tier(rich), p.tier(poor))
	}
	if n, err := p.l.BackfillTiers(p.ctx); err != nil || n != 0 {
		t.Fatalf("backfill again: %d %v", n, err)
	}
	if hist, err := p.ps.TierChanges(p.ctx, rich); err != nil || len(hist) != 1 || hist[0].To != "gold" {
		t.Fatalf("history %+v %v", hist, err)
	}
}
