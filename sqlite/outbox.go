package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
)

// outbox is a table of rows that workers lease and deliver: redemptions (the fulfillment outbox) and
// webhook_deliveries. Both keep a delivery's state in the same columns (status 'pending' until settled,
// attempts, next_attempt_at, last_error, lease_owner, lease_until, updated_at), so leasing and finishing
// are written once here, for whichever table. contact_mirror is leased the same way (its rows are due
// while a newer version is wanted than was sent) and finished its own way.
type outbox struct {
	table   string   // the table
	key     []string // its primary key's columns
	columns string   // what a lease returns of each row
	// undelivered is the condition of a row still to deliver (default: status 'pending').
	undelivered string
	// again is a status a settled row may be finished with once more ("" for none): a redemption a
	// reversal refunded meanwhile is recorded as refunded by the worker's refund too.
	again             string
	leaseOp, finishOp string // the operations, as errors name them
	// notFound and lost explain why finishing changed nothing: no row has key, or the row is status and
	// leased to holder.
	notFound func(key []any) error
	lost     func(key []any, owner, holder, status string) error
}

// pendingIs is the condition of a row still to deliver.
func (o outbox) pendingIs() string {
	if o.undelivered != "" {
		return o.undelivered
	}
	return "status = 'pending'"
}

// keyIs is the WHERE condition that picks the row of one key.
func (o outbox) keyIs() string {
	return strings.Join(o.key, " = ? AND ") + " = ?"
}

// leaseDue leases up to limit due, unleased pending rows of o to owner until until in one write
// transaction (SQLite has one writer, so two workers, or processes, cannot take the same rows), and
// returns them scanned in the order they were chosen: by due time, then by the key, which order gives.
func leaseDue[T any](ctx context.Context, db *DB, o outbox, owner string, now, until time.Time, limit int,
	scan func(scanner) (T, error), order func(T) (time.Time, string)) ([]T, error) {
	if err := checkLease(owner, limit); err != nil {
		return nil, err
	}
	// Workers poll every second or so, and usually nothing is due: a read on a reader connection says
	// so without taking the one write connection (and the file's write lock) from the ledger.
	var due bool
	err := db.reader.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+o.table+`
		WHERE `+o.pendingIs()+` AND next_attempt_at <= ? AND lease_until < ?)`, micros(now), micros(now)).Scan(&due)
	if err != nil || !due {
		return nil, wrap(err, o.leaseOp)
	}
	keys := strings.Join(o.key, ", ")
	var out []T
	err = db.write(ctx, func(tx *sql.Tx) error {
		out = nil // write may run fn again
		rows, err := tx.QueryContext(ctx, `UPDATE `+o.table+` SET lease_owner = ?, lease_until = ?
			WHERE (`+keys+`) IN (SELECT `+keys+` FROM `+o.table+`
				WHERE `+o.pendingIs()+` AND next_attempt_at <= ? AND lease_until < ?
				ORDER BY next_attempt_at, `+keys+` LIMIT ?)
			RETURNING `+o.columns, owner, micros(until), micros(now), micros(now), limit)
		if err != nil {
			return wrap(err, o.leaseOp)
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scan(rows)
			if err != nil {
				return wrap(err, o.leaseOp)
			}
			out = append(out, r)
		}
		return wrap(rows.Err(), o.leaseOp)
	})
	if err != nil {
		return nil, err
	}
	// RETURNING does not promise an order: give them back as they were chosen.
	sort.Slice(out, func(i, j int) bool {
		ti, ki := order(out[i])
		tj, kj := order(out[j])
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return ki < kj
	})
	return out, nil
}

// finishLeased records an attempt on the row with key while owner holds its lease, and ends the lease.
// The caller has checked a's status. (tally.DeliveryAttempt converts to tally.Attempt.)
func (db *DB) finishLeased(ctx context.Context, o outbox, key []any, owner string, a tally.Attempt) error {
	tried, retry := 0, sql.NullInt64{}
	if a.Tried {
		tried = 1
	}
	if a.Status == "pending" {
		retry = sql.NullInt64{Int64: micros(a.RetryAt), Valid: true}
	}
	settled, args := "status = 'pending'", []any{a.Status, tried, a.Error, retry, micros(a.At)}
	args = append(append(args, key...), owner)
	if o.again != "" {
		settled = "(status = 'pending' OR status = ? AND ? = '" + o.again + "')"
		args = append(args, a.Status, a.Status)
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE `+o.table+` SET status = ?, attempts = attempts + ?, last_error = ?,
				next_attempt_at = COALESCE(?, next_attempt_at), lease_owner = '', lease_until = 0, updated_at = ?
			WHERE `+o.keyIs()+` AND lease_owner = ? AND `+settled, args...)
		if err != nil {
			return wrap(err, o.finishOp)
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return wrap(err, o.finishOp)
		}
		var status, holder string
		err = tx.QueryRowContext(ctx, `SELECT status, lease_owner FROM `+o.table+` WHERE `+o.keyIs(), key...).Scan(&status, &holder)
		if errors.Is(err, sql.ErrNoRows) {
			return o.notFound(key)
		}
		if err != nil {
			return wrap(err, o.finishOp)
		}
		return o.lost(key, owner, holder, status)
	})
}

// checkLease refuses a lease request that could not be told apart from no lease, or that asks for none.
func checkLease(owner string, limit int) error {
	if owner == "" || len(owner) > 200 {
		return tally.Errorf(tally.EINVALID, "a lease owner must be 1 to 200 bytes")
	}
	if err := tally.CheckText("lease owner", owner); err != nil {
		return err
	}
	if limit <= 0 {
		return tally.Errorf(tally.EINVALID, "a lease must take at least one redemption")
	}
	return nil
}
