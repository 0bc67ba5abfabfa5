// Package webhooks sends events out: subscriptions (a URL, event types, an optional filter) and a worker
// that delivers the webhook outbox. Events are written to the outbox by the ledger in the transaction of
// the write that causes them (tally.WriteTx.InsertEvents), one delivery per subscription; the worker
// runs fulfillment's delivery loop (fulfillment.Outbox: the same leases, headers, HMAC-SHA-256
// signature and verification, the same capped exponential backoff with full jitter), delivering each at
// least once, with the event id as the delivery id for receivers to dedupe by.
package webhooks

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/filter"
	"github.com/tally-ledger/tally/fulfillment"
)

// MaxExpiringDays bounds how far ahead points.expiring_soon may warn.
const MaxExpiringDays = 366

// Subscriptions administers webhook subscriptions.
type Subscriptions struct {
	Store  tally.WebhookStore
	Signer *fulfillment.Signer
	Clock  func() time.Time // default time.Now
}

func (s *Subscriptions) now() time.Time {
	if s.Clock != nil {
		return s.Clock().UTC()
	}
	return time.Now().UTC()
}

// Secret returns a subscription's signing secret: what its receiver verifies deliveries with.
func (s *Subscriptions) Secret(sub tally.WebhookSubscription) string {
	return s.Signer.SubscriptionSecret(sub.ID, sub.SecretVersion)
}

// Validate checks a subscription's URL, event types, filter and expiring_days. EINVALID names the field.
func Validate(sub tally.WebhookSubscription) error {
	if _, err := fulfillment.Origin(sub.URL); err != nil {
		return tally.Errorf(tally.EINVALID, "url: %v", err)
	}
	if err := tally.CheckText("url", sub.URL); err != nil || len(sub.URL) > 2000 {
		return tally.Errorf(tally.EINVALID, "url must be valid text of at most 2000 bytes")
	}
	if len(sub.EventTypes) == 0 {
		return tally.Errorf(tally.EINVALID, "event_types must name at least one of %v", tally.EventTypes)
	}
	seen := map[string]bool{}
	for _, t := range sub.EventTypes {
		if !tally.ValidEventType(t) {
			return tally.Errorf(tally.EINVALID, "unknown event type %q: the types are %v", t, tally.EventTypes)
		}
		if seen[t] {
			return tally.Errorf(tally.EINVALID, "event type %q is given twice", t)
		}
		seen[t] = true
	}
	switch {
	case seen[tally.EventPointsExpiringSoon] && (sub.ExpiringDays < 1 || sub.ExpiringDays > MaxExpiringDays):
		return tally.Errorf(tally.EINVALID, "expiring_days must be from 1 to %d for %s: how many days ahead to warn", MaxExpiringDays, tally.EventPointsExpiringSoon)
	case !seen[tally.EventPointsExpiringSoon] && sub.ExpiringDays != 0:
		return tally.Errorf(tally.EINVALID, "expiring_days applies to %s only", tally.EventPointsExpiringSoon)
	}
	if sub.Filter != "" {
		if err := tally.CheckText("filter", sub.Filter); err != nil {
			return err
		}
		if _, err := filter.Compile(sub.Filter); err != nil {
			return tally.Errorf(tally.EINVALID, "filter: %v", err)
		}
	}
	return nil
}

// Create stores a new subscription, active, and returns it with its secret.
func (s *Subscriptions) Create(ctx context.Context, sub tally.WebhookSubscription) (tally.WebhookSubscription, string, error) {
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		return sub, "", err
	}
	now := s.now()
	sub.ID, sub.SecretVersion, sub.Active, sub.CreatedAt, sub.UpdatedAt = "whs_"+hex.EncodeToString(b), 1, true, now, now
	if err := Validate(sub); err != nil {
		return sub, "", err
	}
	if err := s.Store.PutSubscription(ctx, sub); err != nil {
		return sub, "", err
	}
	return sub, s.Secret(sub), nil
}

// Patch is a change to a subscription; nil fields are left as they are.
type Patch struct {
	URL          *string   `json:"url"`
	EventTypes   *[]string `json:"event_types"`
	Filter       *string   `json:"filter"`
	ExpiringDays *int      `json:"expiring_days"`
	Active       *bool     `json:"active"`
}

// Update applies p to the subscription id. ENOTFOUND when absent.
func (s *Subscriptions) Update(ctx context.Context, id string, p Patch) (tally.WebhookSubscription, error) {
	sub, err := s.Store.Subscription(ctx, id)
	if err != nil {
		return sub, err
	}
	if p.URL != nil {
		sub.URL = *p.URL
	}
	if p.EventTypes != nil {
		sub.EventTypes = *p.EventTypes
	}
	if p.Filter != nil {
		sub.Filter = *p.Filter
	}
	if p.ExpiringDays != nil {
		sub.ExpiringDays = *p.ExpiringDays
	}
	if p.Active != nil {
		sub.Active = *p.Active
	}
	if err := Validate(sub); err != nil {
		return sub, err
	}
	sub.UpdatedAt = s.now()
	return sub, s.Store.PutSubscription(ctx, sub)
}

// RotateSecret gives the subscription a new secret and returns it. Deliveries signed from then on use
// it; the receiver should accept both for a while (Tally-Signature may be checked against either).
func (s *Subscriptions) RotateSecret(ctx context.Context, id string) (tally.WebhookSubscription, string, error) {
	sub, err := s.Store.Subscription(ctx, id)
	if err != nil {
		return sub, "", err
	}
	sub.SecretVersion++
	sub.UpdatedAt = s.now()
	if err := s.Store.PutSubscription(ctx, sub); err != nil {
		return sub, "", err
	}
	return sub, s.Secret(sub), nil
}
