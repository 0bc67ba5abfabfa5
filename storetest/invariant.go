package storetest

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// testInvariant breaks the ledger's decisions for one account, as a bug would, and checks what the
// database's balance constraint then makes of the writes: the culprit's write fails as an internal
// error naming the invariant (not a refusal the caller could fix, not a transient fault), nothing of it
// is written or remembered, and the writes that shared its batch still apply.
func testInvariant(t *testing.T, h Harness) {
	e := newEnv(t, h)
	victim := e.customer("victim")
	broken := &brokenStore{Store: e.store, victim: victim}
	// One worker, so that concurrent writes share batches and the ledger must split the failing one.
	l := ledger.New(broken, ledger.Options{Key: e.key, Workers: 1})
	defer l.Close()
	others := []string{e.customer("a"), e.customer("b"), e.customer("c")}

	for round := 0; round < 20 && broken.shared.Load() == 0; round++ {
		accounts := append([]string{victim}, others...)
		errs := parallel(len(accounts)*3, func(i int) error {
			_, err := l.Accrue(e.ctx, ledger.Request{Account: accounts[i%len(accounts)], Key: "r" + itoa(round) + "-" + itoa(i), Amount: 10})
			return err
		})
		for i, err := range errs {
			if accounts[i%len(accounts)] != victim {
				if err != nil {
					t.Fatalf("write beside the culprit: %v", err)
				}
				continue
			}
			wantCode(t, err, tally.EINTERNAL)
			if want := "ledger invariant violated: " + tally.NegativeBalance; tally.ErrorMessage(err) != want {
				t.Fatalf("message %q, want %q", tally.ErrorMessage(err), want)
			}
			if _, err := e.store.Outcome(e.ctx, ledger.DefaultChannel, "r"+itoa(round)+"-"+itoa(i)); tally.ErrorCode(err) != tally.ENOTFOUND {
				t.Fatalf("outcome of the failed write: %v, want none remembered", err)
			}
		}
	}
	if broken.shared.Load() == 0 {
		t.Log("the culprit never shared a batch: the batch split went unexercised")
	}
	if _, err := e.store.Account(e.ctx, victim); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("culprit's account: %v, want none written", err)
	}
	for _, c := range others {
		if got := e.balance(c); got%30 != 0 || got == 0 {
			t.Fatalf("balance %d of a bystander, want a multiple of 30", got)
		}
	}
	e.mustVerify()
}

// brokenStore stands for a ledger whose decisions are wrong for one account: it writes that account's
// balance as -1, whatever the ledger decided. Everything else reaches the real store.
type brokenStore struct {
	tally.Store
	victim string
	shared atomic.Int64 // batches in which the victim was written beside another account
}

func (s *brokenStore) Update(ctx context.Context, fn func(ctx context.Context, tx tally.WriteTx) error) error {
	return s.Store.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		return fn(ctx, &brokenTx{WriteTx: tx, s: s})
	})
}

type brokenTx struct {
	tally.WriteTx
	s *brokenStore
}

func (tx *brokenTx) UpdateAccounts(ctx context.Context, accounts []tally.Account) error {
	out := make([]tally.Account, len(accounts))
	copy(out, accounts)
	for i := range out {
		if out[i].ID == tx.s.victim {
			out[i].Balance = -1
			if len(out) > 1 {
				tx.s.shared.Add(1)
			}
		}
	}
	return tx.WriteTx.UpdateAccounts(ctx, out)
}
