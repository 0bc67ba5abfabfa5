package balancecache

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// testRedisURL is the server the Redis tests use: TALLY_TEST_REDIS_URL, or a local default.
func testRedisURL() string {
	if u := os.Getenv("TALLY_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// mustOpenRedis connects to the test server. Without one the test skips on a laptop and fails in CI.
func mustOpenRedis(tb testing.TB) *redis.Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	client, err := OpenRedis(ctx, testRedisURL())
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("redis at %s: %v", testRedisURL(), err)
		}
		tb.Skipf("no redis at %s (set TALLY_TEST_REDIS_URL): %v", testRedisURL(), err)
	}
	tb.Cleanup(func() { client.Close() })
	return client
}

// testPrefix returns a key prefix of the test's own and deletes its keys when the test ends.
func testPrefix(tb testing.TB, client *redis.Client) string {
	tb.Helper()
	prefix := "tally-test:" + rand.Text() + ":"
	tb.Cleanup(func() {
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
		if err := iter.Err(); err != nil {
			tb.Errorf("clean up %s*: %v", prefix, err)
		}
	})
	return prefix
}

func TestRedis(t *testing.T) {
	client := mustOpenRedis(t)
	testCache(t, func(t *testing.T) Cache { return NewRedis(client, testPrefix(t, client), time.Hour) })
}

func TestRedisTTL(t *testing.T) {
	client := mustOpenRedis(t)
	c := NewRedis(client, testPrefix(t, client), time.Hour)
	mustPut(t, c, Entry{CustomerHash: "c1", BalanceVersion: 1})
	ttl, err := client.PTTL(t.Context(), c.key("c1")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 59*time.Minute || ttl > time.Hour {
		t.Errorf("PTTL = %v, want about an hour", ttl)
	}

	short := NewRedis(client, testPrefix(t, client), 50*time.Millisecond)
	mustPut(t, short, Entry{CustomerHash: "c1", BalanceVersion: 9})
	time.Sleep(150 * time.Millisecond)
	mustMiss(t, short, "c1")
	// Expired, the old version guards nothing.
	mustPut(t, short, Entry{CustomerHash: "c1", BalanceVersion: 2})
	mustGetEntry(t, short, Entry{CustomerHash: "c1", BalanceVersion: 2})
}

func TestRedisDefaults(t *testing.T) {
	r := NewRedis(nil, "", 0)
	if r.prefix != DefaultPrefix || r.ttl != DefaultTTL {
		t.Errorf("NewRedis(nil, \"\", 0): prefix %q ttl %v, want %q %v", r.prefix, r.ttl, DefaultPrefix, DefaultTTL)
	}
}

// replicas returns n caches, each on its own connection, sharing one fresh prefix: n service replicas.
func replicas(t *testing.T, n int) []Cache {
	t.Helper()
	prefix := testPrefix(t, mustOpenRedis(t))
	caches := make([]Cache, n)
	for i := range caches {
		caches[i] = NewRedis(mustOpenRedis(t), prefix, time.Hour)
	}
	return caches
}

// Two replicas see one cache and one version order.
func TestRedisReplicasShare(t *testing.T) {
	rs := replicas(t, 2)
	a, b := rs[0], rs[1]
	asOf := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

	v1 := Entry{CustomerHash: "c1", Balance: 100, BalanceVersion: 1, Tier: "bronze", AsOf: asOf}
	mustPut(t, a, v1)
	mustGetEntry(t, b, v1)

	v2 := Entry{CustomerHash: "c1", Balance: 250, BalanceVersion: 2, Tier: "silver", AsOf: asOf.Add(time.Second)}
	mustPut(t, b, v2)
	mustGetEntry(t, a, v2)

	// Replica a read version 1 before b wrote version 2, and puts it late.
	mustPut(t, a, v1)
	mustGetEntry(t, b, v2)

	t.Run("ConcurrentVersions", func(t *testing.T) {
		testConcurrentVersions(t, replicas(t, 3)...)
	})
}

// A cache whose server is gone reports errors instead of hanging the request that consulted it.
func TestRedisUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("redis://%s/0", l.Addr())
	l.Close() // nothing listens there now

	if client, err := OpenRedis(t.Context(), url); err == nil {
		client.Close()
		t.Fatal("OpenRedis of a closed port succeeded")
	}

	opt, err := redisOptions(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	defer client.Close()
	c := NewRedis(client, "tally-test:", time.Hour)
	start := time.Now()
	if _, _, err := c.Get(t.Context(), "c1"); err == nil {
		t.Error("Get from an unreachable server succeeded")
	}
	if err := c.Put(t.Context(), Entry{CustomerHash: "c1", BalanceVersion: 1}); err == nil {
		t.Error("Put to an unreachable server succeeded")
	}
	t.Logf("Get and Put failed in %v", time.Since(start))
}

// A server that accepts connections but never answers (a hung or partitioned Redis) is given up on
// after the read timeout.
func TestRedisSilent(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	defer func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
	}()
	opt, err := redisOptions(fmt.Sprintf("redis://%s/0", l.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	defer client.Close()
	c := NewRedis(client, "tally-test:", time.Hour)
	start := time.Now()
	if _, _, err := c.Get(t.Context(), "c1"); err == nil {
		t.Error("Get from a silent server succeeded")
	}
	t.Logf("Get failed in %v", time.Since(start))
}

func TestRedisOptions(t *testing.T) {
	opt, err := redisOptions("redis://:secret@cache.internal:6380/2")
	if err != nil {
		t.Fatal(err)
	}
	if opt.Addr != "cache.internal:6380" || opt.DB != 2 || opt.Password != "secret" {
		t.Errorf("addr %q db %d password %q", opt.Addr, opt.DB, opt.Password)
	}
	if opt.DialTimeout != Timeout || opt.ReadTimeout != Timeout || opt.WriteTimeout != Timeout || opt.PoolTimeout != Timeout {
		t.Errorf("timeouts dial %v read %v write %v pool %v, want %v", opt.DialTimeout, opt.ReadTimeout,
			opt.WriteTimeout, opt.PoolTimeout, Timeout)
	}
	if opt.MaxRetries != -1 || opt.DialerRetries != 1 {
		t.Errorf("MaxRetries %d DialerRetries %d, want -1 1", opt.MaxRetries, opt.DialerRetries)
	}

	opt, err = redisOptions("redis://127.0.0.1:6379/0?read_timeout=1s")
	if err != nil {
		t.Fatal(err)
	}
	if opt.ReadTimeout != time.Second {
		t.Errorf("ReadTimeout %v, want the URL's 1s", opt.ReadTimeout)
	}

	if _, err := redisOptions("http://example.com"); err == nil {
		t.Error("redisOptions accepted an http URL")
	}
}
