package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

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

// Events reported to Options.Observe: fulfillment's, and one of its own.
const (
	EventAttempt   = fulfillment.EventAttempt
	EventDelivered = fulfillment.EventDelivered
	EventFailed    = fulfillment.EventFailed
	EventDead      = fulfillment.EventDead
	EventSkipped   = "skipped" // filtered out, or the subscription is inactive or gone
)

// Options configure a worker. Store and Signer are required.
type Options struct {
	Store  tally.WebhookStore
	Signer *fulfillment.Signer
	// Config is the delivery loop's, as fulfillment's worker has it; its MaxAttempts is how many
	// deliveries are tried before an event is dead-lettered (default 10).
	fulfillment.Config
}

// Worker delivers the webhook outbox, over fulfillment's delivery loop. Run one per replica; several
// may share a store.
type Worker struct {
	opts Options
	out  *fulfillment.Outbox[job]
}

// job is a leased delivery with its subscription (zero when it was deleted meanwhile).
type job struct {
	tally.WebhookDelivery
	sub tally.WebhookSubscription
}

// NewWorker returns a worker; it panics without Store or Signer.
func NewWorker(o Options) *Worker {
	if o.Store == nil || o.Signer == nil {
		panic("webhooks: Store and Signer are required")
	}
	w := &Worker{opts: o}
	w.out = fulfillment.NewOutbox(fulfillment.Kind{Log: "webhooks", Jobs: "events", Worker: "events", MaxAttempts: 10}, o.Config, deliveries{w})
	return w
}

// Run delivers due events until ctx ends, at most Batch at once, polling less often while the store
// fails (see fulfillment.Outbox.Run).
func (w *Worker) Run(ctx context.Context) { w.out.Run(ctx) }

// RunOnce leases one batch of due deliveries, delivers them concurrently and records each outcome. It
// returns how many it leased.
func (w *Worker) RunOnce(ctx context.Context) (int, error) { return w.out.RunOnce(ctx) }

// deliveries is the webhook outbox's fulfillment.Sender.
type deliveries struct{ *Worker }

// Lease leases due deliveries and reads the subscriptions they go to.
func (w deliveries) Lease(ctx context.Context, owner string, now, until time.Time, limit int) ([]job, error) {
	due, err := w.opts.Store.LeaseDeliveries(ctx, owner, now, until, limit)
	if err != nil || len(due) == 0 {
		return nil, err
	}
	jobs := make([]job, len(due))
	for i, d := range due {
		jobs[i].WebhookDelivery = d
	}
	subs, err := w.opts.Store.Subscriptions(ctx)
	if err != nil {
		return jobs, fmt.Errorf("read subscriptions: %w", err) // the leases run out; nothing was sent
	}
	byID := map[string]tally.WebhookSubscription{}
	for _, s := range subs {
		byID[s.ID] = s
	}
	for i := range jobs {
		jobs[i].sub = byID[jobs[i].SubscriptionID]
	}
	return jobs, nil
}

// Settle skips a delivery whose subscription is inactive or gone, or whose filter does not match.
func (w deliveries) Settle(ctx context.Context, owner string, j job) bool {
	why := ""
	switch {
	case j.sub.ID == "" || !j.sub.Active:
		why = "the subscription is inactive"
	case j.sub.Filter != "":
		expr, err := filter.Compile(j.sub.Filter)
		match := false
		if err == nil {
			match, err = filter.MatchJSON(expr, j.Payload)
		}
		switch {
		case err != nil:
			why = fulfillment.Describe(errors.New("the subscription's filter fails: " + err.Error()))
		case !match:
			why = "the subscription's filter does not match"
		}
	}
	if why == "" {
		return false
	}
	w.out.Observe(EventSkipped)
	w.finish(ctx, owner, j.WebhookDelivery, tally.DeliveryAttempt{Status: tally.DeliverySkipped, Error: why, At: w.out.Clock()})
	return true
}

// Attempts is how many deliveries of the event were tried.
func (deliveries) Attempts(j job) int { return j.WebhookDelivery.Attempts }

// Request posts the event's payload, byte for byte as stored, signed with the subscription's secret.
func (w deliveries) Request(j job, attempt int) (fulfillment.Request, error) {
	secret := w.opts.Signer.SubscriptionSecret(j.sub.ID, j.sub.SecretVersion)
	return fulfillment.Request{URL: j.sub.URL, Delivery: j.EventID, Body: j.Payload,
		Header: http.Header{HeaderEvent: {j.EventType}, HeaderAttempt: {strconv.Itoa(attempt)}},
		Secret: func() (string, error) { return secret, nil }}, nil
}

// Finish records an attempt's outcome.
func (w deliveries) Finish(ctx context.Context, owner string, j job, r fulfillment.Result) {
	d := j.WebhookDelivery
	switch r.Outcome {
	case fulfillment.Delivered:
		w.finish(ctx, owner, d, tally.DeliveryAttempt{Status: tally.DeliveryDelivered, Tried: true, At: r.At})
	case fulfillment.Dead:
		w.out.Logger.Warn("webhooks: dead letter", "event", d.EventID, "subscription", d.SubscriptionID, "cause", r.Error)
		w.finish(ctx, owner, d, tally.DeliveryAttempt{Status: tally.DeliveryDead, Tried: true, Error: r.Error, At: r.At})
	default:
		w.finish(ctx, owner, d, tally.DeliveryAttempt{Status: tally.DeliveryPending, Tried: true, Error: r.Error, RetryAt: r.RetryAt, At: r.At})
	}
}

// finish records an outcome. A lost lease means another worker has the delivery now: it is logged, not
// retried.
func (w *Worker) finish(ctx context.Context, owner string, d tally.WebhookDelivery, a tally.DeliveryAttempt) {
	if err := w.opts.Store.FinishDelivery(context.WithoutCancel(ctx), d.EventID, d.SubscriptionID, owner, a); err != nil {
		w.out.Logger.Warn("webhooks: recording an attempt failed", "event", d.EventID, "subscription", d.SubscriptionID, "err", err)
	}
}
