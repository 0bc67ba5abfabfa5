package breaker

import (
	"context"
	"time"

	"github.com/tally-ledger/tally"
)

// The webhook store's methods, behind the breaker.

func (s *Store) PutSubscription(ctx context.Context, sub tally.WebhookSubscription) error {
	return s.exec(func() error { return s.inner.PutSubscription(ctx, sub) })
}

func (s *Store) Subscriptions(ctx context.Context) ([]tally.WebhookSubscription, error) {
	return call(s, func() ([]tally.WebhookSubscription, error) { return s.inner.Subscriptions(ctx) })
}

func (s *Store) Subscription(ctx context.Context, id string) (tally.WebhookSubscription, error) {
	return call(s, func() (tally.WebhookSubscription, error) { return s.inner.Subscription(ctx, id) })
}

func (s *Store) DeleteSubscription(ctx context.Context, id string) error {
	return s.exec(func() error { return s.inner.DeleteSubscription(ctx, id) })
}

func (s *Store) EmitEvents(ctx context.Context, events []tally.Event) error {
	return s.exec(func() error { return s.inner.EmitEvents(ctx, events) })
}

func (s *Store) LeaseDeliveries(ctx context.Context, owner string, now, until time.Time, limit int) ([]tally.WebhookDelivery, error) {
	return call(s, func() ([]tally.WebhookDelivery, error) { return s.inner.LeaseDeliveries(ctx, owner, now, until, limit) })
}

func (s *Store) FinishDelivery(ctx context.Context, eventID, subscriptionID, owner string, a tally.DeliveryAttempt) error {
	return s.exec(func() error { return s.inner.FinishDelivery(ctx, eventID, subscriptionID, owner, a) })
}

func (s *Store) Deliveries(ctx context.Context, subscriptionID, status string, limit int) ([]tally.WebhookDelivery, error) {
	return call(s, func() ([]tally.WebhookDelivery, error) { return s.inner.Deliveries(ctx, subscriptionID, status, limit) })
}
