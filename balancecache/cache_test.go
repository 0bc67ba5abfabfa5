package balancecache

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// testCache is the contract every Cache keeps. newCache returns an empty cache.
func testCache(t *testing.T, newCache func(t *testing.T) Cache) {
	ctx := context.Background()
	asOf := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

	t.Run("Miss", func(t *testing.T) {
		c := newCache(t)
		if e, ok, err := c.Get(ctx, "nobody"); err != nil || ok {
			t.Fatalf("Get(absent) = %+v, %v, %v; want no entry", e, ok, err)
		}
	})

	t.Run("RoundTrip", func(t *testing.T) {
		c := newCache(t)
		want := Entry{CustomerHash: "c1", Balance: 1200, BalanceVersion: 7, Tier: "gold", AsOf: asOf}
		mustPut(t, c, want)
		mustGetEntry(t, c, want)
	})

	t.Run("NoCustomerHash", func(t *testing.T) {
		if err := newCache(t).Put(ctx, Entry{Balance: 5}); err == nil {
			t.Fatal("Put without a customer hash succeeded")
		}
	})

	t.Run("Versions", func(t *testing.T) {
		c := newCache(t)
		v7 := Entry{CustomerHash: "c1", Balance: 700, BalanceVersion: 7, AsOf: asOf}
		mustPut(t, c, v7)

		// A late writer with an older read must not roll the balance back.
		mustPut(t, c, Entry{CustomerHash: "c1", Balance: 600, BalanceVersion: 6, AsOf: asOf.Add(time.Minute)})
		mustGetEntry(t, c, v7)

		// The same version read again refreshes AsOf.
		again := v7
		again.AsOf = asOf.Add(2 * time.Minute)
		mustPut(t, c, again)
		mustGetEntry(t, c, again)

		v8 := Entry{CustomerHash: "c1", Balance: 800, BalanceVersion: 8, Tier: "silver", AsOf: asOf.Add(3 * time.Minute)}
		mustPut(t, c, v8)
		mustGetEntry(t, c, v8)

		// Other customers are independent.
		other := Entry{CustomerHash: "c2", Balance: 1, BalanceVersion: 1, AsOf: asOf}
		mustPut(t, c, other)
		mustGetEntry(t, c, other)
		mustGetEntry(t, c, v8)
	})

	t.Run("Delete", func(t *testing.T) {
		c := newCache(t)
		gone := Entry{CustomerHash: "c1", Balance: 700, BalanceVersion: 7, AsOf: asOf}
		kept := Entry{CustomerHash: "c2", Balance: 1, BalanceVersion: 1, AsOf: asOf}
		mustPut(t, c, gone)
		mustPut(t, c, kept)
		if err := c.Delete(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		mustMiss(t, c, "c1")
		mustGetEntry(t, c, kept)
		if err := c.Delete(ctx, "c1"); err != nil {
			t.Fatalf("deleting an absent entry: %v", err)
		}
	})

	t.Run("ConcurrentVersions", func(t *testing.T) {
		testConcurrentVersions(t, newCache(t))
	})
}

// testConcurrentVersions has writers put versions 1..n of one entry in random order, spread over caches
// (replicas sharing a store, or just one), while a reader of caches[0] checks that the version it sees
// never goes down and ends at n.
func testConcurrentVersions(t *testing.T, caches ...Cache) {
	t.Helper()
	const n, workers = 200, 8
	ctx := context.Background()
	versions := rand.Perm(n)
	next := make(chan int)
	go func() {
		for _, v := range versions {
			next <- v + 1
		}
		close(next)
	}()

	reader := caches[0]
	done := make(chan struct{})
	var readerDone sync.WaitGroup
	readerDone.Go(func() {
		var last int64
		for {
			select {
			case <-done:
				return
			default:
			}
			e, ok, err := reader.Get(ctx, "c1")
			if err != nil {
				t.Errorf("Get: %v", err)
				return
			}
			if ok && e.BalanceVersion < last {
				t.Errorf("version went back from %d to %d", last, e.BalanceVersion)
				return
			}
			if ok {
				last = e.BalanceVersion
			}
		}
	})

	var wg sync.WaitGroup
	for i := range workers {
		c := caches[i%len(caches)]
		wg.Go(func() {
			for v := range next {
				e := Entry{CustomerHash: "c1", Balance: int64(v) * 10, BalanceVersion: int64(v)}
				if err := c.Put(ctx, e); err != nil {
					t.Errorf("Put(version %d): %v", v, err)
				}
			}
		})
	}
	wg.Wait()
	close(done)
	readerDone.Wait()
	mustGetEntry(t, reader, Entry{CustomerHash: "c1", Balance: n * 10, BalanceVersion: n})
}

func mustPut(tb testing.TB, c Cache, e Entry) {
	tb.Helper()
	if err := c.Put(context.Background(), e); err != nil {
		tb.Fatalf("Put(%+v): %v", e, err)
	}
}

// mustGetEntry checks that the cache holds want for want.CustomerHash.
func mustGetEntry(tb testing.TB, c Cache, want Entry) {
	tb.Helper()
	got, ok, err := c.Get(context.Background(), want.CustomerHash)
	if err != nil {
		tb.Fatalf("Get(%q): %v", want.CustomerHash, err)
	}
	if !ok {
		tb.Fatalf("Get(%q): no entry, want %+v", want.CustomerHash, want)
	}
	if got.CustomerHash != want.CustomerHash || got.Balance != want.Balance ||
		got.BalanceVersion != want.BalanceVersion || got.Tier != want.Tier || !got.AsOf.Equal(want.AsOf) {
		tb.Fatalf("Get(%q) = %+v, want %+v", want.CustomerHash, got, want)
	}
}

func mustMiss(tb testing.TB, c Cache, customerHash string) {
	tb.Helper()
	if e, ok, err := c.Get(context.Background(), customerHash); err != nil || ok {
		tb.Fatalf("Get(%q) = %+v, %v, %v; want no entry", customerHash, e, ok, err)
	}
}
