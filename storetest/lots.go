package storetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// lotsEnv is a ledger with a programme lifecycle policy and a clock the test moves.
type lotsEnv struct {
	*env
	clk *clock
	l   *ledger.Service
}

func newLotsEnv(t *testing.T, h Harness, policy tally.LotPolicy) *lotsEnv {
	e := newEnv(t, h)
	clk := &clock{now: time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)}
	l := ledger.New(e.store, ledger.Options{Key: e.key, Clock: clk.Now, Lots: policy, Workers: max(h.Workers, 2)})
	t.Cleanup(l.Close)
	return &lotsEnv{env: e, clk: clk, l: l}
}

func (e *lotsEnv) write(r ledger.Request) ledger.Receipt {
	e.t.Helper()
	rc, err := e.l.Write(e.ctx, r)
	if err != nil {
		e.t.Fatalf("%s %q: %v", r.Kind, r.Key, err)
	}
	return rc
}

func (e *lotsEnv) accrue(c, key string, amount int64, opts ...func(*ledger.Request)) ledger.Receipt {
	e.t.Helper()
	r := ledger.Request{Kind: tally.KindAccrual, Account: c, Key: key, Amount: amount}
	for _, o := range opts {
		o(&r)
	}
	return e.write(r)
}

func expiring(t time.Time) func(*ledger.Request) { return func(r *ledger.Request) { r.ExpiresAt = &t } }
func pendingUntil(t time.Time) func(*ledger.Request) {
	return func(r *ledger.Request) { r.PendingUntil = &t }
}

func (e *lotsEnv) account(c string) tally.Account {
	e.t.Helper()
	a, err := e.store.Account(e.ctx, c)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *lotsEnv) remaining(c string) map[int64]int64 {
	e.t.Helper()
	lots, err := e.store.AccountLots(e.ctx, c)
	if err != nil {
		e.t.Fatal(err)
	}
	out := map[int64]int64{}
	for _, l := range lots {
		out[l.Seq] = l.Remaining
	}
	return out
}

func (e *lotsEnv) uses(debit int64) []tally.LotUse {
	e.t.Helper()
	u, err := e.store.LotUsesOf(e.ctx, []int64{debit})
	if err != nil {
		e.t.Fatal(err)
	}
	return u[debit]
}

// testLots checks the points lifecycle through the ledger: lots, FIFO consumption, pending points,
// clawbacks under each return policy, the expiry job and reinstatement.
func testLots(t *testing.T, h Harness) {
	day := 24 * time.Hour

	t.Run("FIFO across expiries", func(t *testing.T) {
		t.Parallel()
		e := newLotsEnv(t, h, tally.LotPolicy{Expiry: tally.ExpiryPolicy{Policy: tally.ExpireAfterDays, Days: 365}})
		c := e.customer("fifo")
		now := e.clk.Now()
		never := e.accrue(c, "never", 100, func(r *ledger.Request) {}) // the policy: a year
		late := e.accrue(c, "late", 100, expiring(now.Add(90*day)))
		soon := e.accrue(c, "soon", 100, expiring(now.Add(10*day)))
		mid := e.accrue(c, "mid", 100, expiring(now.Add(30*day)))
		if l, err := e.store.Lot(e.ctx, never.Transaction.Seq); err != nil || l.ExpiresAt == nil || !l.ExpiresAt.Equal(now.AddDate(0, 0, 365)) {
			t.Fatalf("lot under the policy = %+v, %v, want expiring a year on", l, err)
		}
		r := e.write(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "r1", Amount: 150})
		want := []tally.LotUse{{DebitSeq: r.Transaction.Seq, LotSeq: soon.Transaction.Seq, Points: 100}, {DebitSeq: r.Transaction.Seq, LotSeq: mid.Transaction.Seq, Points: 50}}
		if got := e.uses(r.Transaction.Seq); !reflect.DeepEqual(got, want) {
			t.Fatalf("uses = %+v, want %+v (soonest expiring first)", got, want)
		}
		if got := e.remaining(c); !reflect.DeepEqual(got, map[int64]int64{mid.Transaction.Seq: 50, late.Transaction.Seq: 100, never.Transaction.Seq: 100}) {
			t.Fatalf("remaining = %v", got)
		}
		d, err := e.l.BalanceDetails(e.ctx, c)
		if err != nil || d.NextExpiry == nil || d.NextExpiry.Points != 50 || !d.NextExpiry.At.Equal(now.Add(30*day)) {
			t.Fatalf("details = %+v, %v, want 50 points expiring at %v", d, err, now.Add(30*day))
		}
		// Reversing the redemption gives the points back to the lots they came from.
		e.write(ledger.Request{Kind: tally.KindReversal, Key: "rev", ReversesSeq: r.Transaction.Seq, Reason: "refund"})
		if got := e.remaining(c); got[soon.Transaction.Seq] != 100 || got[mid.Transaction.Seq] != 100 {
			t.Fatalf("remaining after the reversal = %v", got)
		}
		e.mustVerify()
	})

	t.Run("redemption consuming many lots", func(t *testing.T) {
		t.Parallel()
		e := newLotsEnv(t, h, tally.LotPolicy{})
		c := e.customer("many")
		const n = 300
		errs := parallel(n, func(i int) error {
			_, err := e.l.Write(e.ctx, ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "a" + itoa(i), Amount: 2})
			return err
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		r := e.write(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "all-but-one", Amount: 2*n - 1})
		if u := e.uses(r.Transaction.Seq); len(u) != n {
			t.Fatalf("the redemption used %d lots, want %d", len(u), n)
		}
		if got := e.remaining(c); len(got) != 1 {
			t.Fatalf("open lots after = %v, want one with 1 point", got)
		}
		_, err := e.l.Write(e.ctx, ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "too-much", Amount: 2})
		wantCode(t, err, tally.EINSUFFICIENT)
		e.mustVerify()
	})

	t.Run("pending points: by the clock and by call", func(t *testing.T) {
		t.Parallel()
		e := newLotsEnv(t, h, tally.LotPolicy{})
		c := e.customer("pending")
		now := e.clk.Now()
		e.accrue(c, "active", 100)
		p1 := e.accrue(c, "p1", 50, pendingUntil(now.Add(14*day)))
		p2 := e.accrue(c, "p2", 30, pendingUntil(now.Add(30*day)))
		if p2.Balance != 100 || p2.Pending != 80 {
			t.Fatalf("receipt = balance %d pending %d, want 100 spendable and 80 pending", p2.Balance, p2.Pending)
		}
		if a := e.account(c); a.Balance != 180 || a.Pending != 80 || a.Spendable() != 100 {
			t.Fatalf("account = %+v", a)
		}
		_, err := e.l.Write(e.ctx, ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "r-pending", Amount: 101})
		wantCode(t, err, tally.EINSUFFICIENT)
		if n, err := e.l.ActivateDue(e.ctx, 10); err != nil || n != 0 {
			t.Fatalf("ActivateDue before time = %d, %v", n, err)
		}
		e.clk.advance(15 * day)
		if n, err := e.l.ActivateDue(e.ctx, 10); err != nil || n != 1 {
			t.Fatalf("ActivateDue after 15 days = %d, %v, want 1", n, err)
		}
		if n, err := e.l.ActivateDue(e.ctx, 10); err != nil || n != 0 {
			t.Fatalf("ActivateDue again = %d, %v, want 0", n, err)
		}
		if a := e.account(c); a.Pending != 30 || a.Spendable() != 150 {
			t.Fatalf("after activation by time: %+v", a)
		}
		l, err := e.l.Activate(e.ctx, p2.Transaction.Seq)
		if err != nil || l.Pending() || l.ActivatedAt == nil {
			t.Fatalf("Activate = %+v, %v", l, err)
		}
		if again, err := e.l.Activate(e.ctx, p2.Transaction.Seq); err != nil || !reflect.DeepEqual(again, l) {
			t.Fatalf("Activate again = %+v, %v, want the same lot unchanged", again, err)
		}
		if a := e.account(c); a.Pending != 0 || a.Spendable() != 180 || a.BalanceVersion != 3 {
			t.Fatalf("after activation by call: %+v (activation writes no transaction)", a)
		}
		_, err = e.l.Activate(e.ctx, p1.Transaction.Seq+1000)
		wantCode(t, err, tally.ENOTFOUND)
		e.write(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "r-all", Amount: 180})
		e.mustVerify()
	})

	clawbackEnv := func(t *testing.T, policy tally.ReturnPolicy, limit int64) (*lotsEnv, string, ledger.Receipt, ledger.Receipt) {
		e := newLotsEnv(t, h, tally.LotPolicy{Return: policy, OverdraftLimit: limit})
		c := e.customer("claw")
		earned := e.accrue(c, "earned", 100)
		held := e.accrue(c, "held", 40, pendingUntil(e.clk.Now().Add(day)))
		e.write(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "spent", Amount: 80})
		return e, c, earned, held
	}
	clawback := func(e *lotsEnv, key string, seq int64) (ledger.Receipt, error) {
		return e.l.Clawback(e.ctx, ledger.Request{Key: key, ReversesSeq: seq, Reason: "purchase refunded", Actor: "agent-7"})
	}
	for _, policy := range []tally.ReturnPolicy{tally.ReturnOnlyPending, tally.ReturnWithinBalance, tally.ReturnAllowNegative} {
		t.Run("clawback under "+string(policy), func(t *testing.T) {
			t.Parallel()
			var limit int64
			if policy == tally.ReturnAllowNegative {
				limit = 100
			}
			e, c, earned, held := clawbackEnv(t, policy, limit)
			// Pending points are cancelled under every policy.
			rc, err := clawback(e, "cb-held", held.Transaction.Seq)
			if err != nil || rc.Pending != 0 || rc.Balance != 20 {
				t.Fatalf("clawback of pending points = %+v, %v, want 20 spendable, none pending", rc, err)
			}
			// 80 of the 100 earned are spent: what may the clawback do?
			rc, err = clawback(e, "cb-earned", earned.Transaction.Seq)
			switch policy {
			case tally.ReturnOnlyPending, tally.ReturnWithinBalance:
				wantCode(t, err, tally.EINSUFFICIENT)
				if a := e.account(c); a.Spendable() != 20 {
					t.Fatalf("a refused clawback changed the account: %+v", a)
				}
				if policy == tally.ReturnWithinBalance {
					e.accrue(c, "more", 90)
					if rc, err = clawback(e, "cb-earned-2", earned.Transaction.Seq); err != nil || rc.Balance != 10 {
						t.Fatalf("clawback within the balance = %+v, %v, want 10 left", rc, err)
					}
				}
			case tally.ReturnAllowNegative:
				if err != nil || rc.Balance != -80 {
					t.Fatalf("clawback = %+v, %v, want a balance of -80 (within the overdraft limit of 100)", rc, err)
				}
			}
			e.mustVerify()
		})
	}

	t.Run("clawback into an overdraft, then settled", func(t *testing.T) {
		t.Parallel()
		e := newLotsEnv(t, h, tally.LotPolicy{Return: tally.ReturnAllowNegative, OverdraftLimit: 100})
		c := e.customer("overdraft")
		earned := e.accrue(c, "earned", 100)
		e.write(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "spent", Amount: 70})
		big := e.accrue(c, "big", 200)
		e.write(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "spent-2", Amount: 200})
		// 30 spendable; clawing back 200 would go to -170, past the limit.
		_, err := clawback(e, "cb-big", big.Transaction.Seq)
		wantCode(t, err, tally.EINSUFFICIENT)
		rc, err := clawback(e, "cb", earned.Transaction.Seq)
		if err != nil || rc.Balance != -70 {
			t.Fatalf("clawback = %+v, %v, want -70", rc, err)
		}
		if a := e.account(c); a.OverdraftLimit != 70 {
			t.Fatalf("account = %+v, want an overdraft limit of 70 recorded", a)
		}
		_, err = e.l.Write(e.ctx, ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "r-neg", Amount: 1})
		wantCode(t, err, tally.EINSUFFICIENT)
		p := e.accrue(c, "held", 50, pendingUntil(e.clk.Now().Add(day)))
		if p.Balance != -70 || p.Pending != 50 {
			t.Fatalf("pending accrual while overdrawn: %+v", p)
		}
		e.mustVerify()
		settle := e.accrue(c, "settle", 40)
		if settle.Balance != -30 {
			t.Fatalf("accrual while overdrawn: %+v, want -30", settle)
		}
		if u := e.uses(settle.Transaction.Seq); len(u) != 1 || u[0].Points != 40 {
			t.Fatalf("settling uses = %+v", u)
		}
		e.mustVerify()
		if _, err := e.l.Activate(e.ctx, p.Transaction.Seq); err != nil {
			t.Fatal(err)
		}
		if a := e.account(c); a.Spendable() != 20 || a.Pending != 0 {
			t.Fatalf("after activating 50 while 30 overdrawn: %+v, want 20 spendable", a)
		}
		e.mustVerify()
	})

	t.Run("clawback of a debit is refused", func(t *testing.T) {
		t.Parallel()
		e := newLotsEnv(t, h, tally.LotPolicy{})
		c := e.customer("claw-debit")
		e.accrue(c, "a", 10)
		r := e.write(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "r", Amount: 5})
		_, err := clawback(e, "cb", r.Transaction.Seq)
		wantCode(t, err, tally.EINVALID)
		_, err = e.l.Clawback(e.ctx, ledger.Request{Key: "cb2", ReversesSeq: r.Transaction.Seq - 1, Reason: "x"})
		wantCode(t, err, tally.EINVALID) // no actor
	})

	t.Run("expiry run twice at once posts once", func(t *testing.T) {
		t.Parallel()
		e := newLotsEnv(t, h, tally.LotPolicy{Expiry: tally.ExpiryPolicy{Policy: tally.ExpireAfterDays, Days: 30}})
		other := ledger.New(e.store, ledger.Options{Key: e.key, Clock: e.clk.Now, Workers: 2})
		t.Cleanup(other.Close)
		var customers []string
		for i := range 20 {
			c := e.customer("exp-" + itoa(i))
			customers = append(customers, c)
			e.accrue(c, "old-1-"+itoa(i), 10)
			e.accrue(c, "old-2-"+itoa(i), 15)
		}
		e.write(ledger.Request{Kind: tally.KindRedemption, Account: customers[0], Key: "spend", Amount: 12})
		e.clk.advance(20 * 24 * time.Hour)
		fresh := e.accrue(customers[1], "fresh", 7)
		e.clk.advance(11 * 24 * time.Hour)
		reports := make([]ledger.ExpiryReport, 2)
		errs := parallel(2, func(i int) error {
			var err error
			reports[i], err = []*ledger.Service{e.l, other}[i].ExpireLapsed(e.ctx, ledger.ExpireOptions{Accounts: 3, Parallel: 4})
			return err
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if n := reports[0].Transactions + reports[1].Transactions; n != 20 {
			t.Fatalf("two runs at once posted %d expiries, want 20: %+v", n, reports)
		}
		if p := reports[0].Points + reports[1].Points; p != 20*25-12 {
			t.Fatalf("two runs expired %d points, want %d", p, 20*25-12)
		}
		for i, c := range customers {
			a := e.account(c)
			want := int64(0)
			if i == 1 {
				want = 7
			}
			if a.Balance != want {
				t.Fatalf("customer %d: balance %d, want %d", i, a.Balance, want)
			}
		}
		if got := e.remaining(customers[1]); !reflect.DeepEqual(got, map[int64]int64{fresh.Transaction.Seq: 7}) {
			t.Fatalf("lots left = %v, want the fresh one", got)
		}
		expired, err := e.store.Account(e.ctx, tally.AccountExpired)
		if err != nil || expired.Balance != 20*25-12 {
			t.Fatalf("system:expired = %+v, %v", expired, err)
		}
		again, err := e.l.ExpireLapsed(e.ctx, ledger.ExpireOptions{})
		if err != nil || again.Transactions != 0 || again.Accounts != 0 {
			t.Fatalf("a third run = %+v, %v, want nothing to do", again, err)
		}
		// Reinstatement: an adjustment that re-creates a lot, with its own expiry.
		until := e.clk.Now().Add(60 * 24 * time.Hour)
		rc := e.write(ledger.Request{Kind: tally.KindAdjustment, Account: customers[2], Key: "reinstate", Amount: 25,
			Reason: "goodwill: reinstated expired points", Actor: "agent-7", ExpiresAt: &until})
		l, err := e.store.Lot(e.ctx, rc.Transaction.Seq)
		if err != nil || l.Remaining != 25 || l.ExpiresAt == nil || !l.ExpiresAt.Equal(until) {
			t.Fatalf("reinstated lot = %+v, %v", l, err)
		}
		e.mustVerify()
	})

	t.Run("lapsed points are gone before the expiry job runs", func(t *testing.T) {
		t.Parallel()
		e := newLotsEnv(t, h, tally.LotPolicy{Expiry: tally.ExpiryPolicy{Policy: tally.ExpireAfterDays, Days: 30}})
		c, other := e.customer("lapse"), e.customer("lapse-other")
		start := e.clk.Now()
		old := e.accrue(c, "old", 100) // lapses at start + 30 days
		e.accrue(c, "late", 40, expiring(start.Add(60*day)))
		e.accrue(other, "other-old", 50)
		// 30 seconds after the lot expired, and before any expiry job ran.
		e.clk.Set(start.Add(30*day + 30*time.Second))
		_, err := e.l.Write(e.ctx, ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "too-much", Amount: 41})
		wantCode(t, err, tally.EINSUFFICIENT)
		var te *tally.Error
		if !errors.As(err, &te) || !reflect.DeepEqual(te.Details, map[string]int64{"balance": 40}) {
			t.Fatalf("refusal = %v, want the spendable balance of 40 in its details", err)
		}
		_, err = e.l.Write(e.ctx, ledger.Request{Kind: tally.KindAdjustment, Account: c, Key: "adj-too-much", Amount: -41, Reason: "x", Actor: "y"})
		wantCode(t, err, tally.EINSUFFICIENT)
		a, err := e.l.Balance(e.ctx, c)
		if err != nil || a.Spendable() != 40 || a.Lapsed != 100 || a.Balance != 140 {
			t.Fatalf("balance = %+v, %v: want 40 spendable, 100 lapsed, 140 posted", a, err)
		}
		// A write's answer leaves them out too, a credit's (the account's lots not read) as a debit's.
		if rc := e.accrue(c, "new", 5); rc.Balance != 45 || rc.Lapsed != 100 {
			t.Fatalf("accrual receipt = balance %d, lapsed %d, want 45 and 100", rc.Balance, rc.Lapsed)
		}
		rc := e.write(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "fits", Amount: 45})
		if rc.Balance != 0 || rc.Lapsed != 100 {
			t.Fatalf("redemption receipt = balance %d, lapsed %d, want 0 and 100", rc.Balance, rc.Lapsed)
		}
		for _, u := range e.uses(rc.Transaction.Seq) {
			if u.LotSeq == old.Transaction.Seq {
				t.Fatalf("the redemption took %d points from the lapsed lot", u.Points)
			}
		}
		e.mustVerify()
		// The job then expires exactly the lapsed remainders, once.
		rep, err := e.l.ExpireLapsed(e.ctx, ledger.ExpireOptions{})
		if err != nil || rep.Transactions != 2 || rep.Points != 150 {
			t.Fatalf("expiry job = %+v, %v, want 2 expiries of 150 points", rep, err)
		}
		if again, err := e.l.ExpireLapsed(e.ctx, ledger.ExpireOptions{}); err != nil || again.Transactions != 0 {
			t.Fatalf("a second run = %+v, %v, want nothing", again, err)
		}
		a, err = e.l.Balance(e.ctx, c)
		if err != nil || a.Spendable() != 0 || a.Lapsed != 0 || a.Balance != 0 {
			t.Fatalf("balance after the job = %+v, %v", a, err)
		}
		if exp, err := e.store.Account(e.ctx, tally.AccountExpired); err != nil || exp.Balance != 150 {
			t.Fatalf("system:expired = %+v, %v, want 150", exp, err)
		}
		e.mustVerify()
	})

	t.Run("expiry in parts, run twice at once", func(t *testing.T) {
		t.Parallel()
		e := newLotsEnv(t, h, tally.LotPolicy{Expiry: tally.ExpiryPolicy{Policy: tally.ExpireAfterDays, Days: 30}})
		other := ledger.New(e.store, ledger.Options{Key: e.key, Clock: e.clk.Now, Workers: 2})
		t.Cleanup(other.Close)
		c := e.customer("parts")
		for i := range 7 {
			e.accrue(c, "p-"+itoa(i), int64(i+1))
		}
		keep := e.accrue(c, "keep", 100, expiring(e.clk.Now().Add(90*day)))
		e.clk.advance(31 * day)
		reports := make([]ledger.ExpiryReport, 2)
		errs := parallel(2, func(i int) error {
			var err error
			reports[i], err = []*ledger.Service{e.l, other}[i].ExpireLapsed(e.ctx, ledger.ExpireOptions{LotsPerExpiry: 3, Rate: -1})
			return err
		})
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		if p := reports[0].Points + reports[1].Points; p != 28 {
			t.Fatalf("two runs expired %d points, want 28 (1+...+7): %+v", p, reports)
		}
		if n := reports[0].Transactions + reports[1].Transactions; n != 3 {
			t.Fatalf("two runs posted %d expiries, want 3 (7 lots, 3 a part): %+v", n, reports)
		}
		if got := e.remaining(c); !reflect.DeepEqual(got, map[int64]int64{keep.Transaction.Seq: 100}) {
			t.Fatalf("lots left = %v, want the unexpired one", got)
		}
		if a := e.account(c); a.Balance != 100 {
			t.Fatalf("balance = %d, want 100", a.Balance)
		}
		e.mustVerify()
	})
}
