// Package fulfillment delivers redeemed rewards: a worker in every replica leases the redemptions that
// wait in the outbox (tally.FulfillmentStore), posts each to its reward's webhook (or, for an email
// reward without one, to the mailer endpoint) signed with HMAC-SHA-256, retries failures with capped
// exponential backoff and full jitter, and after the configured attempts dead-letters the redemption and,
// unless told not to, refunds it through a ledger reversal.
//
// Delivery is at least once. A lease guarantees that no two workers deliver one redemption at the same
// time, but a receiver can still see it twice: when it processed a request whose answer never reached
// the worker, or when a worker stalled past its lease and another took over. Exactly once is impossible
// across a network; instead every attempt carries the same delivery id (the receipt id, header
// Tally-Delivery and field delivery_id), and the receiver makes its effect idempotent by it.
package fulfillment

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
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

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// RefundChannel is the idempotency namespace of refunds; a refund's key is "refund:" + the receipt id,
// so that a refund retried (or raced by two workers) is applied once.
const RefundChannel = "fulfillment"

// Events reported to Options.Observe.
const (
	EventAttempt   = "attempt"   // a delivery was tried
	EventDelivered = "delivered" // the receiver answered 2xx
	EventFailed    = "failed"    // a delivery failed and will be tried again
	EventDead      = "dead"      // a redemption ran out of attempts
	EventRefunded  = "refunded"  // a dead letter was refunded
)

// Catalog gives the rewards, for their webhook URLs (tally.Store is one).
type Catalog interface {
	Rewards(ctx context.Context) ([]tally.Reward, error)
}

// Options configure a worker. Jobs, Catalog, Ledger and Signer are required; zero values of the others
// take the defaults.
type Options struct {
	Jobs    tally.FulfillmentStore
	Catalog Catalog
	Ledger  *ledger.Service // refunds dead letters
	Signer  *Signer
	// MailerURL receives the deliveries of email rewards that have no webhook URL of their own.
	MailerURL string
	// MaxAttempts is how many deliveries are tried before a redemption is dead-lettered (default 8).
	MaxAttempts int
	// KeepDead leaves dead letters dead instead of refunding them, for an operator to retry or refund.
	KeepDead bool
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
	// Name identifies the worker in lease owners and logs (default: random).
	Name    string
	Clock   func() time.Time
	Logger  *slog.Logger
	Observe func(event string)
}

// Worker delivers due redemptions. Run one per replica; several may run on one store.
type Worker struct {
	opts  Options
	lease atomic.Int64 // numbers the leases, so that each lease has an owner token of its own
}

// New returns a worker. It panics when a required option is missing.
func New(o Options) *Worker {
	if o.Jobs == nil || o.Catalog == nil || o.Ledger == nil || o.Signer == nil {
		panic("fulfillment: Jobs, Catalog, Ledger and Signer are required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.Timeout, 10*time.Second)
	def(&o.Backoff, 30*time.Second)
	def(&o.MaxBackoff, time.Hour)
	def(&o.Poll, time.Second)
	def(&o.LeaseMargin, 30*time.Second)
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 8
	}
	if o.Batch <= 0 {
		o.Batch = 16
	}
	if o.Client == nil {
		o.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if o.Name == "" {
		b := make([]byte, 6)
		if _, err := crand.Read(b); err != nil {
			panic(err)
		}
		o.Name = "worker-" + hex.EncodeToString(b)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Observe == nil {
		o.Observe = func(string) {}
	}
	return &Worker{opts: o}
}

// Run delivers due jobs until ctx ends, at most Batch at once. A slot is taken again as soon as its
// delivery ends, so that one slow or hanging receiver holds one slot, not every other partner's
// deliveries. While the store fails, it polls less and less often (up to every 30 s), so that an outage
// is not met with a retry and a log line every second per replica.
func (w *Worker) Run(ctx context.Context) {
	slots := make(chan struct{}, w.opts.Batch)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	failures := 0
	for ctx.Err() == nil {
		free := w.opts.Batch - len(slots)
		var n int
		var err error
		if free > 0 {
			n, err = w.start(ctx, free, slots, &inflight)
		}
		wait := w.opts.Poll
		switch {
		case err != nil && ctx.Err() == nil:
			if failures == 0 {
				w.opts.Logger.Warn("fulfillment: leasing due redemptions failed", "worker", w.opts.Name, "err", err)
			}
			failures++
			wait = min(w.opts.Poll<<min(failures, 10), max(w.opts.Poll, 30*time.Second))
		case err == nil && failures > 0:
			w.opts.Logger.Info("fulfillment: leasing works again", "worker", w.opts.Name, "failures", failures)
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
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	var wg sync.WaitGroup
	n, err := w.start(ctx, w.opts.Batch, make(chan struct{}, w.opts.Batch), &wg)
	wg.Wait()
	return n, err
}

// start leases up to limit due jobs and starts delivering each in its own goroutine, holding a slot
// until it ends. It returns how many it leased.
func (w *Worker) start(ctx context.Context, limit int, slots chan struct{}, wg *sync.WaitGroup) (int, error) {
	now := w.opts.Clock()
	owner := w.opts.Name + "/" + strconv.FormatInt(w.lease.Add(1), 10)
	until := now.Add(w.opts.Timeout + w.opts.LeaseMargin)
	jobs, err := w.opts.Jobs.LeaseRedemptions(ctx, owner, now, until, limit)
	if err != nil || len(jobs) == 0 {
		return 0, err
	}
	rewards := map[string]tally.Reward{}
	all, err := w.opts.Catalog.Rewards(ctx)
	if err != nil {
		// The leases run out and the jobs are taken again; nothing was delivered.
		return len(jobs), fmt.Errorf("read the catalog: %w", err)
	}
	for _, r := range all {
		rewards[r.ID] = r
	}
	for _, j := range jobs {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			w.handle(ctx, owner, until, j, rewards[j.RewardID])
		})
	}
	return len(jobs), nil
}

// handle delivers one leased job and records the outcome.
func (w *Worker) handle(ctx context.Context, owner string, until time.Time, r tally.Redemption, reward tally.Reward) {
	if r.Attempts >= w.opts.MaxAttempts {
		// Out of attempts already: a dead letter whose refund failed before.
		w.deadLetter(ctx, owner, r, r.LastError, false)
		return
	}
	attempt := r.Attempts + 1
	endpoint, err := w.endpoint(r, reward)
	if err == nil {
		// The request must end while the lease runs, with the margin to spare.
		left := until.Sub(w.opts.Clock()) - w.opts.LeaseMargin
		if left <= 0 {
			return // the lease is nearly over: leave the job to the next one
		}
		w.opts.Observe(EventAttempt)
		err = w.deliver(ctx, min(left, w.opts.Timeout), endpoint, r, reward, attempt)
	}
	now := w.opts.Clock()
	switch {
	case err == nil:
		w.opts.Observe(EventDelivered)
		w.finish(ctx, owner, r, tally.Attempt{Status: tally.FulfillmentDelivered, Tried: true, At: now})
	case ctx.Err() != nil:
		// Shutting down: the attempt was cut short, not refused. The lease runs out and another
		// worker (or this one, restarted) tries again, without counting this one.
	case attempt >= w.opts.MaxAttempts:
		w.deadLetter(ctx, owner, r, describe(err), true)
	default:
		w.opts.Observe(EventFailed)
		w.finish(ctx, owner, r, tally.Attempt{Status: tally.FulfillmentPending, Tried: true, Error: describe(err),
			RetryAt: now.Add(w.backoff(attempt)), At: now})
	}
}

// deadLetter ends a redemption that ran out of attempts: refunded (points and stock back, by a reversal
// of its transaction) unless KeepDead, else dead. A refund that fails for a transient reason is tried
// again later; one the ledger refuses (the account was closed, say) leaves the redemption dead, saying
// why, for an operator.
func (w *Worker) deadLetter(ctx context.Context, owner string, r tally.Redemption, cause string, tried bool) {
	now := w.opts.Clock()
	if tried {
		w.opts.Observe(EventDead)
		w.opts.Logger.Warn("fulfillment: dead letter", "receipt", r.ReceiptID, "reward", r.RewardID, "refund", !w.opts.KeepDead, "cause", cause)
	}
	if w.opts.KeepDead {
		w.finish(ctx, owner, r, tally.Attempt{Status: tally.FulfillmentDead, Tried: tried, Error: cause, At: now})
		return
	}
	cause, _, _ = strings.Cut(cause, refundPending) // from an earlier try of this refund
	// Identity makes every try of one refund the same request, whatever its reason says: a try whose
	// answer was lost, or a second worker's, replays the first instead of being refused.
	_, err := w.opts.Ledger.Reverse(ctx, ledger.Request{
		Channel: RefundChannel, Internal: true, Key: "refund:" + r.ReceiptID, Identity: "refund:" + r.ReceiptID, ReversesSeq: r.TxSeq,
		Actor: "fulfillment", Reason: clip("fulfillment failed: "+cause, 480),
	})
	switch code := tally.ErrorCode(err); {
	case err == nil, code == tally.EALREADY: // refunded now, or reversed by hand meanwhile
		w.opts.Observe(EventRefunded)
		w.finish(ctx, owner, r, tally.Attempt{Status: tally.FulfillmentRefunded, Tried: tried, Error: cause, At: now})
	case code == tally.EUNAVAILABLE || ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		w.finish(ctx, owner, r, tally.Attempt{Status: tally.FulfillmentPending, Tried: tried,
			Error: clip(cause+refundPending+tally.ErrorMessage(err), 1000), RetryAt: now.Add(w.backoff(1)), At: now})
	default:
		w.opts.Logger.Error("fulfillment: refund of a dead letter refused", "receipt", r.ReceiptID, "err", err)
		w.finish(ctx, owner, r, tally.Attempt{Status: tally.FulfillmentDead, Tried: tried,
			Error: clip(cause+"; refund refused: "+tally.ErrorMessage(err), 1000), At: now})
	}
}

// refundPending ends the last error of a dead letter whose refund is still to be made.
const refundPending = "; refund not yet made: "

// finish records an outcome. A lost lease means another worker has the job now: it is logged, not
// retried.
func (w *Worker) finish(ctx context.Context, owner string, r tally.Redemption, a tally.Attempt) {
	if err := w.opts.Jobs.FinishAttempt(context.WithoutCancel(ctx), r.ReceiptID, owner, a); err != nil {
		w.opts.Logger.Warn("fulfillment: recording an attempt failed", "receipt", r.ReceiptID, "status", a.Status, "err", err)
	}
}

// endpoint is where a redemption is delivered.
func (w *Worker) endpoint(r tally.Redemption, reward tally.Reward) (string, error) {
	switch {
	case reward.WebhookURL != "":
		return reward.WebhookURL, nil
	case r.Method == tally.MethodEmail && w.opts.MailerURL != "":
		return w.opts.MailerURL, nil
	case r.Method == tally.MethodEmail:
		return "", fmt.Errorf("reward %q has no webhook URL and no mailer URL is configured (--mailer-url)", r.RewardID)
	case reward.ID == "":
		return "", fmt.Errorf("reward %q is no longer in the catalog", r.RewardID)
	}
	return "", fmt.Errorf("reward %q has no webhook URL", r.RewardID)
}

// backoff is the delay before the attempt after attempt: drawn uniformly from [0, min(MaxBackoff,
// Backoff·2^(attempt-1))] ("full jitter").
func (w *Worker) backoff(attempt int) time.Duration {
	return Backoff(w.opts.Backoff, w.opts.MaxBackoff, attempt)
}

// Payload is the JSON body of a delivery.
type Payload struct {
	DeliveryID   string    `json:"delivery_id"` // the receipt id: dedupe by it
	ReceiptID    string    `json:"receipt_id"`
	RewardID     string    `json:"reward_id"`
	RewardName   string    `json:"reward_name"`
	Points       int64     `json:"points"`
	Method       string    `json:"method"`
	CustomerHash string    `json:"customer_hash"` // th_ and the customer hash, as the API shows it
	CouponCode   string    `json:"coupon_code,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	Attempt      int       `json:"attempt"` // 1 for the first delivery, 2 for the first retry...
}

// deliver posts one attempt and reports an error unless the receiver answered 2xx.
func (w *Worker) deliver(ctx context.Context, timeout time.Duration, endpoint string, r tally.Redemption, reward tally.Reward, attempt int) error {
	secret, err := w.opts.Signer.Secret(endpoint)
	if err != nil {
		return err
	}
	body, err := json.Marshal(Payload{
		DeliveryID: r.ReceiptID, ReceiptID: r.ReceiptID, RewardID: r.RewardID, RewardName: reward.Name, Points: r.Points,
		Method: r.Method, CustomerHash: "th_" + r.AccountID, CouponCode: r.CouponCode, CreatedAt: r.CreatedAt, Attempt: attempt,
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	ts := w.opts.Clock().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Tally-Webhook/1")
	req.Header.Set(HeaderDelivery, r.ReceiptID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(secret, ts, body))
	resp, err := w.opts.Client.Do(req)
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

// describe turns a delivery error into text the store keeps: valid UTF-8, no NUL, bounded.
func describe(err error) string {
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
