// Package breaker wraps a tally.Store in a circuit breaker, so that while the database is down requests
// fail at once with EUNAVAILABLE and a Retry-After hint, instead of each waiting out its own timeout and
// piling onto a database that is trying to recover.
//
// Only transient faults trip the breaker: an error with code EUNAVAILABLE, or context.DeadlineExceeded.
// A business answer (ENOTFOUND, EINSUFFICIENT, ECONFLICT, ...) proves the database is up and counts as a
// success. A caller that hung up (context.Canceled) says nothing about it, so its call is not counted at
// all: it neither resets the failures seen so far nor, as a half-open probe, closes the breaker (the next
// call probes in its place).
package breaker

import (
	"context"
	"errors"
	"math"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/tally-ledger/tally"
)

// Defaults for the zero Config.
const (
	DefaultFailures = 5
	DefaultOpenFor  = 15 * time.Second
)

// States, as State and Config.OnStateChange report them.
const (
	StateClosed   = "closed"
	StateHalfOpen = "half-open"
	StateOpen     = "open"
)

// Config tunes a breaker. The zero Config is usable.
type Config struct {
	// Failures is how many transient faults in a row open the breaker. Default 5.
	Failures uint32
	// OpenFor is how long the breaker stays open before it lets one probe through. Default 15s.
	OpenFor time.Duration
	// OnStateChange, when set, is called on every transition with the names of the states ("closed",
	// "half-open", "open"). It runs synchronously while the breaker holds its lock, so it must be quick
	// and must not call back into the Store (including State).
	OnStateChange func(from, to string)
}

// Store is a tally.Store whose database calls pass through a circuit breaker.
type Store struct {
	inner    tally.Store
	cb       *gobreaker.CircuitBreaker[struct{}]
	openFor  time.Duration
	openedAt atomic.Int64 // unix nanoseconds of the last transition to open
}

var _ tally.Store = (*Store)(nil)

// New wraps s in a circuit breaker configured by cfg.
func New(s tally.Store, cfg Config) *Store {
	if cfg.Failures == 0 {
		cfg.Failures = DefaultFailures
	}
	if cfg.OpenFor <= 0 {
		cfg.OpenFor = DefaultOpenFor
	}
	b := &Store{inner: s, openFor: cfg.OpenFor}
	b.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:        "store",
		MaxRequests: 1, // half-open: exactly one probe
		Timeout:     cfg.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			return c.ConsecutiveFailures >= cfg.Failures
		},
		IsSuccessful: func(err error) bool { return !IsTransient(err) },
		IsExcluded:   isCanceled,
		OnStateChange: func(_ string, from, to gobreaker.State) {
			if to == gobreaker.StateOpen {
				b.openedAt.Store(time.Now().UnixNano())
			}
			if cfg.OnStateChange != nil {
				cfg.OnStateChange(from.String(), to.String())
			}
		},
	})
	return b
}

// IsTransient reports whether err counts as a failure for the breaker: a store fault (EUNAVAILABLE) or
// a deadline that ran out. A cancelled context is checked first, because adapters report it wrapped in
// EUNAVAILABLE and a client hanging up must not open the breaker.
func IsTransient(err error) bool {
	switch {
	case err == nil, isCanceled(err):
		return false
	case errors.Is(err, context.DeadlineExceeded):
		return true
	}
	return tally.ErrorCode(err) == tally.EUNAVAILABLE
}

// isCanceled reports a call whose caller went away: evidence of nothing about the store.
func isCanceled(err error) bool { return errors.Is(err, context.Canceled) }

// State returns the breaker's state: "closed", "half-open" or "open".
func (s *Store) State() string { return s.cb.State().String() }

// Inner returns the wrapped store.
func (s *Store) Inner() tally.Store { return s.inner }

// OpenError is the cause of the EUNAVAILABLE error returned while the breaker refuses calls.
type OpenError struct {
	// RetryAfter is the time left until the breaker lets a probe through; zero or less when a probe is
	// already in flight.
	RetryAfter time.Duration
}

func (e *OpenError) Error() string { return "circuit breaker is open" }

// RetryAfterSeconds is RetryAfter rounded up to whole seconds, at least 1: the Retry-After to send.
func (e *OpenError) RetryAfterSeconds() int {
	return max(1, int(math.Ceil(e.RetryAfter.Seconds())))
}

// refused builds the error for a call the breaker did not let through.
func (s *Store) refused() error {
	left := time.Until(time.Unix(0, s.openedAt.Load()).Add(s.openFor))
	return &tally.Error{
		Code:    tally.EUNAVAILABLE,
		Message: "the store is unavailable (circuit open)",
		Err:     &OpenError{RetryAfter: left},
	}
}

// call runs f through the breaker. Whether f ran, rather than which error came back, tells a refusal
// from f's own result, so an inner store that returns gobreaker's sentinels cannot be mistaken for one.
func call[T any](s *Store, f func() (T, error)) (T, error) {
	var (
		v   T
		ran bool
	)
	_, err := s.cb.Execute(func() (struct{}, error) {
		ran = true
		var err error
		v, err = f()
		return struct{}{}, err
	})
	if !ran {
		return v, s.refused()
	}
	return v, err
}

// exec is call for methods that return only an error.
func (s *Store) exec(f func() error) error {
	_, err := call(s, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// Update runs fn through the inner store's Update. The error Update returns is what counts, so a
// business refusal from fn is a success for the breaker.
func (s *Store) Update(ctx context.Context, fn func(ctx context.Context, tx tally.WriteTx) error) error {
	return s.exec(func() error { return s.inner.Update(ctx, fn) })
}

// Account implements tally.Store.
func (s *Store) Account(ctx context.Context, id string) (tally.Account, error) {
	return call(s, func() (tally.Account, error) { return s.inner.Account(ctx, id) })
}

// Transaction implements tally.Store.
func (s *Store) Transaction(ctx context.Context, seq int64) (tally.Transaction, error) {
	return call(s, func() (tally.Transaction, error) { return s.inner.Transaction(ctx, seq) })
}

// TransactionByKey implements tally.Store.
func (s *Store) TransactionByKey(ctx context.Context, channel, key string) (tally.Transaction, error) {
	return call(s, func() (tally.Transaction, error) { return s.inner.TransactionByKey(ctx, channel, key) })
}

// History implements tally.Store.
func (s *Store) History(ctx context.Context, accountID string, beforeSeq int64, limit int) ([]tally.Transaction, error) {
	return call(s, func() ([]tally.Transaction, error) { return s.inner.History(ctx, accountID, beforeSeq, limit) })
}

// Outcome implements tally.Store.
func (s *Store) Outcome(ctx context.Context, channel, key string) (tally.Outcome, error) {
	return call(s, func() (tally.Outcome, error) { return s.inner.Outcome(ctx, channel, key) })
}

// PurgeOutcomes implements tally.Store.
func (s *Store) PurgeOutcomes(ctx context.Context, before time.Time) (int64, error) {
	return call(s, func() (int64, error) { return s.inner.PurgeOutcomes(ctx, before) })
}

// Rewards implements tally.Store.
func (s *Store) Rewards(ctx context.Context) ([]tally.Reward, error) {
	return call(s, func() ([]tally.Reward, error) { return s.inner.Rewards(ctx) })
}

// PutReward implements tally.Store.
func (s *Store) PutReward(ctx context.Context, r tally.Reward) error {
	return s.exec(func() error { return s.inner.PutReward(ctx, r) })
}

// Audit returns the inner store's Auditor unguarded: verification is an offline batch job that should
// see the real error rather than be turned away.
func (s *Store) Audit() tally.Auditor { return s.inner.Audit() }

// Redemption implements tally.Store.
func (s *Store) Redemption(ctx context.Context, receiptID string) (tally.Redemption, error) {
	return call(s, func() (tally.Redemption, error) { return s.inner.Redemption(ctx, receiptID) })
}

// ChainSeal implements tally.Store.
func (s *Store) ChainSeal(ctx context.Context) (tally.ChainSeal, error) {
	return call(s, func() (tally.ChainSeal, error) { return s.inner.ChainSeal(ctx) })
}

// InitChainSeal implements tally.Store.
func (s *Store) InitChainSeal(ctx context.Context, seal func(int64) tally.ChainSeal) (tally.ChainSeal, error) {
	return call(s, func() (tally.ChainSeal, error) { return s.inner.InitChainSeal(ctx, seal) })
}

// Checkpoint implements tally.Store.
func (s *Store) Checkpoint(ctx context.Context, fn func(ctx context.Context, tx tally.CheckpointTx) error) error {
	return s.exec(func() error { return s.inner.Checkpoint(ctx, fn) })
}

// Ping implements tally.Store. While the breaker is open it fails fast like any other call, so
// readiness reports the store down without adding load.
func (s *Store) Ping(ctx context.Context) error {
	return s.exec(func() error { return s.inner.Ping(ctx) })
}

// MigrationsCurrent implements tally.Store.
func (s *Store) MigrationsCurrent(ctx context.Context) (bool, error) {
	return call(s, func() (bool, error) { return s.inner.MigrationsCurrent(ctx) })
}

// Close closes the inner store.
func (s *Store) Close() error { return s.inner.Close() }
