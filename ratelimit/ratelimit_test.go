package ratelimit

import (
	"context"
	"crypto/rand"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clock is a settable time for the memory limiter and the buckets.
type clock struct{ t time.Time }

func (c *clock) now() time.Time      { return c.t }
func (c *clock) add(d time.Duration) { c.t = c.t.Add(d) }
func newClock() *clock               { return &clock{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }
func (c *clock) memory(cfg FailureConfig) *Memory {
	m := NewMemory(cfg)
	m.now = c.now
	return m
}

func TestMemoryLocksAfterLimitWithinWindow(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	m := c.memory(FailureConfig{Limit: 3, Window: time.Minute, Lockout: 2 * time.Minute})
	for i := range 2 {
		if d := m.Fail(ctx, "k"); d != 0 {
			t.Fatalf("failure %d locked for %s", i+1, d)
		}
		c.add(10 * time.Second)
	}
	if d := m.Locked(ctx, "k"); d != 0 {
		t.Fatalf("locked for %s after 2 of 3 failures", d)
	}
	if d := m.Fail(ctx, "k"); d != 2*time.Minute {
		t.Fatalf("the third failure started a lockout of %s, want 2m", d)
	}
	if d := m.Locked(ctx, "other"); d != 0 {
		t.Errorf("another key is locked for %s", d)
	}
	c.add(time.Minute)
	if d := m.Locked(ctx, "k"); d != time.Minute {
		t.Errorf("a minute into the lockout: locked for %s, want 1m", d)
	}
	if d := m.Fail(ctx, "k"); d != 0 {
		t.Errorf("a failure while locked reported a new lockout of %s: it is to be logged once", d)
	}
	c.add(time.Minute)
	if d := m.Locked(ctx, "k"); d != 0 {
		t.Errorf("after the lockout: still locked for %s", d)
	}
	// The lockout started afresh: the failures before it do not count again.
	if d := m.Fail(ctx, "k"); d != 0 {
		t.Errorf("the first failure after a lockout locked for %s", d)
	}
}

func TestMemoryWindowSlides(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	m := c.memory(FailureConfig{Limit: 3, Window: time.Minute})
	// Two failures a minute never reach three within a minute.
	for i := range 20 {
		if d := m.Fail(ctx, "k"); d != 0 {
			t.Fatalf("failure %d (two every 61 s) locked for %s", i+1, d)
		}
		c.add(31 * time.Second)
	}
}

func TestMemoryBoundedKeys(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	m := c.memory(FailureConfig{Limit: 1, Window: time.Minute, MaxKeys: 2})
	m.Fail(ctx, "a")
	m.Fail(ctx, "b")
	if d := m.Fail(ctx, "c"); d != 0 || len(m.keys) != 2 {
		t.Fatalf("a third key while two are locked: lockout %s, %d keys kept", d, len(m.keys))
	}
	if m.Locked(ctx, "a") == 0 || m.Locked(ctx, "b") == 0 {
		t.Fatal("a new key evicted a locked one")
	}
	c.add(2 * time.Minute)
	if d := m.Fail(ctx, "c"); d != time.Minute || len(m.keys) != 1 {
		t.Fatalf("after the lockouts: lockout %s, %d keys kept, want the expired ones swept", d, len(m.keys))
	}
}

func TestBuckets(t *testing.T) {
	c := newClock()
	b := NewBuckets(2, 3)
	b.now = c.now
	for i := range 3 {
		if ok, _ := b.Take("a"); !ok {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	ok, wait := b.Take("a")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("the 4th request: %v, wait %s; want refused, 500ms", ok, wait)
	}
	if ok, _ := b.Take("b"); !ok {
		t.Fatal("another client shares a's bucket")
	}
	c.add(500 * time.Millisecond)
	if ok, _ := b.Take("a"); !ok {
		t.Fatal("refused after the refill of one token")
	}
	c.add(time.Hour)
	for i := range 3 {
		if ok, _ := b.Take("a"); !ok {
			t.Fatalf("after an hour, request %d refused: the bucket must refill up to its burst only... and at least that", i+1)
		}
	}
	if ok, _ := b.Take("a"); ok {
		t.Fatal("an hour idle let more than the burst through")
	}
	if ok, _ := NewBuckets(0, 0).Take("x"); !ok {
		t.Fatal("a rate of 0 limits")
	}
}

// testRedis connects to TALLY_TEST_REDIS_URL; without one the test skips on a laptop and fails in CI.
func testRedis(t *testing.T) (*redis.Client, string) {
	t.Helper()
	url := os.Getenv("TALLY_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis at %s: %v", url, err)
		}
		t.Skipf("no redis at %s (set TALLY_TEST_REDIS_URL): %v", url, err)
	}
	prefix := "tally-test:" + rand.Text() + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
	})
	return client, prefix
}

// TestRedisSharedByReplicas: two limiters on one Redis (two replicas) count toward one limit, each
// failure once even when they fail at once, and the lockout holds on both.
func TestRedisSharedByReplicas(t *testing.T) {
	client, prefix := testRedis(t)
	ctx := context.Background()
	cfg := FailureConfig{Limit: 10, Window: time.Minute, Lockout: 2 * time.Second}
	a, b := NewRedis(client, prefix, cfg, nil), NewRedis(client, prefix, cfg, nil)
	var wg sync.WaitGroup
	var mu sync.Mutex
	lockouts := 0
	for i := range 9 {
		wg.Go(func() {
			r := a
			if i%2 == 1 {
				r = b
			}
			if r.Fail(ctx, "client:x") > 0 {
				mu.Lock()
				lockouts++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if lockouts != 0 || a.Locked(ctx, "client:x") != 0 {
		t.Fatalf("9 of 10 failures: %d lockouts, locked %s", lockouts, a.Locked(ctx, "client:x"))
	}
	if d := b.Fail(ctx, "client:x"); d != 2*time.Second {
		t.Fatalf("the 10th failure, on the other replica: lockout %s, want 2s", d)
	}
	if a.Locked(ctx, "client:x") <= 0 || b.Locked(ctx, "client:x") <= 0 {
		t.Fatal("the lockout does not hold on both replicas")
	}
	if d := a.Fail(ctx, "client:x"); d != 0 {
		t.Errorf("a failure while locked reported a new lockout %s", d)
	}
	if a.Locked(ctx, "client:y") != 0 {
		t.Error("another key is locked")
	}
	// After the lockout the key is free again (Redis expires the lock key).
	deadline := time.Now().Add(10 * time.Second)
	for a.Locked(ctx, "client:x") > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the lockout did not end")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRedisDownCountsInMemory: with Redis unreachable the limiter still locks out, per replica.
func TestRedisDownCountsInMemory(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", DialTimeout: 100 * time.Millisecond, MaxRetries: -1})
	defer client.Close()
	ctx := context.Background()
	r := NewRedis(client, "", FailureConfig{Limit: 2, Window: time.Minute}, nil)
	r.Fail(ctx, "k")
	if d := r.Fail(ctx, "k"); d != time.Minute {
		t.Fatalf("the limit reached with Redis down: lockout %s, want 1m", d)
	}
	if r.Locked(ctx, "k") <= 0 {
		t.Fatal("not locked with Redis down")
	}
}
