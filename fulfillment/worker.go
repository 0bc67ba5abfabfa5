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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

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
	// KeepDead leaves dead letters dead instead of refunding them, for an operator to retry or refund.
	KeepDead bool
	// Config is the delivery loop's; its MaxAttempts is how many deliveries are tried before a
	// redemption is dead-lettered (default 8).
	Config
}

// Worker delivers due redemptions. Run one per replica; several may run on one store.
type Worker struct {
	opts Options
	out  *Outbox[job]
}

// job is a leased redemption with the reward it redeemed (zero when the reward left the catalog).
type job struct {
	tally.Redemption
	reward tally.Reward
}

// New returns a worker. It panics when a required option is missing.
func New(o Options) *Worker {
	if o.Jobs == nil || o.Catalog == nil || o.Ledger == nil || o.Signer == nil {
		panic("fulfillment: Jobs, Catalog, Ledger and Signer are required")
	}
	w := &Worker{opts: o}
	w.out = NewOutbox(Kind{Log: "fulfillment", Jobs: "redemptions", Worker: "worker", MaxAttempts: 8}, o.Config, redemptions{w})
	return w
}

// Run delivers due redemptions until ctx ends, at most Batch at once (see Outbox.Run).
func (w *Worker) Run(ctx context.Context) { w.out.Run(ctx) }

// RunOnce leases one batch of due jobs, delivers them concurrently and records what became of each. It
// returns how many it leased.
func (w *Worker) RunOnce(ctx context.Context) (int, error) { return w.out.RunOnce(ctx) }

// redemptions is the fulfillment outbox's Sender.
type redemptions struct{ *Worker }

// Lease leases due redemptions and reads the catalog for their rewards.
func (w redemptions) Lease(ctx context.Context, owner string, now, until time.Time, limit int) ([]job, error) {
	rs, err := w.opts.Jobs.LeaseRedemptions(ctx, owner, now, until, limit)
	if err != nil || len(rs) == 0 {
		return nil, err
	}
	jobs := make([]job, len(rs))
	for i, r := range rs {
		jobs[i].Redemption = r
	}
	all, err := w.opts.Catalog.Rewards(ctx)
	if err != nil {
		// The leases run out and the jobs are taken again; nothing was delivered.
		return jobs, fmt.Errorf("read the catalog: %w", err)
	}
	rewards := map[string]tally.Reward{}
	for _, r := range all {
		rewards[r.ID] = r
	}
	for i := range jobs {
		jobs[i].reward = rewards[jobs[i].RewardID]
	}
	return jobs, nil
}

// Settle refunds a redemption that is out of attempts already: a dead letter whose refund failed before.
func (w redemptions) Settle(ctx context.Context, owner string, j job) bool {
	if j.Attempts < w.out.MaxAttempts {
		return false
	}
	w.deadLetter(ctx, owner, j.Redemption, j.LastError, false)
	return true
}

// Attempts is how many deliveries of the redemption were tried.
func (redemptions) Attempts(j job) int { return j.Redemption.Attempts }

// Request posts the Payload to the reward's receiver, signed with that receiver's secret.
func (w redemptions) Request(j job, attempt int) (Request, error) {
	endpoint, err := w.endpoint(j.Redemption, j.reward)
	if err != nil {
		return Request{}, err
	}
	r := j.Redemption
	body, err := json.Marshal(Payload{
		DeliveryID: r.ReceiptID, ReceiptID: r.ReceiptID, RewardID: r.RewardID, RewardName: j.reward.Name, Points: r.Points,
		Method: r.Method, CustomerHash: "th_" + r.AccountID, CouponCode: r.CouponCode, CreatedAt: r.CreatedAt, Attempt: attempt,
	})
	if err != nil {
		return Request{}, err
	}
	return Request{URL: endpoint, Delivery: r.ReceiptID, Body: body,
		Secret: func() (string, error) { return w.opts.Signer.Secret(endpoint) }}, nil
}

// Finish records an attempt's outcome; a dead letter is refunded unless KeepDead.
func (w redemptions) Finish(ctx context.Context, owner string, j job, r Result) {
	switch r.Outcome {
	case Delivered:
		w.finish(ctx, owner, j.Redemption, tally.Attempt{Status: tally.FulfillmentDelivered, Tried: true, At: r.At})
	case Dead:
		w.deadLetter(ctx, owner, j.Redemption, r.Error, true)
	default:
		w.finish(ctx, owner, j.Redemption, tally.Attempt{Status: tally.FulfillmentPending, Tried: true, Error: r.Error,
			RetryAt: r.RetryAt, At: r.At})
	}
}

// deadLetter ends a redemption that ran out of attempts (tried: with the attempt just made): refunded
// (points and stock back, by a reversal of its transaction) unless KeepDead, else dead. A refund that fails for a transient reason is tried
// again later; one the ledger refuses (the account was closed, say) leaves the redemption dead, saying
// why, for an operator.
func (w *Worker) deadLetter(ctx context.Context, owner string, r tally.Redemption, cause string, tried bool) {
	now := w.out.Clock()
	if tried {
		w.out.Logger.Warn("fulfillment: dead letter", "receipt", r.ReceiptID, "reward", r.RewardID, "refund", !w.opts.KeepDead, "cause", cause)
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
		w.out.Observe(EventRefunded)
		w.finish(ctx, owner, r, tally.Attempt{Status: tally.FulfillmentRefunded, Tried: tried, Error: cause, At: now})
	case code == tally.EUNAVAILABLE || ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded):
		w.finish(ctx, owner, r, tally.Attempt{Status: tally.FulfillmentPending, Tried: tried,
			Error: clip(cause+refundPending+tally.ErrorMessage(err), 1000), RetryAt: now.Add(Backoff(w.out.Backoff, w.out.MaxBackoff, 1)), At: now})
	default:
		w.out.Logger.Error("fulfillment: refund of a dead letter refused", "receipt", r.ReceiptID, "err", err)
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
		w.out.Logger.Warn("fulfillment: recording an attempt failed", "receipt", r.ReceiptID, "status", a.Status, "err", err)
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
