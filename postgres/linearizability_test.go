package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/linearizability"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/postgres/pgtest"
)

// TestLinearizabilityNeedsTheAccountLock removes the account lock (LockAccounts reads without FOR
// UPDATE) from two replicas sharing one database and records the linearizability workload through
// both: the checker must reject the history. This is the proof that linearizability's tests can fail:
// with the lock, the same workload passes (TestLinearizableTwoReplicas). One replica alone would not
// show it, since its ledger queues one account's writes on one worker.
//
// Whether two replicas' transactions on one account overlap depends on scheduling, so rounds repeat,
// a bounded number of times, until one is rejected.
func TestLinearizabilityNeedsTheAccountLock(t *testing.T) {
	t.Parallel()
	const rounds = 5
	for round := range rounds {
		var verdict error
		t.Run(fmt.Sprintf("round-%d", round), func(t *testing.T) {
			dbs := pgtest.Replicas(t, 2)
			var targets []linearizability.Target
			for _, db := range dbs {
				postgres.RemoveAccountLock(db)
				s := apitest.StartOn(t, db, db, apitest.Config{})
				targets = append(targets, linearizability.Target{URL: s.URL, Token: s.Token(tally.ScopeLedgerRead, tally.ScopeLedgerWrite)})
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			h, err := linearizability.Record(ctx, linearizability.Workload{Targets: targets,
				Customers: []string{"hot-customer-1", "hot-customer-2", "hot-customer-3"}, Clients: 12, OpsPerClient: 30,
				Seed: 20261201, KeyPrefix: "unlocked"})
			if err != nil {
				t.Fatalf("record: %v", err)
			}
			t.Log(h.Describe())
			verdict = linearizability.Verify(h, time.Minute, "")
		})
		if errors.Is(verdict, linearizability.ErrNotLinearizable) {
			t.Logf("round %d: without the account lock the checker rejected the history", round)
			return
		}
		if verdict != nil {
			t.Fatalf("round %d: %v", round, verdict)
		}
	}
	t.Fatalf("without the account lock, %d histories through two replicas were all linearizable: the checks cannot tell", rounds)
}
