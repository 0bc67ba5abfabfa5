package breaker_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/breaker"
)

// fakeStore answers Account, Ping and Update, failing with err while it is set. The embedded nil Store
// makes any other method panic, which the tests never call.
type fakeStore struct {
	tally.Store

	mu    sync.Mutex
	err   error
	calls atomic.Int64

	// When gate is set, Ping signals entered and then waits for gate to close.
	gate    chan struct{}
	entered chan struct{}
}

var errDown = tally.Unavailable(errors.New("connection refused"), "the database")

func (f *fakeStore) fail(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeStore) current() error {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

func (f *fakeStore) Account(ctx context.Context, id string) (tally.Account, error) {
	if err := f.current(); err != nil {
		return tally.Account{}, err
	}
	return tally.Account{ID: id, Status: tally.StatusActive}, nil
}

func (f *fakeStore) Ping(ctx context.Context) error {
	if f.gate != nil {
		f.entered <- struct{}{}
		<-f.gate
	}
	return f.current()
}

func (f *fakeStore) Update(ctx context.Context, fn func(ctx context.Context, tx tally.WriteTx) error) error {
	if err := f.current(); err != nil {
		return err
	}
	return fn(ctx, nil)
}

// transitions records what OnStateChange reports.
type transitions struct {
	mu   sync.Mutex
	seen []string
}

func (r *transitions) record(from, to string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, from+"->"+to)
}

func (r *transitions) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.seen)
}

func newBreaker(t *testing.T, openFor time.Duration) (*breaker.Store, *fakeStore, *transitions) {
	t.Helper()
	f := &fakeStore{}
	r := &transitions{}
	return breaker.New(f, breaker.Config{OpenFor: openFor, OnStateChange: r.record}), f, r
}

// mustTrip fails the store and makes the default five failing calls.
func mustTrip(t *testing.T, b *breaker.Store, f *fakeStore) {
	t.Helper()
	f.fail(errDown)
	for range breaker.DefaultFailures {
		if _, err := b.Account(context.Background(), "c1"); !errors.Is(err, errDown) {
			t.Fatalf("Account: got %v, want the inner store's error", err)
		}
	}
	if got := b.State(); got != breaker.StateOpen {
		t.Fatalf("state after %d failures = %q, want open", breaker.DefaultFailures, got)
	}
}

// waitState polls State, which is also what moves an expired open breaker to half-open.
func waitState(t *testing.T, b *breaker.Store, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for b.State() != want {
		if time.Now().After(deadline) {
			t.Fatalf("state = %q after %v, want %q", b.State(), within, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func openError(t *testing.T, err error) *breaker.OpenError {
	t.Helper()
	if code := tally.ErrorCode(err); code != tally.EUNAVAILABLE {
		t.Fatalf("code = %q (%v), want %q", code, err, tally.EUNAVAILABLE)
	}
	var oe *breaker.OpenError
	if !errors.As(err, &oe) {
		t.Fatalf("error %v does not wrap *breaker.OpenError", err)
	}
	// The HTTP layer looks for the interface, not the type.
	var ra interface{ RetryAfterSeconds() int }
	if !errors.As(err, &ra) {
		t.Fatalf("error %v does not expose RetryAfterSeconds through Unwrap", err)
	}
	return oe
}

func TestOpensAfterConsecutiveFailures(t *testing.T) {
	b, f, _ := newBreaker(t, time.Minute)
	ctx := context.Background()
	f.fail(errDown)
	for i := range breaker.DefaultFailures - 1 {
		b.Account(ctx, "c1")
		if got := b.State(); got != breaker.StateClosed {
			t.Fatalf("state after %d failures = %q, want closed", i+1, got)
		}
	}
	// A success resets the run.
	f.fail(nil)
	if _, err := b.Account(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	f.fail(errDown)
	for range breaker.DefaultFailures - 1 {
		b.Account(ctx, "c1")
	}
	if got := b.State(); got != breaker.StateClosed {
		t.Fatalf("state after a success and 4 failures = %q, want closed", got)
	}
	b.Account(ctx, "c1")
	if got := b.State(); got != breaker.StateOpen {
		t.Fatalf("state after 5 consecutive failures = %q, want open", got)
	}
}

func TestConfiguredFailures(t *testing.T) {
	f := &fakeStore{}
	b := breaker.New(f, breaker.Config{Failures: 2, OpenFor: time.Minute})
	f.fail(errDown)
	b.Ping(context.Background())
	if got := b.State(); got != breaker.StateClosed {
		t.Fatalf("state after 1 failure = %q, want closed", got)
	}
	b.Ping(context.Background())
	if got := b.State(); got != breaker.StateOpen {
		t.Fatalf("state after 2 failures = %q, want open", got)
	}
}

func TestWhatCountsAsFailure(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		transient bool
	}{
		{"unavailable", errDown, true},
		{"wrapped unavailable", fmt.Errorf("update: %w", errDown), true},
		{"deadline", context.DeadlineExceeded, true},
		{"unavailable deadline", tally.Unavailable(context.DeadlineExceeded, "the database"), true},
		{"not found", tally.Errorf(tally.ENOTFOUND, "no such account"), false},
		{"insufficient", tally.Errorf(tally.EINSUFFICIENT, "balance too low"), false},
		{"conflict", tally.Errorf(tally.ECONFLICT, "conflict"), false},
		{"version", tally.Errorf(tally.EVERSION, "stale"), false},
		{"internal", errors.New("bug"), false},
		{"canceled", context.Canceled, false},
		// Adapters report a cancelled query as EUNAVAILABLE; the client hung up, the store is fine.
		{"unavailable canceled", tally.Unavailable(context.Canceled, "the database"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := breaker.IsTransient(tt.err); got != tt.transient {
				t.Errorf("IsTransient(%v) = %v, want %v", tt.err, got, tt.transient)
			}
			b, f, _ := newBreaker(t, time.Minute)
			f.fail(tt.err)
			for range 2 * breaker.DefaultFailures {
				b.Account(context.Background(), "c1")
			}
			want := breaker.StateClosed
			if tt.transient {
				want = breaker.StateOpen
			}
			if got := b.State(); got != want {
				t.Errorf("state after %d calls failing with %v = %q, want %q", 2*breaker.DefaultFailures, tt.err, got, want)
			}
		})
	}
}

func TestUpdateCountsWhatItReturns(t *testing.T) {
	b, f, _ := newBreaker(t, time.Minute)
	ctx := context.Background()

	refuse := tally.Errorf(tally.EINSUFFICIENT, "balance too low")
	for range 2 * breaker.DefaultFailures {
		err := b.Update(ctx, func(context.Context, tally.WriteTx) error { return refuse })
		if !errors.Is(err, refuse) {
			t.Fatalf("Update: got %v, want fn's error", err)
		}
	}
	if got := b.State(); got != breaker.StateClosed {
		t.Fatalf("state after business refusals from fn = %q, want closed", got)
	}

	// A transient fault raised inside fn counts like one from the store.
	for range breaker.DefaultFailures {
		b.Update(ctx, func(context.Context, tally.WriteTx) error { return errDown })
	}
	if got := b.State(); got != breaker.StateOpen {
		t.Fatalf("state after fn returned EUNAVAILABLE 5 times = %q, want open", got)
	}
	if f.calls.Load() != 3*breaker.DefaultFailures {
		t.Fatalf("inner Update called %d times, want %d", f.calls.Load(), 3*breaker.DefaultFailures)
	}
}

func TestOpenFailsFast(t *testing.T) {
	b, f, _ := newBreaker(t, 15*time.Second)
	ctx := context.Background()
	mustTrip(t, b, f)
	calls := f.calls.Load()

	_, err := b.Account(ctx, "c1")
	oe := openError(t, err)
	if s := oe.RetryAfterSeconds(); s < 14 || s > 15 {
		t.Errorf("RetryAfterSeconds = %d right after opening for 15s, want 15", s)
	}
	if msg := tally.ErrorMessage(err); msg != "the store is unavailable (circuit open)" {
		t.Errorf("message = %q", msg)
	}
	openError(t, b.Ping(ctx))
	openError(t, b.Update(ctx, func(context.Context, tally.WriteTx) error {
		t.Error("fn ran while the breaker was open")
		return nil
	}))
	if got := f.calls.Load(); got != calls {
		t.Errorf("inner store called %d times while open, want 0", got-calls)
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	tests := []struct {
		after time.Duration
		want  int
	}{
		{-time.Second, 1},
		{0, 1},
		{time.Millisecond, 1},
		{time.Second, 1},
		{time.Second + time.Millisecond, 2},
		{14*time.Second + 10*time.Millisecond, 15},
	}
	for _, tt := range tests {
		if got := (&breaker.OpenError{RetryAfter: tt.after}).RetryAfterSeconds(); got != tt.want {
			t.Errorf("RetryAfterSeconds(%v) = %d, want %d", tt.after, got, tt.want)
		}
	}
}

func TestHalfOpenLetsOneProbeThrough(t *testing.T) {
	b, f, rec := newBreaker(t, 200*time.Millisecond)
	ctx := context.Background()
	mustTrip(t, b, f)
	f.fail(nil)
	waitState(t, b, breaker.StateHalfOpen, 2*time.Second)

	f.gate, f.entered = make(chan struct{}), make(chan struct{})
	probe := make(chan error)
	go func() { probe <- b.Ping(ctx) }()
	<-f.entered
	calls := f.calls.Load()

	// The probe is in flight: everyone else is turned away, told to come back in a second.
	_, err := b.Account(ctx, "c1")
	if s := openError(t, err).RetryAfterSeconds(); s != 1 {
		t.Errorf("RetryAfterSeconds while the probe is in flight = %d, want 1", s)
	}
	if got := f.calls.Load(); got != calls {
		t.Errorf("inner store called %d times beside the probe, want 0", got-calls)
	}

	close(f.gate)
	if err := <-probe; err != nil {
		t.Fatalf("probe: %v", err)
	}
	if got := b.State(); got != breaker.StateClosed {
		t.Fatalf("state after a successful probe = %q, want closed", got)
	}
	f.gate = nil
	if _, err := b.Account(ctx, "c1"); err != nil {
		t.Fatalf("Account after closing: %v", err)
	}
	want := []string{"closed->open", "open->half-open", "half-open->closed"}
	if got := rec.get(); !slices.Equal(got, want) {
		t.Errorf("transitions = %v, want %v", got, want)
	}
}

func TestFailedProbeReopens(t *testing.T) {
	b, f, rec := newBreaker(t, 200*time.Millisecond)
	ctx := context.Background()
	mustTrip(t, b, f)
	waitState(t, b, breaker.StateHalfOpen, 2*time.Second)

	calls := f.calls.Load()
	if _, err := b.Account(ctx, "c1"); !errors.Is(err, errDown) {
		t.Fatalf("probe: got %v, want the inner store's error", err)
	}
	if got := f.calls.Load() - calls; got != 1 {
		t.Fatalf("probe reached the inner store %d times, want 1", got)
	}
	if got := b.State(); got != breaker.StateOpen {
		t.Fatalf("state after a failed probe = %q, want open", got)
	}
	_, err := b.Account(ctx, "c1")
	if s := openError(t, err).RetryAfterSeconds(); s != 1 {
		t.Errorf("RetryAfterSeconds after reopening for 200ms = %d, want 1", s)
	}
	want := []string{"closed->open", "open->half-open", "half-open->open"}
	if got := rec.get(); !slices.Equal(got, want) {
		t.Errorf("transitions = %v, want %v", got, want)
	}

	// Recovery on the next probe.
	f.fail(nil)
	waitState(t, b, breaker.StateHalfOpen, 2*time.Second)
	if _, err := b.Account(ctx, "c1"); err != nil {
		t.Fatalf("second probe: %v", err)
	}
	if got := b.State(); got != breaker.StateClosed {
		t.Fatalf("state after a successful probe = %q, want closed", got)
	}
}

func TestInner(t *testing.T) {
	f := &fakeStore{}
	if got := breaker.New(f, breaker.Config{}).Inner(); got != f {
		t.Errorf("Inner() = %v, want the wrapped store", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	b, f, _ := newBreaker(t, 20*time.Millisecond)
	ctx := context.Background()
	stop := make(chan struct{})
	var flapper sync.WaitGroup
	flapper.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Millisecond):
			}
			if i%2 == 0 {
				f.fail(errDown)
			} else {
				f.fail(nil)
			}
		}
	})
	var workers sync.WaitGroup
	for range 16 {
		workers.Go(func() {
			for range 300 {
				_, err := b.Account(ctx, "c1")
				if err != nil && tally.ErrorCode(err) != tally.EUNAVAILABLE {
					t.Errorf("Account: unexpected error %v", err)
					return
				}
				b.State()
			}
		})
	}
	workers.Wait()
	close(stop)
	flapper.Wait()

	// Once the store is healthy the breaker must find its way back to closed.
	f.fail(nil)
	deadline := time.Now().Add(2 * time.Second)
	for {
		if _, err := b.Account(ctx, "c1"); err == nil && b.State() == breaker.StateClosed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("breaker did not close after recovery; state %q", b.State())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A caller that hangs up says nothing about the store: its call must neither close a half-open breaker
// (the store may still be down) nor wipe out the failures counted so far.
func TestCanceledCallsAreNotEvidence(t *testing.T) {
	canceled := tally.Unavailable(context.Canceled, "the database")

	t.Run("half-open probe", func(t *testing.T) {
		b, f, rec := newBreaker(t, 200*time.Millisecond)
		ctx := context.Background()
		mustTrip(t, b, f)
		waitState(t, b, breaker.StateHalfOpen, 2*time.Second)
		f.fail(canceled)
		if _, err := b.Account(ctx, "c1"); !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled probe: got %v", err)
		}
		if got := b.State(); got != breaker.StateHalfOpen {
			t.Fatalf("state after a cancelled probe = %q, want half-open", got)
		}
		// The next call is a probe in its place, and it decides.
		f.fail(errDown)
		if _, err := b.Account(ctx, "c1"); !errors.Is(err, errDown) {
			t.Fatalf("second probe: got %v, want the inner store's error", err)
		}
		if got := b.State(); got != breaker.StateOpen {
			t.Fatalf("state after a failed probe = %q, want open", got)
		}
		want := []string{"closed->open", "open->half-open", "half-open->open"}
		if got := rec.get(); !slices.Equal(got, want) {
			t.Errorf("transitions = %v, want %v", got, want)
		}
	})

	t.Run("closed", func(t *testing.T) {
		b, f, _ := newBreaker(t, time.Minute)
		ctx := context.Background()
		for i := range 2 * breaker.DefaultFailures {
			f.fail(errDown)
			if i%2 == 1 {
				f.fail(canceled)
			}
			b.Account(ctx, "c1")
		}
		if got := b.State(); got != breaker.StateOpen {
			t.Fatalf("state after %d failures among cancelled calls = %q, want open", breaker.DefaultFailures, got)
		}
	})
}
