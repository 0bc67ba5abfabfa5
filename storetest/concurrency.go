package storetest

import (
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
