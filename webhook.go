package tally

import (
	"context"
	"encoding/json"
	"time"
)

// Event types delivered to webhook subscriptions.
const (
	EventPointsEarned       = "points.earned"        // an accrual credited a customer
	EventPointsRedeemed     = "points.redeemed"      // a redemption debited a customer
	EventPointsExpiringSoon = "points.expiring_soon" // points will expire in a subscription's N days
	EventPointsExpired      = "points.expired"       // an expiry debited a customer
	EventTierChanged        = "tier.changed"         // a customer's tier went up or down
)

// EventTypes lists every event type, in the order documented.
var EventTypes = []string{EventPointsEarned, EventPointsRedeemed, EventPointsExpiringSoon, EventPointsExpired, EventTierChanged}

// ValidEventType reports whether t is a known event type.
func ValidEventType(t string) bool {
	for _, x := range EventTypes {
		if x == t {
			return true
		}
	}
	return false
}

// Event is one event out: written to the webhook outbox in the same database transaction as the ledger
// write that causes it (WriteTx.InsertEvents), so that an event is delivered if and only if its cause
// committed. Each subscription of its type gets a delivery of its own.
type Event struct {
	// ID is the event's identity, the same for every subscriber and every retry (receivers dedupe by
	// it): derived from its cause, so that writing it twice writes it once.
	ID        string
	Type      string
	AccountID string // the customer account it concerns ("" for none)
	TxSeq     int64  // the transaction that caused it (0 for none)
	// Days, for points.expiring_soon, is how many days ahead the warning is: it goes to the
	// subscriptions that asked for that many (WebhookSubscription.ExpiringDays).
	Days      int
	Payload   json.RawMessage // the JSON body delivered
	CreatedAt time.Time
}

// WebhookSubscription asks for events of some types to be posted to a URL, signed with the
// subscription's secret (derived from the ledger's webhook key, the id and SecretVersion: nothing secret
// is stored), and optionally only those whose payload matches Filter (package filter's language).
type WebhookSubscription struct {
	ID            string    `json:"id"`
	URL           string    `json:"url"`
	EventTypes    []string  `json:"event_types"`
	Filter        string    `json:"filter,omitempty"`
	ExpiringDays  int       `json:"expiring_days,omitempty"` // for points.expiring_soon: how many days ahead
	SecretVersion int       `json:"secret_version"`
	Active        bool      `json:"active"`
	CreatedAt     time.Time `json:"created_at"`
	UpdatedAt     time.Time `json:"updated_at"`
}

// Delivery states of the webhook outbox.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliverySkipped   = "skipped" // the subscription's filter did not match, or it was deactivated
	DeliveryDead      = "dead"    // out of attempts
)

// WebhookDelivery is one event to deliver to one subscription.
type WebhookDelivery struct {
	EventID        string          `json:"event_id"`
	SubscriptionID string          `json:"subscription_id"`
	EventType      string          `json:"event_type"`
	AccountID      string          `json:"-"`
	Payload        json.RawMessage `json:"payload"`
	Status         string          `json:"status"`
	Attempts       int             `json:"attempts"`
	NextAttemptAt  time.Time       `json:"next_attempt_at"`
	LastError      string          `json:"last_error,omitempty"`
	CreatedAt      time.Time       `json:"created_at"`
	UpdatedAt      time.Time       `json:"updated_at"`
}

// DeliveryAttempt is what FinishDelivery records.
type DeliveryAttempt struct {
	Status  string    // DeliveryPending (try again at RetryAt), DeliveryDelivered, DeliverySkipped or DeliveryDead
	Tried   bool      // a request was sent: Attempts grows by one
	Error   string    // LastError
	RetryAt time.Time // for DeliveryPending
	At      time.Time
}

// WebhookStore keeps webhook subscriptions and the outbox of their deliveries (the events themselves
// are written by WriteTx.InsertEvents, inside ledger writes). Leases work as FulfillmentStore's do.
type WebhookStore interface {
	// PutSubscription inserts or replaces a subscription.
	PutSubscription(ctx context.Context, s WebhookSubscription) error
	// Subscriptions lists subscriptions by id; Subscription returns one (ENOTFOUND when absent).
	Subscriptions(ctx context.Context) ([]WebhookSubscription, error)
	Subscription(ctx context.Context, id string) (WebhookSubscription, error)
	// DeleteSubscription deletes a subscription and its undelivered deliveries. ENOTFOUND when absent.
	DeleteSubscription(ctx context.Context, id string) error
	// EmitEvents writes events caused by no ledger write (a job's warnings: points.expiring_soon), in one
	// transaction; an event already written (same id and subscription) is left as it was.
	EmitEvents(ctx context.Context, events []Event) error
	// LeaseDeliveries takes up to limit pending, due, unleased deliveries, oldest due first, and leases
	// them to owner until until. Concurrent callers never receive the same delivery while its lease runs.
	LeaseDeliveries(ctx context.Context, owner string, now, until time.Time, limit int) ([]WebhookDelivery, error)
	// FinishDelivery records an attempt and ends the lease, while owner still holds it and the delivery
	// is pending; otherwise ECONFLICT. ENOTFOUND when the delivery does not exist.
	FinishDelivery(ctx context.Context, eventID, subscriptionID, owner string, a DeliveryAttempt) error
	// Deliveries lists the deliveries of a subscription with a status ("" for any), newest first.
	Deliveries(ctx context.Context, subscriptionID, status string, limit int) ([]WebhookDelivery, error)
}
