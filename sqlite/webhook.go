package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/internal/outboxtable"
)

// InsertEvents fans each event out to the active subscriptions of its type, in the ledger write's
// transaction.
func (w *writeTx) InsertEvents(ctx context.Context, events []tally.Event) error {
	return insertEvents(ctx, w.tx, events)
}

// EventsWanted implements tally.WriteTx (SQLite reads are local: the answer is read now).
func (w *writeTx) EventsWanted(ctx context.Context) func() (bool, error) {
	active, err := subscriptionsActive(ctx, w.tx)
	return func() (bool, error) { return active, err }
}

func subscriptionsActive(ctx context.Context, tx *sql.Tx) (bool, error) {
	var any bool
	if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_subscriptions WHERE active = 1)`).Scan(&any); err != nil {
		return false, wrap(err, "read webhook subscriptions")
	}
	return any, nil
}

func insertEvents(ctx context.Context, tx *sql.Tx, events []tally.Event) error {
	if len(events) == 0 {
		return nil
	}
	if any, err := subscriptionsActive(ctx, tx); err != nil || !any {
		return err
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO webhook_deliveries
			(event_id, subscription_id, event_type, account_id, tx_seq, payload, status, next_attempt_at, created_at, updated_at)
		SELECT ?, s.id, ?, ?, ?, ?, 'pending', ?, ?, ?
		FROM webhook_subscriptions s
		WHERE s.active = 1 AND instr(' ' || s.event_types || ' ', ' ' || ? || ' ') > 0
			AND (? <> 'points.expiring_soon' OR s.expiring_days = ?)
		ON CONFLICT (event_id, subscription_id) DO NOTHING`)
	if err != nil {
		return wrap(err, "insert events")
	}
	defer stmt.Close()
	for _, e := range events {
		at := micros(e.CreatedAt)
		if _, err := stmt.ExecContext(ctx, e.ID, e.Type, e.AccountID, nullIfZero(e.TxSeq), string(e.Payload), at, at, at,
			e.Type, e.Type, e.Days); err != nil {
			return wrap(err, "insert events")
		}
	}
	return nil
}

// EmitEvents writes events outside a ledger write.
func (db *DB) EmitEvents(ctx context.Context, events []tally.Event) error {
	return db.write(ctx, func(tx *sql.Tx) error { return insertEvents(ctx, tx, events) })
}

const subscriptionColumns = `id, url, event_types, filter, expiring_days, secret_version, active, created_at, updated_at`

func scanSubscription(s scanner) (tally.WebhookSubscription, error) {
	var sub tally.WebhookSubscription
	var types string
	var created, updated int64
	err := s.Scan(&sub.ID, &sub.URL, &types, &sub.Filter, &sub.ExpiringDays, &sub.SecretVersion, &sub.Active, &created, &updated)
	sub.EventTypes = strings.Fields(types)
	sub.CreatedAt, sub.UpdatedAt = fromMicros(created), fromMicros(updated)
	return sub, err
}

// PutSubscription inserts or replaces a subscription.
func (db *DB) PutSubscription(ctx context.Context, s tally.WebhookSubscription) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO webhook_subscriptions (`+subscriptionColumns+`)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET url = excluded.url, event_types = excluded.event_types, filter = excluded.filter,
				expiring_days = excluded.expiring_days, secret_version = excluded.secret_version, active = excluded.active,
				updated_at = excluded.updated_at`,
			s.ID, s.URL, strings.Join(s.EventTypes, " "), s.Filter, s.ExpiringDays, s.SecretVersion, s.Active,
			micros(s.CreatedAt), micros(s.UpdatedAt))
		return wrap(err, "put webhook subscription")
	})
}

// Subscriptions lists subscriptions by id.
func (db *DB) Subscriptions(ctx context.Context) ([]tally.WebhookSubscription, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT `+subscriptionColumns+` FROM webhook_subscriptions ORDER BY id`)
	if err != nil {
		return nil, wrap(err, "list webhook subscriptions")
	}
	defer rows.Close()
	out := []tally.WebhookSubscription{}
	for rows.Next() {
		s, err := scanSubscription(rows)
		if err != nil {
			return nil, wrap(err, "list webhook subscriptions")
		}
		out = append(out, s)
	}
	return out, wrap(rows.Err(), "list webhook subscriptions")
}

// Subscription returns one subscription.
func (db *DB) Subscription(ctx context.Context, id string) (tally.WebhookSubscription, error) {
	s, err := scanSubscription(db.reader.QueryRowContext(ctx, `SELECT `+subscriptionColumns+` FROM webhook_subscriptions WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return s, tally.Errorf(tally.ENOTFOUND, "no webhook subscription %q", id)
	}
	return s, wrap(err, "read webhook subscription")
}

// DeleteSubscription deletes a subscription and, by cascade, its deliveries.
func (db *DB) DeleteSubscription(ctx context.Context, id string) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_subscriptions WHERE id = ?`, id)
		if err != nil {
			return wrap(err, "delete webhook subscription")
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			if err != nil {
				return wrap(err, "delete webhook subscription")
			}
			return tally.Errorf(tally.ENOTFOUND, "no webhook subscription %q", id)
		}
		return nil
	})
}

const deliveryColumns = outboxtable.DeliveryColumns

func scanDelivery(s scanner) (tally.WebhookDelivery, error) {
	var d tally.WebhookDelivery
	var payload string
	var next, created, updated int64
	err := s.Scan(&d.EventID, &d.SubscriptionID, &d.EventType, &d.AccountID, &payload, &d.Status, &d.Attempts, &next, &d.LastError, &created, &updated)
	d.Payload = rawJSON([]byte(payload))
	d.NextAttemptAt, d.CreatedAt, d.UpdatedAt = fromMicros(next), fromMicros(created), fromMicros(updated)
	return d, err
}

// LeaseDeliveries leases due deliveries; a read first finds whether any is due, so that idle polling
// does not take the write lock.
func (db *DB) LeaseDeliveries(ctx context.Context, owner string, now, until time.Time, limit int) ([]tally.WebhookDelivery, error) {
	return leaseDue(ctx, db, outboxtable.Deliveries, owner, now, until, limit, scanDelivery,
		func(d tally.WebhookDelivery) (time.Time, string) {
			return d.NextAttemptAt, d.EventID + "\x00" + d.SubscriptionID
		})
}

// FinishDelivery records an attempt while owner holds the lease.
func (db *DB) FinishDelivery(ctx context.Context, eventID, subscriptionID, owner string, a tally.DeliveryAttempt) error {
	if err := checkDeliveryAttempt(a); err != nil {
		return err
	}
	return db.finishLeased(ctx, outboxtable.Deliveries, []any{eventID, subscriptionID}, owner, tally.Attempt(a))
}

func checkDeliveryAttempt(a tally.DeliveryAttempt) error {
	switch a.Status {
	case tally.DeliveryPending, tally.DeliveryDelivered, tally.DeliverySkipped, tally.DeliveryDead:
	default:
		return tally.Errorf(tally.EINVALID, "a delivery attempt cannot leave a delivery %q", a.Status)
	}
	return tally.CheckText("last error", a.Error)
}

// Deliveries lists a subscription's deliveries, newest first.
func (db *DB) Deliveries(ctx context.Context, subscriptionID, status string, limit int) ([]tally.WebhookDelivery, error) {
	if limit <= 0 {
		limit = 100
	}
	rows, err := db.reader.QueryContext(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE subscription_id = ? AND (? = '' OR status = ?) ORDER BY created_at DESC, event_id DESC LIMIT ?`,
		subscriptionID, status, status, limit)
	if err != nil {
		return nil, wrap(err, "list deliveries")
	}
	defer rows.Close()
	out := []tally.WebhookDelivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, wrap(err, "list deliveries")
		}
		out = append(out, d)
	}
	return out, wrap(rows.Err(), "list deliveries")
}
