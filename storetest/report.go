package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/report"
)

func testReports(t *testing.T, h Harness) {
	t.Run("RollForward", func(t *testing.T) { t.Parallel(); testRollForward(t, h) })
	t.Run("RollForwardWhileWriting", func(t *testing.T) { t.Parallel(); testRollForwardWhileWriting(t, h) })
}

// testClock is a clock the test sets.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

func (c *testClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

// newEnvAt is newEnv with a ledger whose clock the test sets.
func newEnvAt(t testing.TB, h Harness, clock *testClock) *env {
	t.Helper()
	e := newEnv(t, h)
	e.ledger.Close()
	e.ledger = ledger.New(e.store, ledger.Options{Key: e.key, Workers: h.Workers, Clock: clock.Now})
	t.Cleanup(e.ledger.Close)
	return e
}

func day(s string, hour int) time.Time {
	d, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return d.Add(time.Duration(hour) * time.Hour)
}

// rollForwardLedger writes a ledger across four months and returns it with the sum of the customer
// balances read account by account.
func rollForwardLedger(t *testing.T, h Harness) (*env, int64) {
	clock := &testClock{}
	e := newEnvAt(t, h, clock)
	a, b := e.customer("rf-a"), e.customer("rf-b")
	adjust := func(account, key string, amount int64) ledger.Receipt {
		return e.mustWrite(ledger.Request{Kind: tally.KindAdjustment, Account: account, Key: key, Amount: amount, Reason: "test", Actor: "finance"})
	}
	// January: the opening of February.
	clock.Set(day("2026-01-30", 23))
	e.mustAccrue(a, "jan-a", 1000)
	e.mustAccrue(b, "jan-b", 500)
	// February: issued 300 + 40, redeemed 200, adjusted -15.
	clock.Set(day("2026-02-01", 0))
	e.mustAccrue(a, "feb-a", 300)
	red := e.mustWrite(ledger.Request{Kind: tally.KindRedemption, Account: a, Key: "feb-red", Amount: 200, Reason: "test"})
	clock.Set(day("2026-02-28", 23))
	adjust(b, "feb-goodwill", 40)
	adjust(b, "feb-fix", -15)
	// March: expired 100; the redemption reversed (+200) and February's accrual reversed (-300).
	clock.Set(day("2026-03-15", 12))
	e.mustWrite(ledger.Request{Kind: tally.KindExpiry, Account: b, Key: "mar-exp", Amount: 100, Reason: "test"})
	e.mustWrite(ledger.Request{Kind: tally.KindReversal, Key: "mar-rev-red", ReversesSeq: red.Transaction.Seq, Reason: "test"})
	feb, err := e.store.TransactionByKey(e.ctx, ledger.DefaultChannel, "feb-a")
	if err != nil {
		t.Fatal(err)
	}
	e.mustWrite(ledger.Request{Kind: tally.KindReversal, Key: "mar-rev-acc", ReversesSeq: feb.Seq, Reason: "test"})
	// April: after the report's end.
	clock.Set(day("2026-04-01", 0))
	e.mustAccrue(a, "apr-a", 7)
	return e, e.balance(a) + e.balance(b)
}

func testRollForward(t *testing.T, h Harness) {
	e, balances := rollForwardLedger(t, h)
	value, err := report.ParsePointValue("0.0125", "EUR")
	if err != nil {
		t.Fatal(err)
	}
	q := report.RollForwardQuery{From: day("2026-02-01", 0), To: day("2026-03-31", 0), Period: report.Month, Value: value}
	rf, err := report.BuildRollForward(e.ctx, e.store, q, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := []report.RollForwardRow{
		{Period: "2026-02", Start: day("2026-02-01", 0), End: day("2026-02-28", 0), Opening: 1500, Issued: 340, Redeemed: -200, Adjusted: -15, Closing: 1625},
		{Period: "2026-03", Start: day("2026-03-01", 0), End: day("2026-03-31", 0), Opening: 1625, Expired: -100, Adjusted: -100, Closing: 1425},
	}
	if fmt.Sprint(rf.Rows) != fmt.Sprint(want) {
		t.Fatalf("rows\n%v, want\n%v", rf.Rows, want)
	}
	if want := (report.Reconciliation{CustomerBalances: 1432, LaterMovements: 7, Reconciled: true}); rf.Check != want || balances != 1432 {
		t.Fatalf("check %+v (balances read one by one %d), want %+v", rf.Check, balances, want)
	}
	if got := value.Of(rf.Rows[1].Closing); got != "17.8125" {
		t.Fatalf("closing value %s, want 17.8125", got)
	}
	// Every period length ends on the same closing; through today it is the sum of the balances.
	for _, p := range []report.Period{report.Day, report.Month, report.Quarter, report.Year} {
		q := report.RollForwardQuery{From: day("2025-12-15", 0), To: day("2026-12-31", 0), Period: p}
		rf, err := report.BuildRollForward(e.ctx, e.store, q, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		last := rf.Rows[len(rf.Rows)-1]
		if last.Closing != balances || rf.Rows[0].Opening != 0 || !rf.Check.Reconciled || rf.Check.LaterMovements != 0 {
			t.Fatalf("%s: first opening %d, last closing %d, check %+v; want 0, %d, reconciled", p, rf.Rows[0].Opening, last.Closing, rf.Check, balances)
		}
		for i := 1; i < len(rf.Rows); i++ {
			if rf.Rows[i].Opening != rf.Rows[i-1].Closing {
				t.Fatalf("%s: row %d opens at %d after a closing of %d", p, i, rf.Rows[i].Opening, rf.Rows[i-1].Closing)
			}
		}
	}
}

// testRollForwardWhileWriting reads roll-forwards while accruals and redemptions commit: each one, read
// from one snapshot, reconciles with the balances of that snapshot.
func testRollForwardWhileWriting(t *testing.T, h Harness) {
	e := newEnv(t, h)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var wrote atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			account := e.customer(fmt.Sprintf("rfw-%d", w))
			for i := 0; ctx.Err() == nil; i++ {
				_, err := e.ledger.Accrue(ctx, ledger.Request{Account: account, Key: fmt.Sprintf("a-%d-%d", w, i), Amount: 3})
				if err == nil && i%2 == 1 {
					_, err = e.ledger.Redeem(ctx, ledger.Request{Account: account, Key: fmt.Sprintf("r-%d-%d", w, i), Amount: 2})
				}
				if err != nil && ctx.Err() == nil {
					t.Errorf("write: %v", err)
					return
				}
				wrote.Add(1)
			}
		}()
	}
	today := time.Now().UTC()
	for n := 0; n < 30 || wrote.Load() < 50; n++ {
		rf, err := report.BuildRollForward(e.ctx, e.store, report.RollForwardQuery{From: today, To: today, Period: report.Day}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if !rf.Check.Reconciled || rf.Rows[0].Closing+rf.Check.LaterMovements != rf.Check.CustomerBalances {
			t.Fatalf("read %d: closing %d + later %d != balances %d", n, rf.Rows[0].Closing, rf.Check.LaterMovements, rf.Check.CustomerBalances)
		}
		if n > 10000 {
			t.Fatal("the writers made no progress")
		}
	}
	cancel()
	wg.Wait()
}
