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
	t.Run("Lots", func(t *testing.T) { t.Parallel(); testReportLots(t, h) })
	t.Run("ThroughLedger", func(t *testing.T) { t.Parallel(); testReportsThroughLedger(t, h) })
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

// lotPost is one transaction of a ledger written below the ledger service, with the lots it makes or
// consumes, as the ledger's lot rules would decide them: the reports read what the store holds.
type lotPost struct {
	account   string
	kind      tally.Kind
	amount    int64 // signed, as it moves the customer
	at        time.Time
	expires   *time.Time    // a credit's lot
	pending   bool          // a credit's lot is pending
	uses      map[int]int64 // a debit's points by the index (in the posts) of the credit whose lot it takes
	overdraft int64         // the account's overdraft limit after the post
}

// postLots writes posts in order, each in its own Update, and returns their seqs.
func postLots(w *wtx, posts []lotPost) []int64 {
	w.t.Helper()
	seqs := make([]int64, len(posts))
	system := map[tally.Kind]string{tally.KindAccrual: tally.AccountIssuance, tally.KindRedemption: tally.AccountRedemptions,
		tally.KindExpiry: tally.AccountExpired, tally.KindAdjustment: tally.AccountAdjustments}
	for i, p := range posts {
		w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
			if err := tx.EnsureAccounts(ctx, []string{p.account}, p.at); err != nil {
				return err
			}
			locked, err := tx.LockAccounts(ctx, []string{p.account})
			if err != nil {
				return err
			}
			next, err := tx.NextSeqs(ctx, 1)
			if err != nil {
				return err
			}
			seqs[i] = next[0]
			key := fmt.Sprintf("report-%d", i)
			t := tally.Transaction{Seq: seqs[i], Kind: p.kind, AccountID: p.account, Channel: "api", IdempotencyKey: key,
				RequestHash: "rh-" + key, Amount: amountOf(p.kind, p.amount), Reason: "test", Actor: "storetest", CreatedAt: p.at, Hash: "h-" + key,
				Postings: []tally.Posting{{AccountID: p.account, Amount: p.amount}, {AccountID: system[p.kind], Amount: -p.amount}}}
			if err := tx.InsertTransactions(ctx, []tally.Transaction{t}); err != nil {
				return err
			}
			a := locked[p.account]
			a.Balance += p.amount
			a.BalanceVersion++
			a.OverdraftLimit = p.overdraft
			if p.amount > 0 {
				l := tally.Lot{Seq: t.Seq, AccountID: p.account, Points: p.amount, Remaining: p.amount, CreatedAt: p.at, ExpiresAt: p.expires}
				if p.pending {
					until := p.at.AddDate(0, 1, 0)
					l.PendingUntil = &until
					a.Pending += p.amount
				}
				if err := tx.InsertLots(ctx, []tally.Lot{l}); err != nil {
					return err
				}
			}
			for credit, points := range p.uses {
				lots, err := tx.LotsBySeq(ctx, []int64{seqs[credit]})
				if err != nil {
					return err
				}
				l := lots[seqs[credit]]
				l.Remaining -= points
				if l.PendingUntil != nil {
					a.Pending -= points
				}
				if err := tx.UpdateLots(ctx, []tally.Lot{l}); err != nil {
					return err
				}
				if err := tx.InsertLotUses(ctx, []tally.LotUse{{DebitSeq: t.Seq, LotSeq: l.Seq, Points: points}}); err != nil {
					return err
				}
			}
			if err := tx.UpdateAccounts(ctx, []tally.Account{a}); err != nil {
				return err
			}
			return tx.AddSystemBalances(ctx, []tally.SystemDelta{{AccountID: system[p.kind], Delta: -p.amount}})
		})
	}
	return seqs
}

func date(s string) time.Time { return day(s, 0) }

func datep(s string) *time.Time { d := date(s); return &d }

// testReportLots sums lots into the outstanding and breakage reports, on a ledger whose lots are written
// by hand (see postLots), read at 2026-06-15.
func testReportLots(t *testing.T, h Harness) {
	w := newWTx(t, h)
	a, b, c := w.hash("lots-a"), w.hash("lots-b"), w.hash("lots-c")
	postLots(w, []lotPost{
		// January's cohort: 150 issued, 30 redeemed, 70 expired, 50 lapsed and not yet posted: matured.
		0: {account: a, kind: tally.KindAccrual, amount: 100, at: day("2026-01-10", 9), expires: datep("2026-04-01")},
		1: {account: a, kind: tally.KindAccrual, amount: 50, at: day("2026-01-31", 23), expires: datep("2026-05-01")},
		2: {account: a, kind: tally.KindRedemption, amount: -30, at: date("2026-02-01"), uses: map[int]int64{0: 30}},
		3: {account: a, kind: tally.KindExpiry, amount: -70, at: date("2026-04-01"), uses: map[int]int64{0: 70}},
		// February's: 240 issued, 200 pending until activated, 15 redeemed, 25 that never expire: open.
		4: {account: b, kind: tally.KindAccrual, amount: 200, at: date("2026-02-05"), expires: datep("2026-09-01"), pending: true},
		5: {account: b, kind: tally.KindAdjustment, amount: 40, at: date("2026-02-10")},
		6: {account: b, kind: tally.KindRedemption, amount: -15, at: date("2026-02-11"), uses: map[int]int64{5: 15}},
		// March's: 10 issued, all taken by a debit that overdraws the account: matured, no breakage.
		7: {account: c, kind: tally.KindAccrual, amount: 10, at: date("2026-03-01")},
		8: {account: c, kind: tally.KindAdjustment, amount: -30, at: date("2026-03-02"), uses: map[int]int64{7: 10}, overdraft: 50},
		// June's (this month): used up, but the month is not over: not matured.
		9:  {account: b, kind: tally.KindAccrual, amount: 60, at: date("2026-06-02"), expires: datep("2026-09-01")},
		10: {account: b, kind: tally.KindAdjustment, amount: -60, at: date("2026-06-03"), uses: map[int]int64{9: 60}},
	})
	now := day("2026-06-15", 12)
	value, err := report.ParsePointValue("0.01", "EUR")
	if err != nil {
		t.Fatal(err)
	}

	o, err := report.BuildOutstanding(w.ctx, w.store, value, now)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus := []report.OutstandingLine{{Key: "pending", Points: 200, Lots: 1}, {Key: "active", Points: 75, Lots: 2}}
	wantExpiry := []report.OutstandingLine{
		{Key: "2026-05", Points: 50, Lots: 1, Lapsed: 50},
		{Key: "2026-09", Points: 200, Lots: 1, Pending: 200},
		{Key: report.Never, Points: 25, Lots: 1},
	}
	wantTotals := tally.CustomerTotals{Accounts: 3, Balance: 255, Pending: 200, Overdrawn: -20}
	if o.Total != 275 || fmt.Sprint(o.ByStatus) != fmt.Sprint(wantStatus) || fmt.Sprint(o.ByExpiry) != fmt.Sprint(wantExpiry) ||
		o.Accounts != wantTotals || !o.Reconciled {
		t.Fatalf("outstanding %+v\nwant total 275, by status %v, by expiry %v, accounts %+v, reconciled", o, wantStatus, wantExpiry, wantTotals)
	}
	if got := value.Of(o.Total); got != "2.75" {
		t.Fatalf("total value %s, want 2.75", got)
	}

	br, err := report.BuildBreakage(w.ctx, w.store, value, now)
	if err != nil {
		t.Fatal(err)
	}
	wantCohorts := []report.CohortLine{
		{Cohort: "2026-01", Lots: 2, Issued: 150, Redeemed: 30, Expired: 70, Remaining: 50, Lapsed: 50, Matured: true, Rate: "0.4667"},
		{Cohort: "2026-02", Lots: 2, Issued: 240, Redeemed: 15, Remaining: 225},
		{Cohort: "2026-03", Lots: 1, Issued: 10, Other: 10, Matured: true, Rate: "0.0000"},
		{Cohort: "2026-06", Lots: 1, Issued: 60, Other: 60},
	}
	if fmt.Sprint(br.Cohorts) != fmt.Sprint(wantCohorts) {
		t.Fatalf("cohorts\n%+v\nwant\n%+v", br.Cohorts, wantCohorts)
	}

	rf, err := report.BuildRollForward(w.ctx, w.store, report.RollForwardQuery{From: date("2026-01-01"), To: date("2026-06-30"), Period: report.Quarter}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []report.RollForwardRow{
		{Period: "2026-Q1", Start: date("2026-01-01"), End: date("2026-03-31"), Issued: 400, Redeemed: -45, Adjusted: -30, Closing: 325},
		{Period: "2026-Q2", Start: date("2026-04-01"), End: date("2026-06-30"), Opening: 325, Issued: 60, Expired: -70, Adjusted: -60, Closing: 255},
	}
	if fmt.Sprint(rf.Rows) != fmt.Sprint(want) || !rf.Check.Reconciled {
		t.Fatalf("roll-forward %+v\nwant %+v, reconciled", rf, want)
	}
}

// testReportsThroughLedger makes the three reports of a ledger whose lots the ledger itself keeps:
// pending points, FIFO redemptions and the expiry job.
func testReportsThroughLedger(t *testing.T, h Harness) {
	clock := &testClock{}
	e := newEnvAt(t, h, clock)
	a, b, c := e.customer("tl-a"), e.customer("tl-b"), e.customer("tl-c")
	clock.Set(day("2026-01-10", 9))
	e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Account: a, Key: "a-jan", Amount: 100, ExpiresAt: datep("2026-04-01")})
	e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "c-jan", Amount: 20, ExpiresAt: datep("2026-04-01")})
	clock.Set(day("2026-02-01", 9))
	e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Account: a, Key: "a-feb", Amount: 50}) // never expires
	e.mustWrite(ledger.Request{Kind: tally.KindRedemption, Account: a, Key: "a-red", Amount: 30})
	e.mustWrite(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "c-red", Amount: 20})
	e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Account: b, Key: "b-feb", Amount: 200,
		PendingUntil: datep("2026-03-01"), ExpiresAt: datep("2026-09-01")})
	clock.Set(day("2026-04-02", 0))
	if rep, err := e.ledger.ExpireLapsed(e.ctx, ledger.ExpireOptions{}); err != nil || rep.Points != 70 {
		t.Fatalf("expiry run: %+v, %v; want 70 points expired", rep, err)
	}
	now := day("2026-06-15", 12)
	clock.Set(now)

	o, err := report.BuildOutstanding(e.ctx, e.store, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	wantStatus := []report.OutstandingLine{{Key: "pending", Points: 200, Lots: 1}, {Key: "active", Points: 50, Lots: 1}}
	wantExpiry := []report.OutstandingLine{{Key: "2026-09", Points: 200, Lots: 1, Pending: 200}, {Key: report.Never, Points: 50, Lots: 1}}
	if balances := e.balance(a) + e.balance(b) + e.balance(c); o.Total != 250 || balances != 250 || !o.Reconciled ||
		fmt.Sprint(o.ByStatus) != fmt.Sprint(wantStatus) || fmt.Sprint(o.ByExpiry) != fmt.Sprint(wantExpiry) {
		t.Fatalf("outstanding %+v (balances %d)\nwant 250 by status %v, by expiry %v, reconciled", o, balances, wantStatus, wantExpiry)
	}

	br, err := report.BuildBreakage(e.ctx, e.store, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	wantCohorts := []report.CohortLine{
		{Cohort: "2026-01", Lots: 2, Issued: 120, Redeemed: 50, Expired: 70, Matured: true, Rate: "0.5833"},
		{Cohort: "2026-02", Lots: 2, Issued: 250, Remaining: 250},
	}
	if fmt.Sprint(br.Cohorts) != fmt.Sprint(wantCohorts) {
		t.Fatalf("cohorts\n%+v\nwant\n%+v", br.Cohorts, wantCohorts)
	}

	rf, err := report.BuildRollForward(e.ctx, e.store, report.RollForwardQuery{From: date("2026-01-01"), To: date("2026-06-30"), Period: report.Quarter}, now)
	if err != nil {
		t.Fatal(err)
	}
	want := []report.RollForwardRow{
		{Period: "2026-Q1", Start: date("2026-01-01"), End: date("2026-03-31"), Issued: 370, Redeemed: -50, Closing: 320},
		{Period: "2026-Q2", Start: date("2026-04-01"), End: date("2026-06-30"), Opening: 320, Expired: -70, Closing: 250},
	}
	if fmt.Sprint(rf.Rows) != fmt.Sprint(want) || !rf.Check.Reconciled || rf.Check.CustomerBalances != 250 {
		t.Fatalf("roll-forward %+v\nwant %+v, reconciled at 250", rf, want)
	}
	e.mustVerify()
}

// amountOf is a transaction's stored amount as the ledger writes it: signed for an adjustment, positive
// for every other kind.
func amountOf(kind tally.Kind, delta int64) int64 {
	if kind == tally.KindAdjustment {
		return delta
	}
	return max(delta, -delta)
}
