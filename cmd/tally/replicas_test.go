package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"sync"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/postgres/pgtest"
)

// replicaAnswer is one answer from one replica.
type replicaAnswer struct {
	replica int
	status  int
	body    []byte
	err     error
}

// concurrently sends n requests at once, request i to replica i%2, and returns the answers in order.
func concurrently(replicas []*runningServe, token string, n int, body func(i int) any) []replicaAnswer {
	answers := make([]replicaAnswer, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			r := &answers[i]
			r.replica = i % len(replicas)
			r.status, r.body, r.err = postJSON(replicas[r.replica].base, "/v1/ledger/transaction/process", token, body(i))
		})
	}
	close(start)
	wg.Wait()
	return answers
}

// TestReplicasShareOnePostgres runs two `tally serve` replicas on one PostgreSQL schema, as a deployment
// behind a load balancer does: tokens one replica issues are accepted by the other, concurrent
// redemptions through both never overdraw, and an event delivered to both at once counts once.
func TestReplicasShareOnePostgres(t *testing.T) {
	dbURL := pgtest.URL(t)
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "8") // two replicas and parallel tests share the server's connections
	u.RawQuery = q.Encode()
	dbURL = u.String()

	t.Setenv("TALLY_CUSTOMER_SECRET", "replicas-test-customer-secret-0123456789")
	keyHex := tally.GenerateLedgerKey()
	t.Setenv("TALLY_LEDGER_KEY", keyHex)
	mustCLI(t, "migrate", "--db", dbURL)
	id, secret := createClient(t, dbURL, "ledger:read,ledger:write,admin")

	// Behind one address the replicas share one issuer URL. A starts first and creates the signing key;
	// B finds it in the database. (Replicas starting at the same moment on an empty database each create
	// a key, and auth.Issuer re-reads keys for an unknown kid only 10 s after its last read, so for those
	// first seconds each would refuse the other's tokens: reported to the owner of package auth.)
	flags := []string{"--db", dbURL, "--issuer", "https://tally.replicas.test"}
	a := startServe(t, flags...)
	b := startServe(t, flags...)
	replicas := []*runningServe{a, b}

	tokA, tokB := fetchToken(t, a.base, id, secret), fetchToken(t, b.base, id, secret)
	for _, c := range []struct {
		name   string
		server *runningServe
		token  string
	}{{"A's token on B", b, tokA}, {"B's token on A", a, tokB}} {
		if m := lookup(t, c.server.base, c.token, "nobody-yet"); m["balance"] != float64(0) {
			t.Fatalf("%s: %v", c.name, m)
		}
	}

	// 40 redemptions of 100 points over a 1000-point balance, half through each replica, all at once.
	status, body, err := postJSON(a.base, "/v1/ledger/transaction/process", tokA, accrualRequest("seed", "shared-customer", 1000))
	if err != nil || status != 201 {
		t.Fatalf("seed accrual: %d %s %v", status, body, err)
	}
	redemptions := concurrently(replicas, tokA, 40, func(i int) any {
		return map[string]any{"idempotency_key": fmt.Sprintf("redeem-%d", i), "channel": "test", "customer_hash": "shared-customer",
			"kind": "redemption", "amount": 100, "reason": "reward"}
	})
	applied := map[int]int{}
	refused := 0
	for i, r := range redemptions {
		switch {
		case r.err != nil:
			t.Fatalf("redemption %d: %v", i, r.err)
		case r.status == 201:
			applied[r.replica]++
		case r.status == 422:
			var p struct {
				Code string `json:"code"`
			}
			if json.Unmarshal(r.body, &p) != nil || p.Code != "insufficient_points" {
				t.Fatalf("redemption %d refused with %s", i, r.body)
			}
			refused++
		default:
			t.Fatalf("redemption %d through replica %d: %d %s", i, r.replica, r.status, r.body)
		}
	}
	if applied[0]+applied[1] != 10 || refused != 30 {
		t.Fatalf("%d redemptions applied (A %d, B %d) and %d refused; want 10 and 30", applied[0]+applied[1], applied[0], applied[1], refused)
	}
	for _, r := range replicas {
		if m := lookup(t, r.base, tokB, "shared-customer"); m["balance"] != float64(0) || m["stale"] != false {
			t.Fatalf("balance after the redemptions, through %s: %v", r.base, m)
		}
	}

	// One event delivered 20 times at once, to both replicas: one 201, nineteen 200, one body.
	event := map[string]any{"event_id": "evt-replicas-1", "type": "WebChat", "state": "closed", "user_id": "event-customer", "channel": "webchat"}
	deliveries := concurrently(replicas, tokA, 20, func(int) any { return event })
	created := 0
	for i, r := range deliveries {
		switch {
		case r.err != nil:
			t.Fatalf("delivery %d: %v", i, r.err)
		case r.status == 201:
			created++
		case r.status != 200:
			t.Fatalf("delivery %d through replica %d: %d %s", i, r.replica, r.status, r.body)
		}
		if !bytes.Equal(r.body, deliveries[0].body) {
			t.Fatalf("deliveries answered differently:\n%s\n%s", deliveries[0].body, r.body)
		}
	}
	if created != 1 {
		t.Fatalf("%d deliveries of one event answered 201, want 1", created)
	}
	if m := lookup(t, b.base, tokA, "event-customer"); m["balance"] != float64(10) {
		t.Fatalf("balance after one event delivered 20 times: %v", m)
	}

	ctx := context.Background()
	db, err := postgres.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key, err := tally.ParseLedgerKey(keyHex)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := ledger.Verify(ctx, db.Audit(), ledger.VerifyOptions{Key: key})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if rep.Transactions != 1+10+1 {
		t.Fatalf("the ledger holds %d transactions, want 12 (seed, 10 redemptions, 1 event)", rep.Transactions)
	}
}
