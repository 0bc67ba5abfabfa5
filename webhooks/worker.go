package webhooks

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

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/filter"
	"github.com/tally-ledger/tally/fulfillment"
)

// Headers of an event delivery, beside fulfillment's Tally-Delivery (the event id), Tally-Timestamp and
// Tally-Signature.
const (
	HeaderEvent   = "Tally-Event"   // the event type
	HeaderAttempt = "Tally-Attempt" // 1 for the first delivery, 2 for the first retry...
)

// Events reported to Options.Observe.
const (
	EventAttempt   = "attempt"
	EventDelivered = "delivered"
	EventFailed    = "failed"
	EventDead      = "dead"
	EventSkipped   = "skipped" // filtered out, or the subscription is inactive or gone
)

// Options configure a worker. Store and Signer are required.
type Options struct {
	Store  tally.WebhookStore
	Signer *fulfillment.Signer
	// MaxAttempts is how many deliveries are tried before an event is dead-lettered (default 10).
	MaxAttempts int
	// Timeout bounds one attempt (default 10 s); Backoff and MaxBackoff shape the retries (default 30 s
	// and 1 h), as fulfillment's do; Poll is the idle wait (default 1 s); Batch how many deliveries are
	// leased at once (default 16); LeaseMargin how long a lease outlasts its attempt (default 30 s).
	Timeout, Backoff, MaxBackoff, Poll, LeaseMargin time.Duration
	Batch                                           int
	Client                                          *http.Client
	Name                                            string
	Clock                                           func() time.Time
	Logger                                          *slog.Logger
	Observe                                         func(event string)
}

// Worker delivers the webhook outbox. Run one per replica; several may share a store.
type Worker struct {
	opts  Options
	lease atomic.Int64
}

// NewWorker returns a worker; it panics without Store or Signer.
func NewWorker(o Options) *Worker {
	if o.Store == nil || o.Signer == nil {
		panic("webhooks: Store and Signer are required")
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
		o.MaxAttempts = 10
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
		o.Name = "events-" + hex.EncodeToString(b)
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

// Run delivers due events until ctx ends, polling less often while the store fails.
func (w *Worker) Run(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		n, err := w.RunOnce(ctx)
		wait := w.opts.Poll
		switch {
		case err != nil && ctx.Err() == nil:
			if failures == 0 {
				w.opts.Logger.Warn("webhooks: leasing due events failed", "worker", w.opts.Name, "err", err)
			}
			failures++
			wait = min(w.opts.Poll<<min(failures, 10), max(w.opts.Poll, 30*time.Second))
		case err == nil && failures > 0:
			w.opts.Logger.Info("webhooks: leasing works again", "worker", w.opts.Name, "failures", failures)
			failures = 0
		}
		if err == nil && n == w.opts.Batch {
			continue
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		t.Stop()
	}
}

// RunOnce leases one batch of due deliveries, delivers them concurrently and records each outcome. It
// returns how many it leased.
func (w *Worker) RunOnce(ctx context.Context) (int, error) {
	now := w.opts.Clock()
	owner := w.opts.Name + "/" + strconv.FormatInt(w.lease.Add(1), 10)
	until := now.Add(w.opts.Timeout + w.opts.LeaseMargin)
	due, err := w.opts.Store.LeaseDeliveries(ctx, owner, now, until, w.opts.Batch)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	subs, err := w.opts.Store.Subscriptions(ctx)
	if err != nil {
		return len(due), fmt.Errorf("read subscriptions: %w", err) // the leases run out; nothing was sent
	}
	byID := map[string]tally.WebhookSubscription{}
	for _, s := range subs {
		byID[s.ID] = s
	}
	var wg sync.WaitGroup
	for _, d := range due {
		wg.Go(func() { w.handle(ctx, owner, until, d, byID[d.SubscriptionID]) })
	}
	wg.Wait()
	return len(due), nil
}

func (w *Worker) handle(ctx context.Context, owner string, until time.Time, d tally.WebhookDelivery, sub tally.WebhookSubscription) {
	now := w.opts.Clock()
	if sub.ID == "" || !sub.Active {
		w.opts.Observe(EventSkipped)
		w.finish(ctx, owner, d, tally.DeliveryAttempt{Status: tally.DeliverySkipped, Error: "the subscription is inactive", At: now})
		return
	}
	if sub.Filter != "" {
		expr, err := filter.Compile(sub.Filter)
		match := false
		if err == nil {
			match, err = filter.MatchJSON(expr, d.Payload)
		}
		if err != nil || !match {
			why := "the subscription's filter does not match"
			if err != nil {
				why = "the subscription's filter fails: " + err.Error()
			}
			w.opts.Observe(EventSkipped)
			w.finish(ctx, owner, d, tally.DeliveryAttempt{Status: tally.DeliverySkipped, Error: clip(why, 500), At: now})
			return
		}
	}
	left := until.Sub(now) - w.opts.LeaseMargin
	if left <= 0 {
		return // the lease is nearly over: leave the delivery to the next one
	}
	attempt := d.Attempts + 1
	w.opts.Observe(EventAttempt)
	err := w.deliver(ctx, min(left, w.opts.Timeout), sub, d, attempt)
	now = w.opts.Clock()
	switch {
	case err == nil:
		w.opts.Observe(EventDelivered)
		w.finish(ctx, owner, d, tally.DeliveryAttempt{Status: tally.DeliveryDelivered, Tried: true, At: now})
	case ctx.Err() != nil:
		// Shutting down: the lease runs out and the delivery is tried again, uncounted.
	case attempt >= w.opts.MaxAttempts:
		w.opts.Observe(EventDead)
		w.opts.Logger.Warn("webhooks: dead letter", "event", d.EventID, "subscription", d.SubscriptionID, "cause", err)
		w.finish(ctx, owner, d, tally.DeliveryAttempt{Status: tally.DeliveryDead, Tried: true, Error: describe(err), At: now})
	default:
		w.opts.Observe(EventFailed)
		w.finish(ctx, owner, d, tally.DeliveryAttempt{Status: tally.DeliveryPending, Tried: true, Error: describe(err),
			RetryAt: now.Add(fulfillment.Backoff(w.opts.Backoff, w.opts.MaxBackoff, attempt)), At: now})
	}
}

func (w *Worker) finish(ctx context.Context, owner string, d tally.WebhookDelivery, a tally.DeliveryAttempt) {
	if err := w.opts.Store.FinishDelivery(context.WithoutCancel(ctx), d.EventID, d.SubscriptionID, owner, a); err != nil {
		w.opts.Logger.Warn("webhooks: recording an attempt failed", "event", d.EventID, "subscription", d.SubscriptionID, "err", err)
	}
}

// deliver posts the event's payload, byte for byte as stored, signed with the subscription's secret.
func (w *Worker) deliver(ctx context.Context, timeout time.Duration, sub tally.WebhookSubscription, d tally.WebhookDelivery, attempt int) error {
	secret := w.opts.Signer.SubscriptionSecret(sub.ID, sub.SecretVersion)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, sub.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return err
	}
	ts := w.opts.Clock().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Tally-Webhook/1")
	req.Header.Set(fulfillment.HeaderDelivery, d.EventID)
	req.Header.Set(HeaderEvent, d.EventType)
	req.Header.Set(HeaderAttempt, strconv.Itoa(attempt))
	req.Header.Set(fulfillment.HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(fulfillment.HeaderSignature, fulfillment.Sign(secret, ts, d.Payload))
	resp, err := w.opts.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
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

func describe(err error) string {
	return clip(strings.ReplaceAll(strings.ToValidUTF8(err.Error(), "?"), "\x00", "?"), 500)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
