package auth

import (
	"slices"
	"sync"
	"time"
)

// tokenCache remembers verified tokens until they expire, keyed by the SHA-256 of the whole token (not the
// signature alone, so that a valid signature pasted under another payload finds nothing). It holds at most
// max entries: when full, it drops the expired ones and, if that is not enough, a tenth of the others,
// chosen at random by map iteration.
type tokenCache struct {
	mu      sync.RWMutex
	max     int
	entries map[[32]byte]Principal
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[32]byte]Principal)}
}

func (c *tokenCache) get(key [32]byte, now time.Time) (Principal, bool) {
	c.mu.RLock()
	p, ok := c.entries[key]
	c.mu.RUnlock()
	if !ok || !now.Before(p.ExpiresAt) {
		return Principal{}, false
	}
	p.Scopes = slices.Clone(p.Scopes) // the caller may not change ours
	return p, true
}

func (c *tokenCache) put(key [32]byte, p Principal, now time.Time) {
	if !now.Before(p.ExpiresAt) {
		return
	}
	p.Scopes = slices.Clone(p.Scopes)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if !now.Before(e.ExpiresAt) {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max-c.max/10 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = p
}

func (c *tokenCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
