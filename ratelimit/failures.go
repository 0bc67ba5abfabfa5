// Package ratelimit holds Tally's abuse limits: lockouts after repeated authentication failures
// (in memory per replica, or shared by every replica through Redis) and token buckets that bound each
// OAuth client's request rate.
package ratelimit

import (
	"context"
	"sync"
	"time"
)

// FailureConfig says how many failures within a sliding window lock a key out, and for how long.
type FailureConfig struct {
	Limit   int           // failures within Window that start a lockout (default 10)
	Window  time.Duration // the sliding window (default 1 min)
	Lockout time.Duration // how long a lockout lasts (default Window)
	MaxKeys int           // keys the memory limiter tracks at most (default 100,000)
}

func (c FailureConfig) withDefaults() FailureConfig {
	if c.Limit <= 0 {
		c.Limit = 10
	}
	if c.Window <= 0 {
		c.Window = time.Minute
	}
	if c.Lockout <= 0 {
		c.Lockout = c.Window
	}
	if c.MaxKeys <= 0 {
		c.MaxKeys = 100_000
	}
	return c
}

// Failures counts authentication failures per key (a client id, a source address) and locks a key out
// once it has failed Limit times within Window.
//
// Locked is asked before the attempt is examined, so that an attempt on a locked key costs neither a
// database read nor a log line; Fail is told of each failed attempt and reports the lockout it starts,
// once, so that the caller logs a lockout once.
type Failures interface {
	// Locked returns how long key stays locked out; 0 when it is not.
	Locked(ctx context.Context, key string) time.Duration
	// Fail records a failure of key and returns the lockout this failure started, 0 when none.
	Fail(ctx context.Context, key string) time.Duration
}

// Memory is a Failures of one process: each replica counts the failures it sees.
type Memory struct {
	cfg  FailureConfig
	now  func() time.Time
	mu   sync.Mutex
	keys map[string]*failureRecord
}

var _ Failures = (*Memory)(nil)

type failureRecord struct {
	fails       []time.Time // within the window, oldest first; at most Limit
	lockedUntil time.Time
}

// NewMemory returns an in-memory failure limiter.
func NewMemory(cfg FailureConfig) *Memory {
	return &Memory{cfg: cfg.withDefaults(), now: time.Now, keys: map[string]*failureRecord{}}
}

// Locked implements Failures.
func (m *Memory) Locked(_ context.Context, key string) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	rec, ok := m.keys[key]
	if !ok {
		return 0
	}
	if left := rec.lockedUntil.Sub(m.now()); left > 0 {
		return left
	}
	return 0
}

// Fail implements Failures.
func (m *Memory) Fail(_ context.Context, key string) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	rec, ok := m.keys[key]
	if !ok {
		if len(m.keys) >= m.cfg.MaxKeys {
			m.sweep(now)
		}
		if len(m.keys) >= m.cfg.MaxKeys {
			// Full of keys that still count: a new key goes untracked rather than evict one that may be
			// locked (evicting would let an attacker unlock a key by spraying others). The per-address key
			// of the same attempt still counts.
			return 0
		}
		rec = &failureRecord{}
		m.keys[key] = rec
	}
	if now.Before(rec.lockedUntil) {
		return 0 // already locked: the lockout was reported when it started
	}
	rec.fails = dropBefore(rec.fails, now.Add(-m.cfg.Window))
	rec.fails = append(rec.fails, now)
	if len(rec.fails) < m.cfg.Limit {
		return 0
	}
	rec.fails = rec.fails[:0]
	rec.lockedUntil = now.Add(m.cfg.Lockout)
	return m.cfg.Lockout
}

// sweep forgets keys with no failure in the window and no lockout left.
func (m *Memory) sweep(now time.Time) {
	for k, rec := range m.keys {
		rec.fails = dropBefore(rec.fails, now.Add(-m.cfg.Window))
		if len(rec.fails) == 0 && !now.Before(rec.lockedUntil) {
			delete(m.keys, k)
		}
	}
}

// dropBefore removes the times not after t from the front of sorted times.
func dropBefore(times []time.Time, t time.Time) []time.Time {
	i := 0
	for i < len(times) && !times[i].After(t) {
		i++
	}
	return append(times[:0], times[i:]...)
}
