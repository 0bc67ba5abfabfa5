package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

// testWriteTx holds every store to the contracts of tally.WriteTx and tally.Store.Update as store.go
// documents them, method by method, below the ledger: the ledger relies on them, and a store that
// differs from the others would show only under rare interleavings.
func testWriteTx(t *testing.T, h Harness) {
	cases := []struct {
		name string
		fn   func(t *testing.T, w *wtx)
	}{
		{"round trip", testRoundTrip},
		{"claims", testClaims},
		{"many claims", testManyClaims},
		{"save without a pending claim", testSaveUnclaimed},
		{"release", testRelease},
		{"ensure accounts", testEnsureAccounts},
		{"update of an account not locked", testUpdateUnlocked},
		{"negative balance", testNegativeBalance},
		{"unknown status", testUnknownStatus},
		{"next seqs", testNextSeqs},
		{"insert conflicts", testInsertConflicts},
		{"system shards", testSystemShards},
		{"update passes errors through", testUpdateErrors},
		{"concurrent updates", testConcurrentUpdates},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newWTx(t, h))
		})
	}
}

// wtx is one WriteTx test's store.
type wtx struct {
	t     *testing.T
	h     Harness
	store tally.Store
	ctx   context.Context
	hash  func(string) string
}

func newWTx(t *testing.T, h Harness) *wtx {
	t.Helper()
	e := newEnv(t, h) // for the store's lifetime and the customer hashes; its ledger stays idle
	return &wtx{t: t, h: h, store: e.store, ctx: e.ctx, hash: e.customer}
}

// t0 is a time the stores keep exactly (microseconds, UTC).
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)

// update runs fn in one Update and returns its error.
func (w *wtx) update(fn func(ctx context.Context, tx tally.WriteTx) error) error {
	return w.store.Update(w.ctx, fn)
}

// mustUpdate runs fn in one Update that must commit.
func (w *wtx) mustUpdate(fn func(ctx context.Context, tx tally.WriteTx) error) {
	w.t.Helper()
	if err := w.update(fn); err != nil {
		w.t.Fatalf("Update: %v", err)
	}
}

// claim is a claim of key on channel "api".
func claim(key string) tally.Outcome {
	return tally.Outcome{OutcomeKey: tally.OutcomeKey{Channel: "api", Key: key}, RequestHash: "rh-" + key, CreatedAt: t0}
}

// saved is claim(key) filled in with a remembered refusal.
func saved(key string) tally.Outcome {
	o := claim(key)
	o.Code, o.Response = tally.EINSUFFICIENT, json.RawMessage(`{"code":"insufficient_points"}`)
	return o
}

// accrualTx is an accrual of amount to account, with the given seq and key.
func accrualTx(seq int64, account, key string, amount int64) tally.Transaction {
	return tally.Transaction{
		Seq: seq, Kind: tally.KindAccrual, AccountID: account, Channel: "api", IdempotencyKey: key,
		RequestHash: "rh-" + key, Amount: amount, Reason: "test", Actor: "storetest", CreatedAt: t0, Hash: "h-" + key,
		Postings: []tally.Posting{{AccountID: account, Amount: amount}, {AccountID: tally.AccountIssuance, Amount: -amount}},
	}
}

// seed creates account with balance points (one accrual, outside any ledger) and returns it as stored.
func (w *wtx) seed(account string, balance int64) tally.Account {
	w.t.Helper()
	var a tally.Account
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		if err := tx.EnsureAccounts(ctx, []string{account}, t0); err != nil {
			return err
		}
		locked, err := tx.LockAccounts(ctx, []string{account})
		if err != nil {
			return err
		}
		seqs, err := tx.NextSeqs(ctx, 1)
		if err != nil {
			return err
		}
		t := accrualTx(seqs[0], account, "seed-"+account[:8], balance)
		if err := tx.InsertTransactions(ctx, []tally.Transaction{t}); err != nil {
			return err
		}
		a = locked[account]
		a.Balance, a.BalanceVersion, a.LastTxHash = balance, 1, t.Hash
		if err := tx.UpdateAccounts(ctx, []tally.Account{a}); err != nil {
			return err
		}
		return tx.AddSystemBalances(ctx, []tally.SystemDelta{{AccountID: tally.AccountIssuance, Delta: -balance}})
	})
	return a
}

// sorted returns ids in the order WriteTx expects them.
func sorted(ids ...string) []string {
	slices.Sort(ids)
	return ids
}

func (w *wtx) account(id string) tally.Account {
	w.t.Helper()
	a, err := w.store.Account(w.ctx, id)
	if err != nil {
		w.t.Fatalf("Account(%s): %v", id, err)
	}
	return a
}

// testRoundTrip writes every kind of row in one transaction and reads each back, inside the write and
// after it, exactly as written.
func testRoundTrip(t *testing.T, w *wtx) {
	alice, bob := w.hash("alice"), w.hash("bob")
	var first, reversal tally.Transaction
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		existing, err := tx.ClaimOutcomes(ctx, []tally.Outcome{claim("k1"), claim("k2")})
		if err != nil || len(existing) != 0 {
			return errors.Join(err, fmt.Errorf("fresh claims found %+v", existing))
		}
		if err := tx.EnsureAccounts(ctx, sorted(alice, bob), t0); err != nil {
			return err
		}
		locked, err := tx.LockAccounts(ctx, sorted(alice, bob, w.hash("carol"), tally.AccountIssuance))
		if err != nil {
			return err
		}
		if len(locked) != 2 || locked[alice].Balance != 0 || locked[alice].Status != tally.StatusActive || !locked[alice].CreatedAt.Equal(t0) {
			return fmt.Errorf("LockAccounts = %+v, want alice and bob only (absent and system accounts are left out)", locked)
		}
		seqs, err := tx.NextSeqs(ctx, 2)
		if err != nil {
			return err
		}
		first = accrualTx(seqs[0], alice, "k1", 100)
		first.Metadata = json.RawMessage(`{ "b":1,  "a":"é" }`) // kept byte for byte: the hash covers it
		reversal = tally.Transaction{
			Seq: seqs[1], Kind: tally.KindReversal, AccountID: alice, Channel: "api", IdempotencyKey: "k2",
			RequestHash: "rh-k2", Amount: 100, ReversesSeq: seqs[0], CreatedAt: t0, Hash: "h-k2",
			Postings: []tally.Posting{{AccountID: alice, Amount: -100}, {AccountID: tally.AccountIssuance, Amount: 100}},
		}
		if err := tx.InsertTransactions(ctx, []tally.Transaction{first, reversal}); err != nil {
			return err
		}
		a := locked[alice]
		a.BalanceVersion, a.LastTxHash, a.Status = 2, "h-k2", tally.StatusFrozen
		if err := tx.UpdateAccounts(ctx, []tally.Account{a}); err != nil {
			return err
		}
		got, err := tx.Transactions(ctx, []int64{seqs[0], seqs[1], seqs[1] + 1000})
		if err != nil {
			return err
		}
		if len(got) != 2 || !reflect.DeepEqual(got[first.Seq], first) || !reflect.DeepEqual(got[reversal.Seq], reversal) {
			return fmt.Errorf("Transactions = %+v\nwant %+v and %+v", got, first, reversal)
		}
		by, err := tx.ReversedBy(ctx, []int64{seqs[0], seqs[1], seqs[1] + 1000})
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(by, map[int64]int64{first.Seq: reversal.Seq}) {
			return fmt.Errorf("ReversedBy = %v, want {%d: %d}", by, first.Seq, reversal.Seq)
		}
		done := claim("k1")
		done.TxSeq, done.Response = first.Seq, json.RawMessage(`{"seq":1}`)
		return tx.SaveOutcomes(ctx, []tally.Outcome{done, saved("k2")})
	})

	got, err := w.store.Transaction(w.ctx, first.Seq)
	if err != nil || !reflect.DeepEqual(got, first) {
		t.Fatalf("Transaction(%d) = %+v, %v\nwant %+v", first.Seq, got, err, first)
	}
	if got, err := w.store.Transaction(w.ctx, reversal.Seq); err != nil || !reflect.DeepEqual(got, reversal) {
		t.Fatalf("Transaction(%d) = %+v, %v\nwant %+v", reversal.Seq, got, err, reversal)
	}
	want := tally.Account{ID: alice, Status: tally.StatusFrozen, BalanceVersion: 2, LastTxHash: "h-k2", CreatedAt: t0, QualifyingFrom: newAccountBound}
	if a := w.account(alice); a != want {
		t.Fatalf("Account = %+v, want %+v", a, want)
	}
	o, err := w.store.Outcome(w.ctx, "api", "k1")
	want1 := claim("k1")
	want1.TxSeq, want1.Response = first.Seq, json.RawMessage(`{"seq":1}`)
	if err != nil || !reflect.DeepEqual(o, want1) {
		t.Fatalf("Outcome(k1) = %+v, %v\nwant %+v", o, err, want1)
	}
	if o, err := w.store.Outcome(w.ctx, "api", "k2"); err != nil || !reflect.DeepEqual(o, saved("k2")) {
		t.Fatalf("Outcome(k2) = %+v, %v\nwant %+v", o, err, saved("k2"))
	}
	if a := w.account(tally.AccountIssuance); a.Balance != 0 {
		t.Fatalf("issuance balance %d without AddSystemBalances, want 0", a.Balance)
	}
}

// testClaims: a claimed key is pending until saved, and a later claim finds it, pending or saved, in
// key order beside the keys it claims.
func testClaims(t *testing.T, w *wtx) {
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		if _, err := tx.ClaimOutcomes(ctx, []tally.Outcome{claim("b"), claim("d")}); err != nil {
			return err
		}
		return tx.SaveOutcomes(ctx, []tally.Outcome{saved("d")})
	})
	if _, err := w.store.Outcome(w.ctx, "api", "b"); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("Outcome of a pending claim = %v, want ENOTFOUND", err)
	}
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		existing, err := tx.ClaimOutcomes(ctx, []tally.Outcome{claim("a"), claim("b"), claim("c"), claim("d")})
		if err != nil {
			return err
		}
		if want := []tally.Outcome{claim("b"), saved("d")}; !reflect.DeepEqual(existing, want) {
			return fmt.Errorf("existing = %+v\nwant %+v", existing, want)
		}
		return nil
	})
}

// testManyClaims claims more keys than one statement of any store carries.
func testManyClaims(t *testing.T, w *wtx) {
	claims := func(from, to int) []tally.Outcome {
		var out []tally.Outcome
		for i := from; i < to; i++ {
			c := claim(pad4(i))
			c.RequestHash = itoa(i)
			out = append(out, c)
		}
		return out
	}
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		existing, err := tx.ClaimOutcomes(ctx, claims(0, 512))
		if err != nil || len(existing) != 0 {
			return errors.Join(err, fmt.Errorf("%d existing of fresh claims", len(existing)))
		}
		return nil
	})
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		existing, err := tx.ClaimOutcomes(ctx, claims(256, 768))
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(existing, claims(256, 512)) {
			return fmt.Errorf("%d existing, want keys 256 to 511 in order", len(existing))
		}
		var keys []tally.OutcomeKey
		for _, c := range claims(0, 768) {
			keys = append(keys, c.OutcomeKey)
		}
		return tx.ReleaseClaims(ctx, keys)
	})
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		existing, err := tx.ClaimOutcomes(ctx, claims(0, 768))
		if err != nil || len(existing) != 0 {
			return errors.Join(err, fmt.Errorf("%d keys still claimed after their release", len(existing)))
		}
		return nil
	})
}

func pad4(i int) string {
	s := itoa(i)
	for len(s) < 4 {
		s = "0" + s
	}
	return "k" + s
}

// testSaveUnclaimed: saving an outcome whose key has no pending row is EINTERNAL and changes nothing.
func testSaveUnclaimed(t *testing.T, w *wtx) {
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		if _, err := tx.ClaimOutcomes(ctx, []tally.Outcome{claim("done")}); err != nil {
			return err
		}
		return tx.SaveOutcomes(ctx, []tally.Outcome{saved("done")})
	})
	cases := []struct {
		name   string
		before func(ctx context.Context, tx tally.WriteTx) error
		key    string
	}{
		{"never claimed", nil, "never"},
		{"released", func(ctx context.Context, tx tally.WriteTx) error {
			if _, err := tx.ClaimOutcomes(ctx, []tally.Outcome{claim("released")}); err != nil {
				return err
			}
			return tx.ReleaseClaims(ctx, []tally.OutcomeKey{claim("released").OutcomeKey})
		}, "released"},
		{"saved before", nil, "done"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := w.update(func(ctx context.Context, tx tally.WriteTx) error {
				if tc.before != nil {
					if err := tc.before(ctx, tx); err != nil {
						return err
					}
				}
				o := claim(tc.key)
				o.TxSeq, o.Response = 7, json.RawMessage(`{"seq":7}`)
				return tx.SaveOutcomes(ctx, []tally.Outcome{o})
			})
			wantCode(t, err, tally.EINTERNAL)
		})
	}
	if o, err := w.store.Outcome(w.ctx, "api", "done"); err != nil || !reflect.DeepEqual(o, saved("done")) {
		t.Fatalf("saved outcome after refused saves = %+v, %v; want it unchanged", o, err)
	}
	for _, key := range []string{"never", "released"} {
		if _, err := w.store.Outcome(w.ctx, "api", key); tally.ErrorCode(err) != tally.ENOTFOUND {
			t.Fatalf("Outcome(%s) after a refused save = %v, want ENOTFOUND", key, err)
		}
	}
}

// testRelease: releasing deletes pending claims only; absent keys and saved outcomes are no error.
func testRelease(t *testing.T, w *wtx) {
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		if _, err := tx.ClaimOutcomes(ctx, []tally.Outcome{claim("done"), claim("pending")}); err != nil {
			return err
		}
		if err := tx.SaveOutcomes(ctx, []tally.Outcome{saved("done")}); err != nil {
			return err
		}
		keys := []tally.OutcomeKey{claim("absent").OutcomeKey, claim("done").OutcomeKey, claim("pending").OutcomeKey}
		if err := tx.ReleaseClaims(ctx, keys); err != nil {
			return err
		}
		return tx.ReleaseClaims(ctx, keys) // again: nothing left to release, no error
	})
	if o, err := w.store.Outcome(w.ctx, "api", "done"); err != nil || !reflect.DeepEqual(o, saved("done")) {
		t.Fatalf("released saved outcome = %+v, %v; want it kept", o, err)
	}
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		existing, err := tx.ClaimOutcomes(ctx, []tally.Outcome{claim("absent"), claim("pending")})
		if err != nil || len(existing) != 0 {
			return errors.Join(err, fmt.Errorf("claims after release found %+v", existing))
		}
		return nil
	})
}

// testEnsureAccounts: creating accounts again changes nothing, for customer and system accounts alike.
func testEnsureAccounts(t *testing.T, w *wtx) {
	alice, bob := w.hash("alice"), w.hash("bob")
	seeded := w.seed(alice, 50)
	frozen := seeded
	frozen.Status = tally.StatusFrozen
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		if _, err := tx.LockAccounts(ctx, []string{alice}); err != nil {
			return err
		}
		return tx.UpdateAccounts(ctx, []tally.Account{frozen})
	})
	later := t0.Add(time.Hour)
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		ids := sorted(alice, bob, tally.AccountIssuance)
		if err := tx.EnsureAccounts(ctx, ids, later); err != nil {
			return err
		}
		return tx.EnsureAccounts(ctx, ids, later.Add(time.Hour))
	})
	if a := w.account(alice); a != frozen {
		t.Fatalf("existing account after EnsureAccounts = %+v, want %+v", a, frozen)
	}
	want := tally.Account{ID: bob, Status: tally.StatusActive, CreatedAt: later, QualifyingFrom: newAccountBound}
	if a := w.account(bob); a != want {
		t.Fatalf("new account = %+v, want %+v", a, want)
	}
	if a := w.account(tally.AccountIssuance); a.Balance != -50 || a.Status != tally.StatusActive {
		t.Fatalf("system account after EnsureAccounts = %+v", a)
	}
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		locked, err := tx.LockAccounts(ctx, sorted(alice, bob, tally.AccountIssuance))
		if err != nil {
			return err
		}
		if len(locked) != 2 || locked[alice] != frozen || locked[bob] != want {
			return fmt.Errorf("LockAccounts = %+v", locked)
		}
		return nil
	})
}

// testUpdateUnlocked: updating an account that is not an existing customer account is EINTERNAL, and
// the write is refused as a whole.
func testUpdateUnlocked(t *testing.T, w *wtx) {
	alice := w.seed(w.hash("alice"), 10)
	cases := []struct {
		name    string
		account tally.Account
	}{
		{"absent", tally.Account{ID: w.hash("nobody"), Status: tally.StatusActive, Balance: 5, BalanceVersion: 1}},
		{"system", tally.Account{ID: tally.AccountIssuance, Status: tally.StatusActive, Balance: 5, BalanceVersion: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := w.update(func(ctx context.Context, tx tally.WriteTx) error {
				if _, err := tx.LockAccounts(ctx, sorted(alice.ID, tc.account.ID)); err != nil {
					return err
				}
				moved := alice
				moved.Balance, moved.BalanceVersion = 99, 2
				accounts := []tally.Account{moved, tc.account}
				if tc.account.ID < alice.ID {
					accounts[0], accounts[1] = accounts[1], accounts[0]
				}
				return tx.UpdateAccounts(ctx, accounts)
			})
			wantCode(t, err, tally.EINTERNAL)
		})
	}
	if a := w.account(alice.ID); a != alice {
		t.Fatalf("account after refused updates = %+v, want %+v", a, alice)
	}
	if _, err := w.store.Account(w.ctx, w.hash("nobody")); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("absent account after a refused update: %v", err)
	}
	if a := w.account(tally.AccountIssuance); a.Balance != -10 {
		t.Fatalf("system account after a refused update: %+v", a)
	}
}

// testNegativeBalance forces the database's balance constraint, as a broken ledger would: the store
// refuses with EINTERNAL naming the invariant, the same on every store, and writes nothing.
func testNegativeBalance(t *testing.T, w *wtx) {
	alice := w.seed(w.hash("alice"), 10)
	err := w.update(func(ctx context.Context, tx tally.WriteTx) error {
		locked, err := tx.LockAccounts(ctx, []string{alice.ID})
		if err != nil {
			return err
		}
		a := locked[alice.ID]
		a.Balance, a.BalanceVersion = -1, a.BalanceVersion+1
		return tx.UpdateAccounts(ctx, []tally.Account{a})
	})
	wantCode(t, err, tally.EINTERNAL)
	if want := "ledger invariant violated: " + tally.NegativeBalance; tally.ErrorMessage(err) != want {
		t.Fatalf("message %q, want %q", tally.ErrorMessage(err), want)
	}
	if a := w.account(alice.ID); a != alice {
		t.Fatalf("account after a refused negative balance = %+v, want %+v", a, alice)
	}
}

// testUnknownStatus: a status the schema does not know is EINVALID on every store.
func testUnknownStatus(t *testing.T, w *wtx) {
	alice := w.seed(w.hash("alice"), 10)
	err := w.update(func(ctx context.Context, tx tally.WriteTx) error {
		if _, err := tx.LockAccounts(ctx, []string{alice.ID}); err != nil {
			return err
		}
		a := alice
		a.Status = "suspended"
		return tx.UpdateAccounts(ctx, []tally.Account{a})
	})
	wantCode(t, err, tally.EINVALID)
	if a := w.account(alice.ID); a != alice {
		t.Fatalf("account after a refused status = %+v, want %+v", a, alice)
	}
}

// testNextSeqs: numbers are distinct, ascending, and grow from one transaction to the next.
func testNextSeqs(t *testing.T, w *wtx) {
	var last int64
	for _, n := range []int{3, 1, 0, 250} {
		w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
			seqs, err := tx.NextSeqs(ctx, n)
			if err != nil {
				return err
			}
			if len(seqs) != n {
				return fmt.Errorf("NextSeqs(%d) = %v", n, seqs)
			}
			for _, s := range seqs {
				if s <= last {
					return fmt.Errorf("NextSeqs(%d) = %v after %d: not ascending", n, seqs, last)
				}
				last = s
			}
			return nil
		})
	}
	err := w.update(func(ctx context.Context, tx tally.WriteTx) error {
		_, err := tx.NextSeqs(ctx, -1)
		return err
	})
	wantCode(t, err, tally.EINVALID)
}

// testInsertConflicts: a reused seq, key or reversal target is ECONFLICT; an unknown kind is EINVALID.
func testInsertConflicts(t *testing.T, w *wtx) {
	alice := w.hash("alice")
	w.seed(alice, 10)
	var target, reversal int64
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		seqs, err := tx.NextSeqs(ctx, 2)
		if err != nil {
			return err
		}
		target, reversal = seqs[0], seqs[1]
		rev := accrualTx(reversal, alice, "rev", 5)
		rev.Kind, rev.ReversesSeq = tally.KindReversal, target
		return tx.InsertTransactions(ctx, []tally.Transaction{accrualTx(target, alice, "target", 5), rev})
	})
	cases := []struct {
		name string
		edit func(*tally.Transaction)
		code tally.Code
	}{
		{"idempotency key", func(t *tally.Transaction) { t.IdempotencyKey = "target" }, tally.ECONFLICT},
		{"reversed twice", func(t *tally.Transaction) { t.Kind, t.ReversesSeq = tally.KindReversal, target }, tally.ECONFLICT},
		{"sequence", func(t *tally.Transaction) { t.Seq = target }, tally.ECONFLICT},
		{"unknown kind", func(t *tally.Transaction) { t.Kind = "gift" }, tally.EINVALID},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := w.update(func(ctx context.Context, tx tally.WriteTx) error {
				seqs, err := tx.NextSeqs(ctx, 1)
				if err != nil {
					return err
				}
				tr := accrualTx(seqs[0], alice, "fresh", 1)
				tc.edit(&tr)
				return tx.InsertTransactions(ctx, []tally.Transaction{tr})
			})
			wantCode(t, err, tc.code)
			t.Log(tally.ErrorMessage(err))
		})
	}
	// The same key on another channel is another transaction.
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		seqs, err := tx.NextSeqs(ctx, 1)
		if err != nil {
			return err
		}
		tr := accrualTx(seqs[0], alice, "target", 1)
		tr.Channel = "webchat"
		return tx.InsertTransactions(ctx, []tally.Transaction{tr})
	})
}

// testSystemShards: deltas add up per shard, within one call and across calls; a system account's
// balance is the sum of its shards, whatever its own row holds.
func testSystemShards(t *testing.T, w *wtx) {
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		return tx.AddSystemBalances(ctx, []tally.SystemDelta{
			{AccountID: tally.AccountRedemptions, Shard: 3, Delta: 5},
			{AccountID: tally.AccountIssuance, Shard: 1, Delta: -10},
			{AccountID: tally.AccountRedemptions, Shard: 3, Delta: 7},
			{AccountID: tally.AccountIssuance, Shard: tally.SystemShards - 1, Delta: -2},
			{AccountID: tally.AccountExpired, Shard: 9, Delta: 0},
		})
	})
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		return tx.AddSystemBalances(ctx, []tally.SystemDelta{{AccountID: tally.AccountRedemptions, Shard: 3, Delta: 100}})
	})
	w.h.Exec(t, w.store, "UPDATE accounts SET balance = 999 WHERE id = '"+tally.AccountIssuance+"'")
	want := map[string]int64{tally.AccountIssuance: -12, tally.AccountRedemptions: 112, tally.AccountExpired: 0, tally.AccountAdjustments: 0}
	scanned := map[string]int64{}
	err := w.store.Audit().ScanAccounts(w.ctx, func(a tally.Account) error {
		scanned[a.ID] = a.Balance
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, balance := range want {
		if a := w.account(id); a.Balance != balance {
			t.Errorf("Account(%s) balance %d, want %d", id, a.Balance, balance)
		}
		if scanned[id] != balance {
			t.Errorf("ScanAccounts %s balance %d, want %d", id, scanned[id], balance)
		}
	}
}

// testUpdateErrors: an error of fn, or of its context, rolls everything back and is returned as is,
// after one call.
func testUpdateErrors(t *testing.T, w *wtx) {
	alice := w.hash("alice")
	boom := errors.New("boom")
	calls := 0
	err := w.update(func(ctx context.Context, tx tally.WriteTx) error {
		calls++
		if _, err := tx.ClaimOutcomes(ctx, []tally.Outcome{claim("k")}); err != nil {
			return err
		}
		if err := tx.EnsureAccounts(ctx, []string{alice}, t0); err != nil {
			return err
		}
		return boom
	})
	if err != boom || calls != 1 {
		t.Fatalf("Update = %v after %d calls, want boom after 1", err, calls)
	}
	if _, err := w.store.Account(w.ctx, alice); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("account of a rolled-back write: %v", err)
	}

	cancelled, cancel := context.WithCancel(w.ctx)
	cancel()
	if err := w.store.Update(cancelled, func(context.Context, tally.WriteTx) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("Update with a cancelled context = %v", err)
	}
	cancelled, cancel = context.WithCancel(w.ctx)
	err = w.store.Update(cancelled, func(ctx context.Context, tx tally.WriteTx) error {
		cancel()
		return tx.EnsureAccounts(ctx, []string{alice}, t0)
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update cancelled midway = %v", err)
	}
	if _, err := w.store.Account(w.ctx, alice); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("cancelled write was committed: %v", err)
	}
	w.mustUpdate(func(ctx context.Context, tx tally.WriteTx) error {
		existing, err := tx.ClaimOutcomes(ctx, []tally.Outcome{claim("k")})
		if err != nil || len(existing) != 0 {
			return errors.Join(err, fmt.Errorf("claim of a rolled-back write survived: %+v", existing))
		}
		return nil
	})
}

// testConcurrentUpdates: writers at once never get the same sequence number, and each one's accounts
// exist after it commits.
func testConcurrentUpdates(t *testing.T, w *wtx) {
	var mu sync.Mutex
	seen := map[int64]bool{}
	errs := parallel(16, func(i int) error {
		account := w.hash("c" + itoa(i%4))
		return w.update(func(ctx context.Context, tx tally.WriteTx) error {
			if err := tx.EnsureAccounts(ctx, []string{account}, t0); err != nil {
				return err
			}
			if _, err := tx.LockAccounts(ctx, []string{account}); err != nil {
				return err
			}
			seqs, err := tx.NextSeqs(ctx, 3)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			for _, s := range seqs {
				if seen[s] {
					return fmt.Errorf("seq %d reserved twice", s)
				}
				seen[s] = true
			}
			return nil
		})
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 48 {
		t.Fatalf("%d seqs reserved, want 48", len(seen))
	}
	for i := range 4 {
		w.account(w.hash("c" + itoa(i)))
	}
}
