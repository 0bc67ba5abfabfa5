package ledger

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/sqlite"
)

// These tests hand one batch to commit directly, so that writes of one key are sure to share a batch
// (the storetest suite races them, and cannot choose how they are batched).

func newBatchService(t *testing.T) *Service {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "tally.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	s := New(db, Options{Key: tally.RandomLedgerKey()})
	t.Cleanup(func() { s.Close(); db.Close() })
	return s
}

// commitTogether commits reqs as one batch and returns their answers in order.
func commitTogether(t *testing.T, s *Service, reqs ...Request) []result {
	t.Helper()
	batch := make([]*op, len(reqs))
	for i, r := range reqs {
		if err := r.normalize(); err != nil {
			t.Fatal(err)
		}
		batch[i] = &op{req: r, reqHash: r.hash(), done: make(chan result, 1)}
	}
	s.commit(batch)
	out := make([]result, len(batch))
	for i, o := range batch {
		select {
		case out[i] = <-o.done:
		default:
			t.Fatalf("request %d was not answered", i)
		}
	}
	return out
}

const batchCustomer = "0000000000000000000000000000000000000000000000000000000000000001"

func accrual(key string, amount int64, version *int64) Request {
	return Request{Kind: tally.KindAccrual, Account: batchCustomer, Key: key, Amount: amount, Reason: "t", ExpectedVersion: version}
}

func wantResult(t *testing.T, i int, r result, code tally.Code) {
	t.Helper()
	if got := tally.ErrorCode(r.err); got != code {
		t.Fatalf("request %d: %v (code %q), want code %q", i, r.err, got, code)
	}
}

func TestBatchFollowersAnsweredByStoredOutcome(t *testing.T) {
	s := newBatchService(t)
	first, err := s.Write(context.Background(), accrual("k", 11, nil))
	if err != nil {
		t.Fatal(err)
	}
	// The batch's first op of the key reuses it for another request; the copy of the stored request
	// behind it is a replay, not a conflict with that first op.
	res := commitTogether(t, s, accrual("k", 10, nil), accrual("k", 11, nil), accrual("k", 10, nil))
	wantResult(t, 0, res[0], tally.EIDEMPOTENCY)
	wantResult(t, 1, res[1], "")
	wantResult(t, 2, res[2], tally.EIDEMPOTENCY)
	if rc := res[1].receipt; !rc.Replayed || rc.Transaction.Seq != first.Transaction.Seq {
		t.Fatalf("replay got %+v, want transaction %d replayed", rc, first.Transaction.Seq)
	}
}

func TestBatchFollowersOfAnUnrememberedRefusal(t *testing.T) {
	s := newBatchService(t)
	if _, err := s.Write(context.Background(), accrual("seed", 5, nil)); err != nil {
		t.Fatal(err)
	}
	stale, current := int64(7), int64(1)
	// The first op of key k is refused for its stale version and that refusal is not remembered: the key
	// stays free. The same request at the same version gets the same refusal; the same request at the
	// current version and a different request are decided on their own, in that order, after it.
	res := commitTogether(t, s,
		accrual("k", 5, &stale),
		accrual("k", 5, &current),
		accrual("k", 6, nil),
		accrual("k", 5, &stale),
		accrual("k", 5, nil),
	)
	wantResult(t, 0, res[0], tally.EVERSION)
	wantResult(t, 1, res[1], "")
	wantResult(t, 2, res[2], tally.EIDEMPOTENCY)
	wantResult(t, 3, res[3], tally.EVERSION)
	wantResult(t, 4, res[4], "")
	if res[1].receipt.Replayed || res[1].receipt.Balance != 10 {
		t.Fatalf("request 1 got %+v, want applied with balance 10", res[1].receipt)
	}
	if !res[4].receipt.Replayed || res[4].receipt.Transaction.Seq != res[1].receipt.Transaction.Seq {
		t.Fatalf("request 4 got %+v, want the replay of request 1", res[4].receipt)
	}
	a, err := s.Balance(context.Background(), batchCustomer)
	if err != nil || a.Balance != 10 {
		t.Fatalf("balance %+v, %v; want 10", a, err)
	}
}
