package storetest

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

// testLotStore holds every store to the contracts of tally.LotStore and tally.LotWriteTx, below the
// ledger: the ledger's lot rules rely on them.
func testLotStore(t *testing.T, h Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, w *wtx)
	}{
		{"round trip", testLotRoundTrip},
		{"lapsed and due", testLotScans},
		{"constraints", testLotConstraints},
		{"pending and overdraft columns", testAccountPendingOverdraft},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newWTx(t, h))
		})
	}
}

func at(d time.Duration) *time.Time {
	t := t0.Add(d)
	return &t
}

// seedLots writes one accrual transaction per amount to account (outside any ledger) and a lot for each,
// the i-th with expires[i] (nil: never) and pending[i]; it returns the lots as written.
func (w *wtx) seedLots(account string, amounts []int64, expires, pending []*time.Time) []tally.Lot {
	w.t.Helper()
	var lots []tally.Lot
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		lots = nil
		if err := tx.EnsureAccounts(ctx, []string{account}, t0); err != nil {
			return err
		}
		locked, err := tx.LockAccounts(ctx, []string{account})
		if err != nil {
			return err
		}
		seqs, err := tx.NextSeqs(ctx, len(amounts))
		if err != nil {
			return err
		}
		a := locked[account]
		var txs []tally.Transaction
		var total int64
		for i, amount := range amounts {
			t := accrualTx(seqs[i], account, fmt.Sprintf("lot-%s-%d", account[:8], seqs[i]), amount)
			txs = append(txs, t)
			l := tally.Lot{Seq: t.Seq, AccountID: account, Points: amount, Remaining: amount, CreatedAt: t0,
				ExpiresAt: expires[i], PendingUntil: pending[i]}
			lots = append(lots, l)
			total += amount
			if l.PendingUntil != nil {
				a.Pending += amount
			}
			a.LastTxHash = t.Hash
		}
		if err := tx.InsertTransactions(ctx, txs); err != nil {
			return err
		}
		if err := tx.InsertLots(ctx, lots); err != nil {
			return err
		}
		a.Balance += total
		a.BalanceVersion += int64(len(amounts))
		if err := tx.UpdateAccounts(ctx, []tally.Account{a}); err != nil {
			return err
		}
		return tx.AddSystemBalances(ctx, []tally.SystemDelta{{AccountID: tally.AccountIssuance, Delta: -total}})
	})
	return lots
}

// testLotRoundTrip writes lots, reads them back in consumption order inside the write and after it,
// consumes some, and records and reads the uses.
func testLotRoundTrip(t *testing.T, w *wtx) {
	alice, bob := w.hash("alice"), w.hash("bob")
	lots := w.seedLots(alice, []int64{10, 20, 30, 40},
		[]*time.Time{nil, at(48 * time.Hour), at(24 * time.Hour), at(24 * time.Hour)},
		[]*time.Time{nil, nil, nil, at(time.Hour)})
	w.seedLots(bob, []int64{5}, []*time.Time{nil}, []*time.Time{nil})
	// FIFO: soonest expiry first, then seq; never-expiring last.
	want := []tally.Lot{lots[2], lots[3], lots[1], lots[0]}
	got, err := w.store.AccountLots(w.ctx, alice)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("AccountLots = %+v, %v\nwant %+v", got, err, want)
	}
	if l, err := w.store.Lot(w.ctx, lots[3].Seq); err != nil || !reflect.DeepEqual(l, lots[3]) {
		t.Fatalf("Lot = %+v, %v, want %+v", l, err, lots[3])
	}
	_, err = w.store.Lot(w.ctx, lots[3].Seq+1000)
	wantCode(t, err, tally.ENOTFOUND)
	if e, err := w.store.NextExpiry(w.ctx, alice); err != nil || e.Points != 70 || !e.At.Equal(*at(24 * time.Hour)) {
		t.Fatalf("NextExpiry = %+v, %v, want 70 points at %v", e, err, at(24*time.Hour))
	}
	_, err = w.store.NextExpiry(w.ctx, bob)
	wantCode(t, err, tally.ENOTFOUND)
	if a := w.account(alice); a.Balance != 100 || a.Pending != 40 || a.Spendable() != 60 {
		t.Fatalf("account = %+v, want balance 100 with 40 pending", a)
	}

	// A debit of 35 takes lot 3 whole and 5 of lot 2... as the ledger would decide it; the store writes.
	var debit int64
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		open, err := tx.OpenLots(ctx, sorted(alice, bob, w.hash("carol")))
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(open[alice], want) || len(open[bob]) != 1 || len(open) != 2 {
			return fmt.Errorf("OpenLots = %+v", open)
		}
		by, err := tx.LotsBySeq(ctx, []int64{lots[0].Seq, lots[1].Seq, 1 << 40})
		if err != nil {
			return err
		}
		if len(by) != 2 || !reflect.DeepEqual(by[lots[1].Seq], lots[1]) {
			return fmt.Errorf("LotsBySeq = %+v", by)
		}
		locked, err := tx.LockAccounts(ctx, []string{alice})
		if err != nil {
			return err
		}
		seqs, err := tx.NextSeqs(ctx, 1)
		if err != nil {
			return err
		}
		debit = seqs[0]
		d := tally.Transaction{Seq: debit, Kind: tally.KindRedemption, AccountID: alice, Channel: "api",
			IdempotencyKey: "debit", RequestHash: "rh", Amount: 35, CreatedAt: t0, Hash: "h-debit",
			Postings: []tally.Posting{{AccountID: alice, Amount: -35}, {AccountID: tally.AccountRedemptions, Amount: 35}}}
		if err := tx.InsertTransactions(ctx, []tally.Transaction{d}); err != nil {
			return err
		}
		l2, l1 := lots[2], lots[1]
		l2.Remaining, l1.Remaining = 0, 15
		// Activation of lot 3 in the same write.
		l3 := lots[3]
		l3.PendingUntil, l3.ActivatedAt = nil, at(2*time.Hour)
		if err := tx.UpdateLots(ctx, []tally.Lot{l2, l1, l3}); err != nil {
			return err
		}
		if err := tx.InsertLotUses(ctx, []tally.LotUse{{DebitSeq: debit, LotSeq: l2.Seq, Points: 30}, {DebitSeq: debit, LotSeq: l1.Seq, Points: 5}}); err != nil {
			return err
		}
		uses, err := tx.LotUses(ctx, []int64{debit, lots[0].Seq})
		if err != nil {
			return err
		}
		if len(uses) != 1 || len(uses[debit]) != 2 {
			return fmt.Errorf("LotUses in the write = %+v", uses)
		}
		a := locked[alice]
		a.Balance, a.Pending, a.BalanceVersion, a.LastTxHash = 65, 0, a.BalanceVersion+1, "h-debit"
		if err := tx.UpdateAccounts(ctx, []tally.Account{a}); err != nil {
			return err
		}
		return tx.AddSystemBalances(ctx, []tally.SystemDelta{{AccountID: tally.AccountRedemptions, Delta: 35}})
	})
	uses, err := w.store.LotUsesOf(w.ctx, []int64{debit})
	wantUses := []tally.LotUse{{DebitSeq: debit, LotSeq: lots[1].Seq, Points: 5}, {DebitSeq: debit, LotSeq: lots[2].Seq, Points: 30}}
	if err != nil || !reflect.DeepEqual(uses[debit], wantUses) {
		t.Fatalf("LotUsesOf = %+v, %v, want %+v (in lot order)", uses, err, wantUses)
	}
	got, err = w.store.AccountLots(w.ctx, alice)
	if err != nil || len(got) != 3 || got[0].Seq != lots[3].Seq || got[0].PendingUntil != nil ||
		got[0].ActivatedAt == nil || !got[0].ActivatedAt.Equal(*at(2 * time.Hour)) || got[1].Remaining != 15 {
		t.Fatalf("AccountLots after the debit = %+v, %v", got, err)
	}
	var scanned []tally.Lot
	err = w.store.Audit().ScanLots(w.ctx, func(l tally.Lot) error { scanned = append(scanned, l); return nil })
	if err != nil || len(scanned) != 5 {
		t.Fatalf("ScanLots = %d lots, %v, want 5", len(scanned), err)
	}
	for i := 1; i < len(scanned); i++ {
		a, b := scanned[i-1], scanned[i]
		if a.AccountID > b.AccountID || a.AccountID == b.AccountID && a.Seq >= b.Seq {
			t.Fatalf("ScanLots out of (account, seq) order: %+v", scanned)
		}
	}
}

// testLotScans: the expiry job's and the activation job's reads.
func testLotScans(t *testing.T, w *wtx) {
	alice, bob, carol := w.hash("alice"), w.hash("bob"), w.hash("carol")
	a := w.seedLots(alice, []int64{1, 2, 3}, []*time.Time{at(-time.Hour), at(0), at(time.Hour)}, []*time.Time{nil, at(-time.Minute), nil})
	b := w.seedLots(bob, []int64{4}, []*time.Time{at(-48 * time.Hour)}, []*time.Time{at(time.Hour)})
	w.seedLots(carol, []int64{5}, []*time.Time{nil}, []*time.Time{nil})
	var all []tally.LapsedLots
	after := ""
	for {
		page, err := w.store.LapsedLots(w.ctx, t0, after, 1)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		if len(page) != 1 {
			t.Fatalf("LapsedLots with limit 1 = %d accounts", len(page))
		}
		all = append(all, page...)
		after = page[0].AccountID
	}
	want := map[string][]tally.Lot{alice: {a[0], a[1]}, bob: {b[0]}}
	if len(all) != 2 || all[0].AccountID > all[1].AccountID {
		t.Fatalf("LapsedLots = %+v, want alice's and bob's in id order", all)
	}
	for _, l := range all {
		if !reflect.DeepEqual(l.Lots, want[l.AccountID]) {
			t.Fatalf("lapsed lots of %s = %+v, want %+v", l.AccountID[:8], l.Lots, want[l.AccountID])
		}
	}
	due, err := w.store.DuePendingLots(w.ctx, t0, 0, 10)
	if err != nil || len(due) != 1 || due[0].Seq != a[1].Seq {
		t.Fatalf("DuePendingLots = %+v, %v, want alice's second lot", due, err)
	}
	due, err = w.store.DuePendingLots(w.ctx, t0.Add(2*time.Hour), a[1].Seq, 10)
	if err != nil || len(due) != 1 || due[0].Seq != b[0].Seq {
		t.Fatalf("DuePendingLots after %d = %+v, %v, want bob's lot", a[1].Seq, due, err)
	}
	_, err = w.store.LapsedLots(w.ctx, t0, "", 0)
	wantCode(t, err, tally.EINVALID)
}

// testLotConstraints: a lot whose remainder leaves [0, points], a lot without its transaction and a
// reused lot use are refused alike by every store, and nothing is written.
func testLotConstraints(t *testing.T, w *wtx) {
	alice := w.hash("alice")
	lots := w.seedLots(alice, []int64{10}, []*time.Time{nil}, []*time.Time{nil})
	for name, l := range map[string]tally.Lot{
		"remaining above points": {Seq: lots[0].Seq, AccountID: alice, Points: 10, Remaining: 11},
		"remaining below zero":   {Seq: lots[0].Seq, AccountID: alice, Points: 10, Remaining: -1},
	} {
		err := w.update(func(ctx context.Context, tx tally.WriteTx) error { return tx.UpdateLots(ctx, []tally.Lot{l}) })
		if tally.ErrorCode(err) != tally.EINTERNAL {
			t.Fatalf("%s: %v, want EINTERNAL", name, err)
		}
	}
	err := w.update(func(ctx context.Context, tx tally.WriteTx) error {
		return tx.UpdateLots(ctx, []tally.Lot{{Seq: lots[0].Seq + 1000, Points: 1}})
	})
	wantCode(t, err, tally.EINTERNAL)
	err = w.update(func(ctx context.Context, tx tally.WriteTx) error {
		return tx.InsertLots(ctx, []tally.Lot{lots[0]})
	})
	wantCode(t, err, tally.ECONFLICT)
	err = w.update(func(ctx context.Context, tx tally.WriteTx) error {
		if err := tx.InsertLotUses(ctx, []tally.LotUse{{DebitSeq: lots[0].Seq, LotSeq: lots[0].Seq, Points: 1}}); err != nil {
			return err
		}
		return tx.InsertLotUses(ctx, []tally.LotUse{{DebitSeq: lots[0].Seq, LotSeq: lots[0].Seq, Points: 1}})
	})
	wantCode(t, err, tally.ECONFLICT)
	if got, err := w.store.AccountLots(w.ctx, alice); err != nil || !reflect.DeepEqual(got, lots) {
		t.Fatalf("lots after refused writes = %+v, %v, want %+v", got, err, lots)
	}
	if uses, err := w.store.LotUsesOf(w.ctx, []int64{lots[0].Seq}); err != nil || len(uses) != 0 {
		t.Fatalf("lot uses after a refused write = %+v, %v", uses, err)
	}
}

// testAccountPendingOverdraft: accounts keep pending and overdraft_limit, and the balance constraint
// allows a spendable balance down to -overdraft_limit and no further, with pending never negative.
func testAccountPendingOverdraft(t *testing.T, w *wtx) {
	alice := w.seed(w.hash("alice"), 10)
	set := func(balance, pending, limit int64) error {
		return w.update(func(ctx context.Context, tx tally.WriteTx) error {
			locked, err := tx.LockAccounts(ctx, []string{alice.ID})
			if err != nil {
				return err
			}
			a := locked[alice.ID]
			a.Balance, a.Pending, a.OverdraftLimit = balance, pending, limit
			return tx.UpdateAccounts(ctx, []tally.Account{a})
		})
	}
	if err := set(10, 4, 0); err != nil {
		t.Fatal(err)
	}
	if a := w.account(alice.ID); a.Pending != 4 || a.Spendable() != 6 {
		t.Fatalf("account = %+v, want 4 pending", a)
	}
	if err := set(-5, 0, 5); err != nil {
		t.Fatalf("spendable -5 within an overdraft limit of 5: %v", err)
	}
	if err := set(0, 10, 10); err != nil {
		t.Fatalf("spendable -10 within an overdraft limit of 10: %v", err)
	}
	for _, c := range [][3]int64{{-6, 0, 5}, {5, 6, 0}, {10, -1, 0}} {
		err := set(c[0], c[1], c[2])
		wantCode(t, err, tally.EINTERNAL)
		if want := "ledger invariant violated: " + tally.NegativeBalance; tally.ErrorMessage(err) != want {
			t.Fatalf("balance %d pending %d limit %d: message %q, want %q", c[0], c[1], c[2], tally.ErrorMessage(err), want)
		}
	}
	if a := w.account(alice.ID); a.Balance != 0 || a.Pending != 10 || a.OverdraftLimit != 10 {
		t.Fatalf("account after refused updates = %+v", a)
	}
}
