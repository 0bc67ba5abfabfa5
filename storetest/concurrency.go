package storetest

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

func itoa(i int) string { return strconv.Itoa(i) }

// parallel runs fn n times at once, releasing all goroutines together, and returns their errors.
func parallel(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := 0; i < n; i++ {
		done.Add(1)
		go func(i int) {
			defer done.Done()
			start.Wait()
			errs[i] = fn(i)
		}(i)
	}
	start.Done()
	done.Wait()
	return errs
}

func testConcurrency(t *testing.T, h Harness) {
	t.Run("competing redemptions", func(t *testing.T) {
		e := newEnv(t, h)
		c := e.customer("hot")
		e.mustAccrue(c, "seed", 1000)
		errs := parallel(50, func(i int) error {
			_, err := e.ledger.Redeem(e.ctx, ledger.Request{Account: c, Key: "redeem-" + itoa(i), Amount: 600})
			return err
		})
		ok := 0
		for _, err := range errs {
			switch tally.ErrorCode(err) {
			case "":
				ok++
			case tally.EINSUFFICIENT:
			default:
				t.Fatalf("redemption: %v", err)
			}
		}
		if ok != 1 {
			t.Fatalf("%d redemptions of 60%% succeeded, want exactly 1", ok)
		}
		if got := e.balance(c); got != 400 {
			t.Fatalf("balance %d, want 400", got)
		}
		e.mustVerify()
	})

	t.Run("concurrent accruals all count", func(t *testing.T) {
		e := newEnv(t, h)
		c := e.customer("many-credits")
		errs := parallel(50, func(i int) error {
			_, err := e.ledger.Accrue(e.ctx, ledger.Request{Account: c, Key: "acc-" + itoa(i), Amount: int64(i + 1)})
			return err
		})
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if got := e.balance(c); got != 50*51/2 {
			t.Fatalf("balance %d, want %d", got, 50*51/2)
		}
		a, _ := e.ledger.Balance(e.ctx, c)
		if a.BalanceVersion != 50 {
			t.Fatalf("balance_version %d, want 50", a.BalanceVersion)
		}
		e.mustVerify()
	})

	t.Run("concurrent duplicates apply once", func(t *testing.T) {
		e := newEnv(t, h)
		c := e.customer("dupes")
		receipts := make([]ledger.Receipt, 50)
		errs := parallel(50, func(i int) error {
			rc, err := e.ledger.Accrue(e.ctx, ledger.Request{Account: c, Key: "same-key", Amount: 25, Reason: "chat"})
			receipts[i] = rc
			return err
		})
		fresh := 0
		for i, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
			if !receipts[i].Replayed {
				fresh++
			}
			if receipts[i].Transaction.Seq != receipts[0].Transaction.Seq || receipts[i].Balance != 25 {
				t.Fatalf("duplicate %d got %+v, first got %+v", i, receipts[i], receipts[0])
			}
		}
		if fresh != 1 {
			t.Fatalf("%d callers saw a fresh write, want 1", fresh)
		}
		if got := e.balance(c); got != 25 {
			t.Fatalf("balance %d, want 25", got)
		}
		e.mustVerify()
	})

	t.Run("two ledgers writing to the same accounts", func(t *testing.T) { testReplicasShareAccounts(t, h) })

	t.Run("two ledgers on one store", func(t *testing.T) {
		// Two services (as two replicas would have) share a store: their batches interleave.
		e := newEnv(t, h)
		other := ledger.New(e.store, ledger.Options{Key: e.key, Workers: h.Workers})
		defer other.Close()
		c := e.customer("replicas")
		e.mustAccrue(c, "seed", 1000)
		errs := parallel(40, func(i int) error {
			l := e.ledger
			if i%2 == 1 {
				l = other
			}
			_, err := l.Redeem(e.ctx, ledger.Request{Account: c, Key: "r-" + itoa(i/4), Amount: 100})
			return err
		})
		for _, err := range errs {
			if err != nil && tally.ErrorCode(err) != tally.EINSUFFICIENT {
				t.Fatal(err)
			}
		}
		if got := e.balance(c); got != 0 {
			t.Fatalf("balance %d after 10 distinct keys of 100 each, want 0", got)
		}
		e.mustVerify()
	})
}

// testReplicasShareAccounts is two services (two replicas) on one store writing to the same few accounts
// at once, with distinct keys: accruals, redemptions and reversals mixed. Every account's receipts must
// form one unbroken sequence of versions, each balance the previous one plus the write's delta and never
// below zero, ending at the stored balance; and the audit must pass. The account lock of the store is
// what makes this hold: without it two batches read the same balance and the later one overwrites the
// earlier one's write.
func testReplicasShareAccounts(t *testing.T, h Harness) {
	e := newEnv(t, h)
	workers := max(h.Workers, 2)
	replicas := []*ledger.Service{ledger.New(e.store, ledger.Options{Key: e.key, Workers: workers}), ledger.New(e.store, ledger.Options{Key: e.key, Workers: workers})}
	defer replicas[0].Close()
	defer replicas[1].Close()
	accounts := []string{e.customer("shared-1"), e.customer("shared-2"), e.customer("shared-3")}

	var mu sync.Mutex
	receipts := map[string][]ledger.Receipt{} // by account, every write applied
	var targets []int64                       // applied accruals and redemptions, to reverse
	record := func(rc ledger.Receipt) {
		mu.Lock()
		defer mu.Unlock()
		receipts[rc.Transaction.AccountID] = append(receipts[rc.Transaction.AccountID], rc)
		if rc.Transaction.Kind != tally.KindReversal {
			targets = append(targets, rc.Transaction.Seq)
		}
	}
	for i, c := range accounts {
		record(e.mustAccrue(c, "seed-"+itoa(i), 500))
	}

	const writers, writes = 16, 40
	errs := parallel(writers, func(g int) error {
		l := replicas[g%2]
		for i := range writes {
			key := "w" + itoa(g) + "-" + itoa(i)
			c := accounts[(g+i)%len(accounts)]
			var r ledger.Request
			switch i % 4 {
			case 0, 1:
				r = ledger.Request{Kind: tally.KindAccrual, Account: c, Key: key, Amount: int64(1 + (g*7+i*13)%90)}
			case 2:
				r = ledger.Request{Kind: tally.KindRedemption, Account: c, Key: key, Amount: int64(1 + (g*11+i*17)%180)}
			case 3:
				mu.Lock()
				target := targets[(g*31+i*7)%len(targets)]
				mu.Unlock()
				r = ledger.Request{Kind: tally.KindReversal, Key: key, ReversesSeq: target, Reason: "replicas"}
			}
			rc, err := l.Write(e.ctx, r)
			switch tally.ErrorCode(err) {
			case "":
				record(rc)
			case tally.EINSUFFICIENT, tally.EALREADY:
			default:
				return fmt.Errorf("%s %s: %w", r.Kind, key, err)
			}
		}
		return nil
	})
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}

	for _, c := range accounts {
		rcs := receipts[c]
		slices.SortFunc(rcs, func(a, b ledger.Receipt) int { return cmp.Compare(a.BalanceVersion, b.BalanceVersion) })
		var balance int64
		for i, rc := range rcs {
			if rc.BalanceVersion != int64(i+1) {
				t.Fatalf("account %s: receipt versions %d and %d: two writes saw the same balance", c[:8], rcs[i-1].BalanceVersion, rc.BalanceVersion)
			}
			balance += customerDelta(rc.Transaction, c)
			if rc.Balance != balance || rc.Balance < 0 {
				t.Fatalf("account %s version %d: receipt balance %d, want %d (the sum of the deltas so far)", c[:8], rc.BalanceVersion, rc.Balance, balance)
			}
		}
		a, err := e.store.Account(e.ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if a.Balance != balance || a.BalanceVersion != int64(len(rcs)) {
			t.Fatalf("account %s: balance %d version %d, want %d and %d from %d applied writes", c[:8], a.Balance, a.BalanceVersion, balance, len(rcs), len(rcs))
		}
	}
	e.mustVerify()
}

// customerDelta is what t moved on account.
func customerDelta(t tally.Transaction, account string) int64 {
	var d int64
	for _, p := range t.Postings {
		if p.AccountID == account {
			d += p.Amount
		}
	}
	return d
}
