package linearizability_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/linearizability"
	"github.com/tally-ledger/tally/postgres/pgtest"
)

// op builds a history entry.
func op(client int, call, ret int64, in linearizability.Input, out linearizability.Output) porcupine.Operation {
	return porcupine.Operation{ClientId: client, Call: call, Return: ret, Input: in, Output: out}
}

func accrue(c string, n int64) linearizability.Input {
	return linearizability.Input{Customer: c, Kind: linearizability.Accrue, Amount: n}
}

func redeem(c string, n int64) linearizability.Input {
	return linearizability.Input{Customer: c, Kind: linearizability.Redeem, Amount: n}
}

func read(c string) linearizability.Input {
	return linearizability.Input{Customer: c, Kind: linearizability.Read}
}

func applied(balance int64) linearizability.Output {
	return linearizability.Output{Outcome: linearizability.Applied, Balance: balance, BalanceKnown: true}
}

func refused(balance int64) linearizability.Output {
	return linearizability.Output{Outcome: linearizability.Refused, Balance: balance, BalanceKnown: true}
}

var unknown = linearizability.Output{Outcome: linearizability.Unknown}

// never is the return time of an answer that never came.
const never = int64(1 << 40)

// TestModelDecidesKnownHistories holds the checker to histories whose verdict is known by hand: it must
// reject a lost update, an overdraw, a read that goes back in time and a refusal the balance covered,
// and accept concurrent writes in either order and a lost answer either way.
func TestModelDecidesKnownHistories(t *testing.T) {
	cases := []struct {
		name    string
		history []porcupine.Operation
		ok      bool
	}{
		{"sequential", []porcupine.Operation{
			op(0, 0, 1, accrue("a", 10), applied(10)),
			op(0, 2, 3, redeem("a", 4), applied(6)),
			op(0, 4, 5, redeem("a", 7), refused(6)),
			op(0, 6, 7, read("a"), applied(6)),
		}, true},
		{"concurrent accruals in either order", []porcupine.Operation{
			op(0, 0, 10, accrue("a", 5), applied(8)),
			op(1, 1, 9, accrue("a", 3), applied(3)),
			op(2, 11, 12, read("a"), applied(8)),
		}, true},
		{"lost update: two accruals both answer the balance of one", []porcupine.Operation{
			op(0, 0, 10, accrue("a", 5), applied(5)),
			op(1, 1, 9, accrue("a", 5), applied(5)),
		}, false},
		{"lost update seen by a later read", []porcupine.Operation{
			op(0, 0, 10, accrue("a", 5), linearizability.Output{Outcome: linearizability.Applied}),
			op(1, 1, 9, accrue("a", 7), linearizability.Output{Outcome: linearizability.Applied}),
			op(2, 11, 12, read("a"), applied(7)),
		}, false},
		{"overdraw: two redemptions of a balance that covers one", []porcupine.Operation{
			op(0, 0, 1, accrue("a", 10), applied(10)),
			op(1, 2, 10, redeem("a", 8), applied(2)),
			op(2, 3, 9, redeem("a", 8), applied(2)),
		}, false},
		{"stale read after a write returned", []porcupine.Operation{
			op(0, 0, 1, accrue("a", 10), applied(10)),
			op(1, 2, 3, read("a"), applied(0)),
		}, false},
		{"refused although covered", []porcupine.Operation{
			op(0, 0, 1, accrue("a", 10), applied(10)),
			op(1, 2, 3, redeem("a", 5), refused(10)),
		}, false},
		{"customers are apart", []porcupine.Operation{
			op(0, 0, 1, accrue("a", 10), applied(10)),
			op(1, 2, 3, read("b"), applied(0)),
		}, true},
		{"lost answer, applied", []porcupine.Operation{
			op(0, 0, never, accrue("a", 10), unknown),
			op(1, 5, 6, read("a"), applied(10)),
		}, true},
		{"lost answer, not applied", []porcupine.Operation{
			op(0, 0, never, accrue("a", 10), unknown),
			op(1, 5, 6, read("a"), applied(0)),
		}, true},
		{"lost answer cannot explain what is not its amount", []porcupine.Operation{
			op(0, 0, never, accrue("a", 10), unknown),
			op(1, 5, 6, read("a"), applied(7)),
		}, false},
		{"lost redemption never overdraws", []porcupine.Operation{
			op(0, 0, 1, accrue("a", 5), applied(5)),
			op(0, 2, never, redeem("a", 8), unknown),
			op(1, 5, 6, read("a"), applied(-3)),
		}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res, _ := linearizability.Check(c.history, 10*time.Second)
			want := porcupine.Illegal
			if c.ok {
				want = porcupine.Ok
			}
			if res != want {
				t.Fatalf("checker said %s, want %s", res, want)
			}
		})
	}
}

// hotCustomers are few, so that operations on one account overlap.
var hotCustomers = []string{"hot-customer-1", "hot-customer-2", "hot-customer-3"}

// workload is the run every store is held to: 12 clients of 30 operations on three customers.
func workload(targets []linearizability.Target, prefix string) linearizability.Workload {
	return linearizability.Workload{Targets: targets, Customers: hotCustomers, Clients: 12, OpsPerClient: 30,
		Seed: 20261201, KeyPrefix: prefix}
}

// target returns a replica's target with a token of the scopes the workload needs.
func target(s *apitest.Server) linearizability.Target {
	return linearizability.Target{URL: s.URL, Token: s.Token(tally.ScopeLedgerRead, tally.ScopeLedgerWrite)}
}

// recordAndCheck records the workload, checks it and verifies the ledger's chains; it fails the test on
// a rejected or undecided history.
func recordAndCheck(t *testing.T, w linearizability.Workload, stores ...*apitest.Server) linearizability.History {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h, err := linearizability.Record(ctx, w)
	if err != nil {
		t.Fatalf("record: %v", err)
	}
	t.Log(h.Describe())
	if err := linearizability.Verify(h, time.Minute, filepath.Join(t.TempDir(), "history.html")); err != nil {
		t.Fatal(err)
	}
	// The run must have exercised what it checks.
	if h.Count(linearizability.Read, linearizability.Applied) == 0 || h.Count(linearizability.Accrue, linearizability.Applied) == 0 ||
		h.Count(linearizability.Redeem, linearizability.Applied) == 0 {
		t.Fatalf("the run lacks reads, accruals or redemptions: %s", h.Describe())
	}
	if h.Statuses[500] > 0 || h.Unresolved > 0 {
		t.Fatalf("a healthy run lost answers: %s", h.Describe())
	}
	if h.Stale > 0 {
		t.Fatalf("%d lookups answered stale with a healthy store", h.Stale)
	}
	for _, s := range stores {
		if _, err := ledger.Verify(ctx, s.Store.Audit(), ledger.VerifyOptions{Key: apitest.Key}); err != nil {
			t.Fatalf("verify: %v", err)
		}
	}
	return h
}

// TestLinearizable records concurrent histories through one server on each store and checks them.
//
// The read path held to linearizability is the lookup that answers "stale": false: it reads the store.
// The balance cache (memory or Redis) only serves answers marked "stale": true, when the store is down
// or slow; those promise the balance as of their as_of, not now, and are left out of the history (a
// healthy run must have none). The cache's own promise is tested by api's fault tests.
func TestLinearizable(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			s := apitest.Start(t, b, apitest.Config{})
			recordAndCheck(t, workload([]linearizability.Target{target(s)}, "single"), s)
		})
	}
}

// TestLinearizableTwoReplicas records a history through two servers sharing one PostgreSQL database,
// clients spread over both: there the account's row lock, not one process's queue, orders the writes.
func TestLinearizableTwoReplicas(t *testing.T) {
	t.Parallel()
	dbs := pgtest.Replicas(t, 2)
	var servers []*apitest.Server
	var targets []linearizability.Target
	for _, db := range dbs {
		s := apitest.StartOn(t, db, db, apitest.Config{})
		servers = append(servers, s)
		targets = append(targets, target(s))
	}
	recordAndCheck(t, workload(targets, "replicas"), servers[0])
}

// TestVerifyNamesTheResult checks that a rejected history is reported as such.
func TestVerifyNamesTheResult(t *testing.T) {
	h := linearizability.History{Ops: []porcupine.Operation{
		op(0, 0, 10, accrue("a", 5), applied(5)),
		op(1, 1, 9, accrue("a", 5), applied(5)),
	}}
	err := linearizability.Verify(h, 10*time.Second, filepath.Join(t.TempDir(), "history.html"))
	if !errors.Is(err, linearizability.ErrNotLinearizable) {
		t.Fatalf("Verify = %v, want ErrNotLinearizable", err)
	}
}

// slowStore delays every fifth write transaction before it begins, longer than the recorder waits for
// an answer: those writes' callers hang up, and the writes go on without them (a batch does not end
// with its callers' requests), so their answers are lost although they may be applied.
type slowStore struct {
	tally.Store
	writes atomic.Int64
}

func (s *slowStore) Update(ctx context.Context, fn func(context.Context, tally.WriteTx) error) error {
	if s.writes.Add(1)%5 == 0 {
		time.Sleep(300 * time.Millisecond)
	}
	return s.Store.Update(ctx, fn)
}

// TestLinearizableWithLostAnswers records histories in which many answers are lost (the client gives up
// after 150 ms while some writes take 300 ms): each lost write is asked again with its idempotency key,
// and the history, with those operations' intervals running to the retry's answer (or to infinity when
// no retry answered), must still be linearizable.
func TestLinearizableWithLostAnswers(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			s := apitest.Start(t, b, apitest.Config{WrapStore: func(inner tally.Store) tally.Store { return &slowStore{Store: inner} }})
			w := workload([]linearizability.Target{target(s)}, "lost")
			w.Clients, w.OpsPerClient, w.RequestTimeout = 8, 20, 150*time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			h, err := linearizability.Record(ctx, w)
			if err != nil {
				t.Fatalf("record: %v", err)
			}
			t.Log(h.Describe())
			if h.Resolved+h.Unresolved == 0 {
				t.Fatalf("no answer was lost, so the test proves nothing: %s", h.Describe())
			}
			if h.Statuses[500] > 0 {
				t.Fatalf("the server answered 500: %s", h.Describe())
			}
			if err := linearizability.Verify(h, time.Minute, filepath.Join(t.TempDir(), "history.html")); err != nil {
				t.Fatal(err)
			}
		})
	}
}
