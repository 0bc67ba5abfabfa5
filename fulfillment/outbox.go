package fulfillment

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Outbox is the delivery loop of an outbox worker, written once for the two outboxes: this package's
// redemptions and package webhooks' events. It leases due jobs, each lease under an owner token of its
// own; posts each job signed (HMAC-SHA-256, the Tally-* headers) within its lease; retries a failure
// with capped exponential backoff and full jitter; and after MaxAttempts dead-letters the job. What
// differs between outboxes (what is leased, the request of a job, how an outcome is recorded) is its
// Sender's.
type Outbox[J any] struct {
	// Config is the worker's configuration with the defaults filled in; read it, do not change it.
	Config
	kind  Kind
	send  Sender[J]
	lease atomic.Int64 // numbers the leases, so that each lease has an owner token of its own
}

// Kind tells one outbox's worker from another's in its log lines, its name and its default attempts.
type Kind struct {
	Log         string // the prefix of its log lines: "fulfillment"
	Jobs        string // what it leases, in its log lines: "redemptions"
	Worker      string // the prefix of a worker name made up when Config.Name is empty: "worker"
	MaxAttempts int    // Config.MaxAttempts when it is not set
}

// Config is what every outbox worker is configured with; zero values take the defaults.
type Config struct {
	// MaxAttempts is how many deliveries are tried before a job is dead-lettered (default: the Kind's).
	MaxAttempts int
	// Timeout bounds one delivery attempt (default 10 s).
	Timeout time.Duration
	// Backoff is the first retry's longest delay (default 30 s); each attempt doubles it, up to
	// MaxBackoff (default 1 h). The delay is drawn uniformly below it (full jitter), so that a receiver
	// that comes back is not hit by every retry at once.
	Backoff, MaxBackoff time.Duration
	// Poll is how long an idle worker waits before looking for due jobs again (default 1 s).
	Poll time.Duration
	// Batch is how many jobs a worker leases and delivers at once (default 16).
	Batch int
	// LeaseMargin is how long a lease outlasts the attempt it covers (default 30 s): clocks of replicas
	// may disagree by less than this without two workers delivering one job at once.
	LeaseMargin time.Duration
	// Client sends the deliveries (default: one that follows no redirects).
	Client *http.Client
	// Name identifies the worker in lease owners and logs (default: the Kind's prefix and random hex).
	Name    string
	Clock   func() time.Time
	Logger  *slog.Logger
	Observe func(event string) // told of the Event* of every job
}

// A Sender is the part of an outbox worker that differs from one outbox to another.
type Sender[J any] interface {
	// Lease leases up to limit due jobs to owner until until and returns them, with whatever they need
	// to be sent (a reward, a subscription). When reading that fails after the lease, it returns the
	// jobs with the error: none is delivered, and their leases run out.
	Lease(ctx context.Context, owner string, now, until time.Time, limit int) ([]J, error)
	// Settle ends a job that needs no delivery (a filtered-out event, a dead letter still to refund)
	// and reports whether it did.
	Settle(ctx context.Context, owner string, j J) bool
	// Attempts is how many deliveries of the job were tried before.
	Attempts(j J) int
	// Request is the request of the job's attempt (1 for the first). An error (nowhere to send it)
	// fails the attempt without sending anything.
	Request(j J, attempt int) (Request, error)
	// Finish records what became of an attempt and ends the lease.
	Finish(ctx context.Context, owner string, j J, r Result)
}

// Request is one attempt's request: a signed POST of Body to URL.
type Request struct {
	URL      string
	Delivery string      // the Tally-Delivery header: the same on every attempt, for receivers to dedupe by
	Header   http.Header // headers beside the ones every delivery has
	Body     []byte      // JSON
	// Secret is the receiver's signing secret (derived by a Signer); an error fails the attempt.
	Secret func() (string, error)
}

// Outcome is what became of an attempt.
type Outcome int

// The outcomes of an attempt.
const (
	Delivered Outcome = iota + 1 // the receiver answered 2xx
	Retry                        // it failed, and is tried again at Result.RetryAt
	Dead                         // it failed, and it was the last attempt
)

// Result is what a Sender records of an attempt.
type Result struct {
	Outcome Outcome
	Error   string    // why it failed: valid UTF-8, no NUL, at most 500 bytes ("" when delivered)
	RetryAt time.Time // when Outcome is Retry
	At      time.Time // when the attempt ended
}

// NewOutbox returns the loop of a worker of kind k, with c's zero values replaced by the defaults.
func NewOutbox[J any](k Kind, c Config, s Sender[J]) *Outbox[J] {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Timeout, 10*time.Second)
	def(&c.Backoff, 30*time.Second)
	def(&c.MaxBackoff, time.Hour)
	def(&c.Poll, time.Second)
	def(&c.LeaseMargin, 30*time.Second)
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = k.MaxAttempts
	}
	if c.Batch <= 0 {
		c.Batch = 16
	}
	if c.Client == nil {
		c.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if c.Name == "" {
		b := make([]byte, 6)
		if _, err := crand.Read(b); err != nil {
			panic(err)
		}
		c.Name = k.Worker + "-" + hex.EncodeToString(b)
	}
	if c.Clock == nil {
		c.Clock = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Observe == nil {
		c.Observe = func(string) {}
	}
	return &Outbox[J]{Config: c, kind: k, send: s}
}

// Run delivers due jobs until ctx ends, at most Batch at once. A slot is taken again as soon as its
// delivery ends, so that one slow or hanging receiver holds one slot, not every other receiver's
// deliveries. While the store fails, it polls less and less often (up to every 30 s), so that an outage
// is not met with a retry and a log line every second per replica.
func (o *Outbox[J]) Run(ctx context.Context) {
	slots := make(chan struct{}, o.Batch)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	failures := 0
	for ctx.Err() == nil {
		free := o.Batch - len(slots)
		var n int
		var err error
		if free > 0 {
			n, err = o.start(ctx, free, slots, &inflight)
		}
		wait := o.Poll
		switch {
		case err != nil && ctx.Err() == nil:
			if failures == 0 {
				o.Logger.Warn(o.kind.Log+": leasing due "+o.kind.Jobs+" failed", "worker", o.Name, "err", err)
			}
			failures++
			wait = min(o.Poll<<min(failures, 10), max(o.Poll, 30*time.Second))
		case err == nil && failures > 0:
			o.Logger.Info(o.kind.Log+": leasing works again", "worker", o.Name, "failures", failures)
			failures = 0
		}
		if err == nil && free > 0 && n == free {
			continue // every free slot filled: more may be due
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// RunOnce leases one batch of due jobs, delivers them concurrently and records what became of each. It
// returns how many it leased.
func (o *Outbox[J]) RunOnce(ctx context.Context) (int, error) {
	var wg sync.WaitGroup
	n, err := o.start(ctx, o.Batch, make(chan struct{}, o.Batch), &wg)
	wg.Wait()
	return n, err
}

// start leases up to limit due jobs and starts delivering each in its own goroutine, holding a slot
// until it ends. It returns how many it leased.
func (o *Outbox[J]) start(ctx context.Context, limit int, slots chan struct{}, wg *sync.WaitGroup) (int, error) {
	now := o.Clock()
	owner := o.Name + "/" + strconv.FormatInt(o.lease.Add(1), 10)
	until := now.Add(o.Timeout + o.LeaseMargin)
	jobs, err := o.send.Lease(ctx, owner, now, until, limit)
	if err != nil || len(jobs) == 0 {
		return len(jobs), err
	}
	for _, j := range jobs {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			o.handle(ctx, owner, until, j)
		})
	}
	return len(jobs), nil
}

// handle delivers one leased job and records the outcome.
func (o *Outbox[J]) handle(ctx context.Context, owner string, until time.Time, j J) {
	if o.send.Settle(ctx, owner, j) {
		return
	}
	attempt := o.send.Attempts(j) + 1
	req, err := o.send.Request(j, attempt)
	if err == nil {
		// The request must end while the lease runs, with the margin to spare.
		left := until.Sub(o.Clock()) - o.LeaseMargin
		if left <= 0 {
			return // the lease is nearly over: leave the job to the next one
		}
		o.Observe(EventAttempt)
		err = o.post(ctx, min(left, o.Timeout), req)
	}
	now := o.Clock()
	switch {
	case err == nil:
		o.Observe(EventDelivered)
		o.send.Finish(ctx, owner, j, Result{Outcome: Delivered, At: now})
	case ctx.Err() != nil:
		// Shutting down: the attempt was cut short, not refused. The lease runs out and another
		// worker (or this one, restarted) tries again, without counting this one.
	case attempt >= o.MaxAttempts:
		o.Observe(EventDead)
		o.send.Finish(ctx, owner, j, Result{Outcome: Dead, Error: Describe(err), At: now})
	default:
		o.Observe(EventFailed)
		o.send.Finish(ctx, owner, j, Result{Outcome: Retry, Error: Describe(err), RetryAt: now.Add(Backoff(o.Backoff, o.MaxBackoff, attempt)), At: now})
	}
}

// post sends one attempt, signed, and reports an error unless the receiver answered 2xx.
func (o *Outbox[J]) post(ctx context.Context, timeout time.Duration, r Request) error {
	secret, err := r.Secret()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return err
	}
	ts := o.Clock().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Tally-Webhook/1")
	req.Header.Set(HeaderDelivery, r.Delivery)
	for k, vs := range r.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(secret, ts, r.Body))
	resp, err := o.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// The start of a refusal's body goes into last_error, which only operators see: it is often the
	// receiver saying what is wrong. The rest is read too, so that the connection can be reused.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		return nil
	}
	if said := strings.Join(strings.Fields(string(head)), " "); said != "" {
		return fmt.Errorf("HTTP %s: %s", resp.Status, said)
	}
	return fmt.Errorf("HTTP %s", resp.Status)
}

// Describe turns an error into text an outbox keeps as a job's last error: valid UTF-8, no NUL, at most
// 500 bytes.
func Describe(err error) string {
	return clip(strings.ReplaceAll(strings.ToValidUTF8(err.Error(), "?"), "\x00", "?"), 500)
}

// clip cuts s to at most n bytes on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
