package postgres

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/internal/outboxtable"
)

// insertEventsSQL fans events out to the active subscriptions of their type in one statement. A
// subscription committed before the ledger write's statement runs gets the event; one committed after
// does not, as with any row the write does not see.
const insertEventsSQL = `INSERT INTO webhook_deliveries
		(event_id, subscription_id, event_type, account_id, tx_seq, payload, status, next_attempt_at, created_at, updated_at)
	SELECT e.id, s.id, e.type, e.account, NULLIF(e.seq, 0), e.payload, 'pending', e.at, e.at, e.at
	FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::timestamptz[], $7::int[])
		AS e(id, type, account, seq, payload, at, days)
	JOIN webhook_subscriptions s ON s.active
		AND position(' ' || e.type || ' ' IN ' ' || s.event_types || ' ') > 0
		AND (e.type <> 'points.expiring_soon' OR s.expiring_days = e.days)
	ON CONFLICT (event_id, subscription_id) DO NOTHING`

func eventArgs(events []tally.Event) []any {
	ids := make([]string, len(events))
	types := make([]string, len(events))
	accounts := make([]string, len(events))
	seqs := make([]int64, len(events))
	payloads := make([]string, len(events))
	ats := make([]time.Time, len(events))
	days := make([]int32, len(events))
	for i, e := range events {
		ids[i], types[i], accounts[i], seqs[i] = e.ID, e.Type, e.AccountID, e.TxSeq
		payloads[i], ats[i], days[i] = string(e.Payload), e.CreatedAt.UTC(), int32(e.Days)
	}
	return []any{ids, types, accounts, seqs, payloads, ats, days}
}

// InsertEvents fans events out in the ledger write's transaction (deferred to the next round trip).
func (w *writeTx) InsertEvents(ctx context.Context, events []tally.Event) error {
	if len(events) == 0 {
		return nil
	}
	w.exec("insert events", insertEventsSQL, eventArgs(events)...)
	return nil
}

// EventsWanted implements tally.WriteTx: the question rides with the transaction's next statement.
func (w *writeTx) EventsWanted(ctx context.Context) func() (bool, error) {
	known, active := false, false
	w.pending = append(w.pending, deferred{op: "webhook subscriptions", sql: `SELECT 1 FROM webhook_subscriptions WHERE active LIMIT 1`,
		check: func(tag pgconn.CommandTag) error {
			known, active = true, tag.RowsAffected() > 0
			return nil
		}})
	return func() (bool, error) {
		if !known { // no statement was sent since the question: ask it now
			if err := w.flush(ctx); err != nil {
				return false, err
			}
		}
		// Unanswered still (an earlier statement of the pipeline failed, which fails the transaction too):
		// unsure, so wanted.
		return active || !known, nil
	}
}

// EmitEvents writes events outside a ledger write.
func (db *DB) EmitEvents(ctx context.Context, events []tally.Event) error {
	if len(events) == 0 {
		return nil
	}
	_, err := db.pool.Exec(ctx, insertEventsSQL, eventArgs(events)...)
	return classify(ctx, "emit events", err)
}

const subscriptionColumns = `id, url, event_types, filter, expiring_days, secret_version, active, created_at, updated_at`

func scanSubscription(row pgx.Row) (tally.WebhookSubscription, error) {
	var s tally.WebhookSubscription
	var types string
	err := row.Scan(&s.ID, &s.URL, &types, &s.Filter, &s.ExpiringDays, &s.SecretVersion, &s.Active, &s.CreatedAt, &s.UpdatedAt)
	s.EventTypes = strings.Fields(types)
	s.CreatedAt, s.UpdatedAt = s.CreatedAt.UTC(), s.UpdatedAt.UTC()
	return s, err
}

// PutSubscription inserts or replaces a subscription.
func (db *DB) PutSubscription(ctx context.Context, s tally.WebhookSubscription) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO webhook_subscriptions (`+subscriptionColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (id) DO UPDATE SET url = excluded.url, event_types = excluded.event_types, filter = excluded.filter,
			expiring_days = excluded.expiring_days, secret_version = excluded.secret_version, active = excluded.active,
			updated_at = excluded.updated_at`,
		s.ID, s.URL, strings.Join(s.EventTypes, " "), s.Filter, s.ExpiringDays, s.SecretVersion, s.Active, s.CreatedAt.UTC(), s.UpdatedAt.UTC())
	return classify(ctx, "put webhook subscription", err)
}

// Subscriptions lists subscriptions by id.
func (db *DB) Subscriptions(ctx context.Context) ([]tally.WebhookSubscription, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+subscriptionColumns+` FROM webhook_subscriptions ORDER BY id`)
	if err != nil {
		return nil, classify(ctx, "list webhook subscriptions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tally.WebhookSubscription, error) { return scanSubscription(r) })
	if err != nil {
		return nil, classify(ctx, "list webhook subscriptions", err)
	}
	if out == nil {
		out = []tally.WebhookSubscription{}
	}
	return out, nil
}

// Subscription returns one subscription.
func (db *DB) Subscription(ctx context.Context, id string) (tally.WebhookSubscription, error) {
	s, err := scanSubscription(db.pool.QueryRow(ctx, `SELECT `+subscriptionColumns+` FROM webhook_subscriptions WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return s, tally.Errorf(tally.ENOTFOUND, "no webhook subscription %q", id)
	}
	return s, classify(ctx, "read webhook subscription", err)
}

// DeleteSubscription deletes a subscription and, by cascade, its deliveries.
func (db *DB) DeleteSubscription(ctx context.Context, id string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM webhook_subscriptions WHERE id = $1`, id)
	if err != nil {
		return classify(ctx, "delete webhook subscription", err)
	}
	if tag.RowsAffected() == 0 {
		return tally.Errorf(tally.ENOTFOUND, "no webhook subscription %q", id)
	}
	return nil
}

const deliveryColumns = outboxtable.DeliveryColumns

func scanDelivery(row pgx.Row) (tally.WebhookDelivery, error) {
	var d tally.WebhookDelivery
	var payload string
	err := row.Scan(&d.EventID, &d.SubscriptionID, &d.EventType, &d.AccountID, &payload, &d.Status, &d.Attempts, &d.NextAttemptAt,
		&d.LastError, &d.CreatedAt, &d.UpdatedAt)
	if payload != "" {
		d.Payload = []byte(payload)
	}
	d.NextAttemptAt, d.CreatedAt, d.UpdatedAt = d.NextAttemptAt.UTC(), d.CreatedAt.UTC(), d.UpdatedAt.UTC()
	return d, err
}

// LeaseDeliveries leases due deliveries, skipping rows other workers are leasing.
func (db *DB) LeaseDeliveries(ctx context.Context, owner string, now, until time.Time, limit int) ([]tally.WebhookDelivery, error) {
	return leaseDue(ctx, db, outboxtable.Deliveries, owner, now, until, limit, scanDelivery,
		func(d tally.WebhookDelivery) (time.Time, string) {
			return d.NextAttemptAt, d.EventID + "\x00" + d.SubscriptionID
		})
}

// FinishDelivery records an attempt while owner holds the lease.
func (db *DB) FinishDelivery(ctx context.Context, eventID, subscriptionID, owner string, a tally.DeliveryAttempt) error {
	switch a.Status {
	case tally.DeliveryPending, tally.DeliveryDelivered, tally.DeliverySkipped, tally.DeliveryDead:
	default:
		return tally.Errorf(tally.EINVALID, "a delivery attempt cannot leave a delivery %q", a.Status)
	}
	if err := tally.CheckText("last error", a.Error); err != nil {
		return err
	}
	return db.finishLeased(ctx, outboxtable.Deliveries, []any{eventID, subscriptionID}, owner, tally.Attempt(a))
}

// Deliveries lists a subscription's deliveries, newest first.
func (db *DB) Deliveries(ctx context.Context, subscriptionID, status string, limit int) ([]tally.WebhookDelivery, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.pool.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE subscription_id = $1 AND ($2 = '' OR status = $2) ORDER BY created_at DESC, event_id DESC LIMIT $3`,
		subscriptionID, status, limit)
	if err != nil {
		return nil, classify(ctx, "list deliveries", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tally.WebhookDelivery, error) { return scanDelivery(r) })
	if err != nil {
		return nil, classify(ctx, "list deliveries", err)
	}
	if out == nil {
		out = []tally.WebhookDelivery{}
	}
	return out, nil
}
