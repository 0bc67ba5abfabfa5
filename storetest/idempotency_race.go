package storetest

import (
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// testSameKeyRace sends many concurrent writes under one key, half of them one request and half another.
// Whichever is applied first, every copy of it must get that write's receipt replayed and every copy of
// the other request must be refused as a reused key: a caller retrying the very write that succeeded
// must never be told it conflicts.
func testSameKeyRace(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name     string
		workers  int
		replicas int // ledgers sharing the store, as replicas do
	}{
		{"one worker", 1, 1},
		{"four workers", 4, 1},
		{"two replicas", 2, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, h)
			ledgers := []*ledger.Service{ledger.New(e.store, ledger.Options{Key: e.key, Workers: tc.workers})}
			for len(ledgers) < tc.replicas {
				ledgers = append(ledgers, ledger.New(e.store, ledger.Options{Key: e.key, Workers: tc.workers}))
			}
			defer func() {
				for _, l := range ledgers {
					l.Close()
				}
			}()
			c := e.customer("same-key-race")
			const n = 100
			amount := func(i int) int64 { return 10 + int64(i%2) }
			receipts := make([]ledger.Receipt, n)
			errs := parallel(n, func(i int) error {
				rc, err := ledgers[i%len(ledgers)].Accrue(e.ctx, ledger.Request{Account: c, Key: "raced", Amount: amount(i), Reason: "race"})
				receipts[i] = rc
				return err
			})
			applied := -1
			for i, err := range errs {
				if err == nil && !receipts[i].Replayed {
					if applied >= 0 {
						t.Fatalf("requests %d and %d were both applied", applied, i)
					}
					applied = i
				}
			}
			if applied < 0 {
				t.Fatalf("no request was applied; first error %v", errs[0])
			}
			want := receipts[applied]
			refused := 0
			for i, err := range errs {
				switch {
				case amount(i) == want.Transaction.Amount:
					if err != nil {
						t.Errorf("request %d (amount %d, the applied request) failed: %v", i, amount(i), err)
					} else if receipts[i].Transaction.Seq != want.Transaction.Seq || receipts[i].Balance != want.Balance {
						t.Errorf("request %d got %+v, the applied one %+v", i, receipts[i], want)
					}
				default:
					if tally.ErrorCode(err) != tally.EIDEMPOTENCY {
						t.Errorf("request %d (amount %d, another request): %v, want %s", i, amount(i), err, tally.EIDEMPOTENCY)
					}
					refused++
				}
			}
			if refused != n/2 {
				t.Errorf("%d requests refused, want %d", refused, n/2)
			}
			if got := e.balance(c); got != want.Transaction.Amount {
				t.Fatalf("balance %d, want %d credited once", got, want.Transaction.Amount)
			}
			e.mustVerify()
		})
	}
}
