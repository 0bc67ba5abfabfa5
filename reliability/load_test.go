package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Final answers of one operation.
const (
	pending  = ""
	applied  = "applied"  // 201, or 200 replaying an applied one
	queued   = "queued"   // 202: an accrual kept in the spool, to be applied once
	refused  = "refused"  // 422, 409 (or 404, no account yet): a redemption the balance or the stock did not allow
	rejected = "rejected" // anything else final: the test fails on it
)

// op is one write a client makes, under one idempotency key it keeps through every retry.
type op struct {
	Key      string
	Customer string
	Kind     string // accrual or redemption
	Amount   int64
	RewardID string
}

func (o op) body() map[string]any {
	b := map[string]any{"idempotency_key": o.Key, "channel": channel, "customer_hash": o.Customer, "kind": o.Kind, "amount": o.Amount, "reason": "reliability"}
	if o.RewardID != "" {
		b["reward_id"] = o.RewardID
	}
	return b
}

// channel is the channel of every write of these tests.
const channel = "reliability"

// client drives writes at a set of servers the way Genesys and a load balancer do: each operation is
// sent until it has a final answer, with the same idempotency key, to the next server on every retry.
type client struct {
	t       *testing.T
	token   string
	targets func() []*server

	mu      sync.Mutex
	ops     []op
	results map[string]string
	bodies  map[string]string // of rejected answers

	sent, retried, unavailable, queuedN atomic.Int64
}

func newClient(t *testing.T, token string, targets func() []*server) *client {
	return &client{t: t, token: token, targets: targets, results: map[string]string{}, bodies: map[string]string{}}
}

// send sends o until it has a final answer or ctx ends (it then stays pending).
func (c *client) send(ctx context.Context, o op) {
	c.mu.Lock()
	if _, seen := c.results[o.Key]; !seen {
		c.ops = append(c.ops, o)
		c.results[o.Key] = pending
	}
	c.mu.Unlock()
	for attempt := 0; ctx.Err() == nil; attempt++ {
		targets := c.targets()
		s := targets[(attempt+int(c.sent.Add(1)))%len(targets)]
		if attempt > 0 {
			c.retried.Add(1)
		}
		status, body, err := postJSON(ctx, s.base, "/v1/ledger/transaction/process", c.token, o.body())
		var answer struct {
			Status string `json:"status"`
			Code   string `json:"code"`
		}
		_ = json.Unmarshal(body, &answer)
		var result string
		switch {
		case err != nil, status == 503, status == 429, status == 502:
			// Connection refused or reset (the server died), or the server said to retry.
			c.unavailable.Add(1)
			sleep(ctx, time.Duration(50+rand.IntN(100))*time.Millisecond)
			continue
		case (status == 201 || status == 200) && answer.Status == "applied":
			result = applied
		case status == 202 && answer.Status == "queued":
			result = queued
			c.queuedN.Add(1)
		case status == 422 && answer.Code == "insufficient_points", status == 409 && answer.Code == "out_of_stock",
			status == 404 && answer.Code == "not_found" && o.Kind == "redemption": // no account yet: nothing to redeem
			result = refused
		default:
			result = rejected
			c.mu.Lock()
			c.bodies[o.Key] = fmt.Sprintf("%d %s", status, body)
			c.mu.Unlock()
		}
		c.mu.Lock()
		c.results[o.Key] = result
		c.mu.Unlock()
		return
	}
}

// run has workers send operations that next makes until ctx ends.
func (c *client) run(ctx context.Context, workers int, next func(worker, i int) op) {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				c.send(ctx, next(w, i))
			}
		})
	}
	wg.Wait()
}

// finish sends every pending operation again until each has a final answer: what a client that was
// cut off mid-request does once the service is back.
func (c *client) finish(ctx context.Context) {
	c.mu.Lock()
	var left []op
	for _, o := range c.ops {
		if c.results[o.Key] == pending {
			left = append(left, o)
		}
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, o := range left {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.send(ctx, o)
		})
	}
	wg.Wait()
}

// count returns how many operations ended with each answer.
func (c *client) count() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := map[string]int{}
	for _, r := range c.results {
		n[r]++
	}
	return n
}

// check compares what the client was told with the ledger: every operation has a final answer and
// none was rejected; every acknowledged write (applied or queued) is in the ledger exactly once; no
// refused one and nothing unknown is there; and every customer's balance is what the acknowledged
// writes make it. keys are the ledger's idempotency keys of the channel with their counts;
// balanceOf returns a customer's fresh balance.
func (c *client) check(keys map[string]int, balanceOf func(customer string) int64) {
	t := c.t
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	want := map[string]int64{}
	for _, o := range c.ops {
		r := c.results[o.Key]
		switch r {
		case pending:
			t.Errorf("%s never had a final answer", o.Key)
		case rejected:
			t.Errorf("%s was rejected: %s", o.Key, c.bodies[o.Key])
		case applied, queued:
			if keys[o.Key] != 1 {
				t.Errorf("%s was acknowledged (%s) and is in the ledger %d times", o.Key, r, keys[o.Key])
			}
			if o.Kind == "accrual" {
				want[o.Customer] += o.Amount
			} else {
				want[o.Customer] -= o.Amount
			}
		case refused:
			if keys[o.Key] != 0 {
				t.Errorf("%s was refused and is in the ledger %d times", o.Key, keys[o.Key])
			}
		}
		if _, ok := want[o.Customer]; !ok {
			want[o.Customer] = 0
		}
	}
	for k := range keys {
		if _, ok := c.results[k]; !ok {
			t.Errorf("the ledger holds %s, which no client sent", k)
		}
	}
	customers := make([]string, 0, len(want))
	for cu := range want {
		customers = append(customers, cu)
	}
	sort.Strings(customers)
	for _, cu := range customers {
		if got := balanceOf(cu); got != want[cu] {
			t.Errorf("customer %s: balance %d, the acknowledged writes make %d", cu, got, want[cu])
		}
	}
}

// freshBalance looks a customer up until the answer is not stale.
func freshBalance(t *testing.T, ctx context.Context, s *server, token, customer string) int64 {
	t.Helper()
	for {
		status, a, err := lookup(ctx, s.base, token, customer)
		if err == nil && status == 200 && !a.Stale {
			return a.Balance
		}
		if ctx.Err() != nil {
			t.Fatalf("no fresh balance of %s: %d %+v %v", customer, status, a, err)
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

// mixed is a workload of accruals and redemptions over a few customers, each key unique.
func mixed(prefix string, customers int) func(worker, i int) op {
	return func(w, i int) op {
		o := op{Key: fmt.Sprintf("%s-%d-%d", prefix, w, i), Customer: fmt.Sprintf("%s-customer-%d", prefix, rand.IntN(customers)), Kind: "accrual", Amount: 10}
		if rand.IntN(3) == 0 {
			o.Kind, o.Amount = "redemption", 7
		}
		return o
	}
}

// waitFor polls cond until it holds or ctx ends.
func waitFor(ctx context.Context, cond func() bool) bool {
	for !cond() {
		if ctx.Err() != nil {
			return false
		}
		sleep(ctx, 100*time.Millisecond)
	}
	return true
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// during runs load for d with the given workers, calling fault once the load has run for d/3.
func during(ctx context.Context, c *client, workers int, d time.Duration, next func(w, i int) op, fault func()) {
	lctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	done := make(chan struct{})
	go func() {
		c.run(lctx, workers, next)
		close(done)
	}()
	sleep(lctx, d/3)
	fault()
	<-done
}
