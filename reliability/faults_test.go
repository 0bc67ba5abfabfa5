package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-ledger/tally/postgres/pgcluster"
	"github.com/tally-ledger/tally/postgres/pgtest"
)

// figure logs one line of RELIABILITY.md's table, so a rerun shows the figures it reproduces.
func figure(t *testing.T, c *client, extra string) {
	t.Helper()
	n := c.count()
	t.Logf("FIGURE %s: operations=%d applied=%d queued=%d refused=%d retries=%d unavailable_answers=%d lost=0 duplicated=0 %s",
		t.Name(), len(c.ops), n[applied], n[queued], n[refused], c.retried.Load(), c.unavailable.Load(), extra)
}

// drained waits until every queued accrual is in the ledger (the spool replayed it).
func drained(t *testing.T, ctx context.Context, c *client, dbURL string) {
	t.Helper()
	ok := waitFor(ctx, func() bool {
		keys, _ := ledgerRows(t, dbURL, channel)
		c.mu.Lock()
		defer c.mu.Unlock()
		for k, r := range c.results {
			if r == queued && keys[k] == 0 {
				return false
			}
		}
		return true
	})
	if !ok {
		t.Fatal("queued accruals were not all replayed into the ledger in time")
	}
}

// checkLedger compares the client's answers with the ledger at dbURL, checks no balance is negative,
// and runs tally verify there.
func checkLedger(t *testing.T, ctx context.Context, d *deployment, c *client, s *server, token, dbURL string) {
	t.Helper()
	drained(t, ctx, c, dbURL)
	keys, balances := ledgerRows(t, dbURL, channel)
	c.check(keys, func(cu string) int64 { return freshBalance(t, ctx, s, token, cu) })
	for h, b := range balances {
		if b < 0 {
			t.Errorf("customer %s has a negative balance %d", h, b)
		}
	}
	d.verify(dbURL)
}

// TestFailover runs load through a multi-host --db, SIGKILLs the PostgreSQL primary and promotes its
// synchronous standby: Tally reconnects by itself, nothing acknowledged is lost or applied twice, and
// tally verify passes on the new primary.
func TestFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pg := pgcluster.New(t, pgcluster.Options{Standby: true})
	d := newDeployment(t, pg.URL())
	s := d.startServer("tally", "--write-deadline", "3s")
	token := d.token(ctx, s)
	c := newClient(t, token, func() []*server { return []*server{s} })

	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		c.run(lctx, 6, mixed("failover", 8))
		close(loadDone)
	}()
	if !waitFor(ctx, func() bool { return c.count()[applied] >= 50 }) {
		t.Fatal("no load before the kill")
	}
	if err := pg.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	sleep(ctx, time.Second)
	if err := pg.Standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	promoted := time.Now()
	atPromotion := c.count()[applied]
	if !waitFor(ctx, func() bool { return c.count()[applied] > atPromotion+20 && s.ready() }) {
		t.Fatal("Tally did not write to the new primary")
	}
	recovery := time.Since(promoted)
	if st := metric(ctx, s, "tally_circuit_state"); st != 0 {
		t.Errorf("circuit state %v after the failover, want 0 (closed)", st)
	}
	sleep(ctx, 2*time.Second)
	stopLoad()
	<-loadDone
	c.finish(ctx)
	checkLedger(t, ctx, d, c, s, token, pg.Standby.URL())
	figure(t, c, fmt.Sprintf("kills=1 failovers=1 writes_again_after=%s", recovery.Round(100*time.Millisecond)))
}

// TestPostgresKilledAndRestarted SIGKILLs the only PostgreSQL mid-load and starts it again: while it
// is down the circuit opens, lookups answer the last-known balance marked stale, redemptions answer
// 503 with Retry-After and accruals 202 queued; after the restart the spool drains, every
// acknowledged accrual is in the ledger once, and tally verify passes.
func TestPostgresKilledAndRestarted(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	pg := pgcluster.New(t, pgcluster.Options{})
	d := newDeployment(t, pg.Primary.URL())
	s := d.startServer("tally", "--write-deadline", "2s", "--lookup-deadline", "500ms")
	token := d.token(ctx, s)
	c := newClient(t, token, func() []*server { return []*server{s} })

	// A customer whose balance the server has seen, for the stale lookup.
	known := op{Key: "known", Customer: "known-customer", Kind: "accrual", Amount: 500}
	c.send(ctx, known)
	if st, a, err := lookup(ctx, s.base, token, known.Customer); err != nil || st != 200 || a.Balance != 500 || a.Stale {
		t.Fatalf("lookup before the kill: %d %+v %v", st, a, err)
	}

	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		c.run(lctx, 6, mixed("pgkill", 8))
		close(loadDone)
	}()
	if !waitFor(ctx, func() bool { return c.count()[applied] >= 50 }) {
		t.Fatal("no load before the kill")
	}
	if err := pg.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	if !waitFor(ctx, func() bool { return !s.ready() }) {
		t.Fatal("readiness still reports the store up")
	}
	// The circuit opens: the load's own failures trip it.
	if !waitFor(ctx, func() bool { return metric(ctx, s, "tally_circuit_state") == 2 }) {
		t.Fatal("the circuit did not open")
	}
	st, a, err := lookup(ctx, s.base, token, known.Customer)
	if err != nil || st != 200 || !a.Stale || a.Balance != 500 {
		t.Errorf("lookup while PostgreSQL is down: %d %+v %v, want the last-known 500 marked stale", st, a, err)
	}
	status, body, retryAfter, err := postJSONRetryAfter(ctx, s.base, "/v1/ledger/transaction/process", token,
		op{Key: "outage-redemption", Customer: known.Customer, Kind: "redemption", Amount: 1}.body())
	if err != nil || status != 503 || retryAfter == "" {
		t.Errorf("redemption while PostgreSQL is down: %d (Retry-After %q) %s %v, want 503 with Retry-After", status, retryAfter, body, err)
	}
	outage := op{Key: "outage-accrual", Customer: known.Customer, Kind: "accrual", Amount: 5}
	status, body, err = postJSON(ctx, s.base, "/v1/ledger/transaction/process", token, outage.body())
	var q struct{ Status string }
	if err != nil || status != 202 || json.Unmarshal(body, &q) != nil || q.Status != "queued" {
		t.Errorf("accrual while PostgreSQL is down: %d %s %v, want 202 queued", status, body, err)
	}
	c.send(ctx, outage) // the same key again: a replay of the queued accrual, never a second one
	sleep(ctx, 2*time.Second)
	down := time.Since(killed)
	if err := pg.Primary.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !waitFor(ctx, func() bool { return s.ready() }) {
		t.Fatal("Tally did not see PostgreSQL back")
	}
	if !waitFor(ctx, func() bool { return metric(ctx, s, "tally_circuit_state") == 0 }) {
		t.Error("the circuit did not close after the restart")
	}
	sleep(ctx, 2*time.Second)
	stopLoad()
	<-loadDone
	c.finish(ctx)
	if c.count()[queued] == 0 {
		t.Error("no accrual was queued while PostgreSQL was down")
	}
	checkLedger(t, ctx, d, c, s, token, pg.Primary.URL())
	figure(t, c, fmt.Sprintf("kills=1 down_for=%s", down.Round(100*time.Millisecond)))
}

// TestServeKilledMidLoad SIGKILLs `tally serve` twice mid-load while clients retry with the same keys:
// every acknowledged operation is in the ledger exactly once.
func TestServeKilledMidLoad(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dbURL := sharedPostgres(t)
	d := newDeployment(t, dbURL)
	s := d.startServer("tally")
	token := d.token(ctx, s)
	c := newClient(t, token, func() []*server { return []*server{s} })

	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		c.run(lctx, 8, mixed("servekill", 8))
		close(loadDone)
	}()
	kills := 0
	for range 2 {
		at := c.count()[applied]
		if !waitFor(ctx, func() bool { return c.count()[applied] >= at+50 }) {
			t.Fatal("no load before the kill")
		}
		s.kill()
		kills++
		sleep(ctx, 300*time.Millisecond)
		s.restart()
	}
	sleep(ctx, time.Second)
	stopLoad()
	<-loadDone
	c.finish(ctx)
	checkLedger(t, ctx, d, c, s, token, dbURL)
	figure(t, c, fmt.Sprintf("kills=%d", kills))
}

// TestReplicaKilledMidRedemptionStorm runs two replicas on one PostgreSQL and a storm of redemptions
// of a reward with little stock by customers who can afford one each, and SIGKILLs one replica in the
// middle: no unit is sold twice, no balance goes negative, tally verify passes.
func TestReplicaKilledMidRedemptionStorm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const (
		customers = 60
		stock     = 40
		cost      = 100
	)
	dbURL := sharedPostgres(t)
	d := newDeployment(t, dbURL)
	d.mustCLI("rewards", "create", "--db", dbURL, "--id", "gift", "--name", "Gift", "--cost", fmt.Sprint(cost),
		"--inventory", fmt.Sprint(stock), "--method", "manual")
	a := d.startServer("a")
	b := d.startServer("b")
	token := d.token(ctx, a)
	var aDead atomic.Bool
	c := newClient(t, token, func() []*server {
		if aDead.Load() {
			return []*server{b}
		}
		return []*server{a, b}
	})
	for i := range customers {
		c.send(ctx, op{Key: fmt.Sprintf("seed-%d", i), Customer: fmt.Sprintf("storm-%d", i), Kind: "accrual", Amount: cost + cost/2})
	}

	// Every customer asks three times (three keys): at most one of each can be paid for.
	var next atomic.Int64
	storm := func(w, i int) op {
		n := int(next.Add(1)) - 1
		return op{Key: fmt.Sprintf("redeem-%d", n), Customer: fmt.Sprintf("storm-%d", rand.IntN(customers)), Kind: "redemption", RewardID: "gift"}
	}
	lctx, stopLoad := context.WithCancel(ctx)
	loadDone := make(chan struct{})
	go func() {
		c.run(lctx, 12, func(w, i int) op {
			if next.Load() >= 3*customers {
				stopLoad()
			}
			return storm(w, i)
		})
		close(loadDone)
	}()
	if !waitFor(ctx, func() bool { return countKind(c, "redemption", applied) >= 10 }) {
		t.Fatal("no redemption before the kill")
	}
	a.kill()
	aDead.Store(true)
	<-loadDone
	c.finish(ctx)

	sold := countKind(c, "redemption", applied)
	if sold > stock {
		t.Fatalf("%d units sold of a stock of %d", sold, stock)
	}
	left := rewardStock(t, ctx, b, token)
	if left < 0 || sold+left != stock {
		t.Fatalf("%d units sold and %d left of a stock of %d", sold, left, stock)
	}
	// The ledger charged cost for each unit: balances follow from the answers with the cost as amount.
	c.mu.Lock()
	for i, o := range c.ops {
		if o.Kind == "redemption" {
			c.ops[i].Amount = cost
		}
	}
	c.mu.Unlock()
	checkLedger(t, ctx, d, c, b, token, dbURL)
	figure(t, c, fmt.Sprintf("kills=1 sold=%d stock=%d oversold=0 negative_balances=0", sold, stock))
}

// countKind counts the operations of a kind with a final answer.
func countKind(c *client, kind, result string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, o := range c.ops {
		if o.Kind == kind && c.results[o.Key] == result {
			n++
		}
	}
	return n
}

// rewardStock reads a reward's units left through the catalog API.
func rewardStock(t *testing.T, ctx context.Context, s *server, token string) int {
	t.Helper()
	status, body, err := get(ctx, s.base+"/v1/catalog/rewards/gift", token)
	var r struct {
		Inventory *int `json:"inventory"`
	}
	if err != nil || status != 200 || json.Unmarshal(body, &r) != nil || r.Inventory == nil {
		t.Fatalf("reward: %d %s %v", status, body, err)
	}
	return *r.Inventory
}

// sharedPostgres is a fresh schema on the test database (TALLY_TEST_DATABASE_URL), with a small pool.
func sharedPostgres(t *testing.T) string {
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "6")
	u.RawQuery = q.Encode()
	return u.String()
}
