package balancecache

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestMemory(t *testing.T) {
	testCache(t, func(*testing.T) Cache { return NewMemory(100, time.Hour) })
}

// clock is a settable time source for TTL tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newMemoryWithClock(maxEntries int, ttl time.Duration) (*Memory, *clock) {
	clk := &clock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	m := NewMemory(maxEntries, ttl)
	m.now = clk.Now
	return m, clk
}

func TestMemoryDefaults(t *testing.T) {
	m := NewMemory(0, 0)
	if m.max != DefaultMaxEntries || m.ttl != DefaultTTL {
		t.Errorf("NewMemory(0, 0): max %d ttl %v, want %d %v", m.max, m.ttl, DefaultMaxEntries, DefaultTTL)
	}
}

func TestMemoryBounded(t *testing.T) {
	m := NewMemory(3, time.Hour)
	for i := range 3 {
		mustPut(t, m, Entry{CustomerHash: fmt.Sprint("c", i), BalanceVersion: 1})
	}
	// Reading c0 makes c1 the least recently used.
	mustGetEntry(t, m, Entry{CustomerHash: "c0", BalanceVersion: 1})
	mustPut(t, m, Entry{CustomerHash: "c3", BalanceVersion: 1})
	if m.Len() != 3 {
		t.Fatalf("Len = %d, want 3", m.Len())
	}
	mustMiss(t, m, "c1")
	for _, c := range []string{"c0", "c2", "c3"} {
		mustGetEntry(t, m, Entry{CustomerHash: c, BalanceVersion: 1})
	}

	for i := range 100 {
		mustPut(t, m, Entry{CustomerHash: fmt.Sprint("d", i), BalanceVersion: 1})
	}
	if m.Len() != 3 {
		t.Fatalf("Len after 100 more puts = %d, want 3", m.Len())
	}
}

func TestMemoryTTL(t *testing.T) {
	m, clk := newMemoryWithClock(10, time.Hour)
	v5 := Entry{CustomerHash: "c1", Balance: 50, BalanceVersion: 5}
	mustPut(t, m, v5)
	clk.Advance(59 * time.Minute)
	mustGetEntry(t, m, v5)

	// A Put of the same version restarts the TTL; a Get does not.
	mustPut(t, m, v5)
	clk.Advance(59 * time.Minute)
	mustGetEntry(t, m, v5)
	clk.Advance(time.Minute)
	mustMiss(t, m, "c1")
	if m.Len() != 0 {
		t.Errorf("Len after an expired Get = %d, want 0", m.Len())
	}

	// An expired entry no longer guards its version: what the store says now wins.
	mustPut(t, m, Entry{CustomerHash: "c2", Balance: 90, BalanceVersion: 9})
	clk.Advance(2 * time.Hour)
	v3 := Entry{CustomerHash: "c2", Balance: 30, BalanceVersion: 3}
	mustPut(t, m, v3)
	mustGetEntry(t, m, v3)
}

func TestMemoryConcurrent(t *testing.T) {
	m := NewMemory(50, time.Hour)
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := range 500 {
				c := fmt.Sprint("c", (w*7+i)%80)
				if err := m.Put(t.Context(), Entry{CustomerHash: c, BalanceVersion: int64(i)}); err != nil {
					t.Error(err)
					return
				}
				if _, _, err := m.Get(t.Context(), c); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if m.Len() > 50 {
		t.Errorf("Len = %d, over the bound of 50", m.Len())
	}
}
