package reliability

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally/postgres/pgcluster"
)

// TestReadReplicaStaleness runs lookups with --read-db on a streaming standby: they read the standby
// while it keeps up, read the primary once the standby lags beyond --read-db-max-staleness (its replay
// paused), and when the standby has lost its primary they never present its data as current: the
// answer is the last-known balance marked stale.
func TestReadReplicaStaleness(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pg := pgcluster.New(t, pgcluster.Options{Standby: true})
	d := newDeployment(t, pg.Primary.URL())
	s := d.startServer("tally", "--read-db", pg.Standby.URL(), "--read-db-max-staleness", "1s", "--lookup-deadline", "500ms")
	token := d.token(ctx, s)
	c := newClient(t, token, func() []*server { return []*server{s} })
	const customer = "replica-customer"

	c.send(ctx, op{Key: "first", Customer: customer, Kind: "accrual", Amount: 100})
	if !waitFor(ctx, func() bool {
		st, a, err := lookup(ctx, s.base, token, customer)
		return err == nil && st == 200 && a.Balance == 100 && !a.Stale
	}) {
		t.Fatal("the lookup never answered the accrual")
	}
	if n := labelled(ctx, s, `tally_read_replica_lookups_total{source="replica"}`); n < 1 {
		t.Fatalf("no lookup read the standby (%v)", n)
	}

	// The standby still receives WAL (the primary's commits wait for it) but applies none of it.
	if err := pg.Standby.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	c.send(ctx, op{Key: "second", Customer: customer, Kind: "accrual", Amount: 50})
	sleep(ctx, 1500*time.Millisecond) // beyond the staleness allowed
	for i := range 5 {
		st, a, err := lookup(ctx, s.base, token, customer)
		if err != nil || st != 200 || a.Balance != 150 || a.Stale {
			t.Fatalf("lookup %d with the standby 1.5 s behind: %d %+v %v, want 150 from the primary", i, st, a, err)
		}
	}
	if n := labelled(ctx, s, `tally_read_replica_lookups_total{source="primary"}`); n < 5 {
		t.Fatalf("%v lookups read the primary, want at least 5", n)
	}
	if err := pg.Standby.Exec(ctx, `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}

	// The primary dies: the standby, up and readable, no longer knows what it misses.
	if err := pg.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	if !waitFor(ctx, func() bool {
		st, a, err := lookup(ctx, s.base, token, customer)
		if err == nil && st == 200 && !a.Stale && a.Balance != 150 {
			t.Fatalf("lookup without a primary: %+v", a)
		}
		return err == nil && st == 200 && a.Stale && a.Balance == 150
	}) {
		t.Fatal("lookups without a primary never answered the last-known balance marked stale")
	}
	t.Logf("FIGURE %s: lookups through a standby paused 1.5 s behind (staleness 1 s) answered from the primary; orphaned standby answered stale", t.Name())
}

// labelled reads a metric with labels from /metrics, written as name{labels}; -1 when it is absent.
func labelled(ctx context.Context, s *server, series string) float64 {
	status, body, err := get(ctx, s.base+"/metrics", "")
	if err != nil || status != 200 {
		return -1
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}
