package ratelimit

import (
	"math"
	"sync"
	"time"
)

// Buckets are token buckets, one per key (an OAuth client id): each holds up to Burst tokens and
// refills at Rate tokens a second; a request takes one or is refused. A replica limits the requests it
// serves, so N replicas behind a load balancer let a client through at up to N times the rate.
type Buckets struct {
	rate    float64
	burst   float64
	maxKeys int
	now     func() time.Time
	mu      sync.Mutex
	keys    map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewBuckets returns token buckets of rate tokens a second and burst tokens at most (at least 1). A
// rate of 0 or less means no limit (Take always succeeds).
func NewBuckets(rate float64, burst int) *Buckets {
	return &Buckets{rate: rate, burst: math.Max(float64(burst), 1), maxKeys: 100_000, now: time.Now, keys: map[string]*bucket{}}
}

// Take takes a token from key's bucket. When there is none it returns false and how long until there
// is one.
func (b *Buckets) Take(key string) (bool, time.Duration) {
	if b == nil || b.rate <= 0 {
		return true, 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	bk, ok := b.keys[key]
	if !ok {
		if len(b.keys) >= b.maxKeys {
			b.sweep(now)
		}
		bk = &bucket{tokens: b.burst, at: now}
		b.keys[key] = bk
	}
	bk.tokens = math.Min(b.burst, bk.tokens+now.Sub(bk.at).Seconds()*b.rate)
	bk.at = now
	if bk.tokens >= 1 {
		bk.tokens--
		return true, 0
	}
	return false, time.Duration((1 - bk.tokens) / b.rate * float64(time.Second))
}

// sweep forgets the buckets that are full again: they hold nothing a new bucket would not.
func (b *Buckets) sweep(now time.Time) {
	for k, bk := range b.keys {
		if bk.tokens+now.Sub(bk.at).Seconds()*b.rate >= b.burst {
			delete(b.keys, k)
		}
	}
}
