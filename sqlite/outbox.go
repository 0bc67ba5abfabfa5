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

// outbox is a table that workers lease rows from (see outboxtable).
type outbox = outboxtable.Table

// keyIs is the WHERE condition that picks the row of one key.
func keyIs(o outbox) string {
	return strings.Join(o.Key, " = ? AND ") + " = ?"
}

// leaseDue leases up to limit due, unleased pending rows of o to owner until until in one write
// transaction (SQLite has one writer, so two workers, or processes, cannot take the same rows), and
// returns them scanned in the order they were chosen: by due time, then by the key, which order gives.
func leaseDue[T any](ctx context.Context, db *DB, o outbox, owner string, now, until time.Time, limit int,
	scan func(scanner) (T, error), order func(T) (time.Time, string)) ([]T, error) {
	if err := outboxtable.CheckLease(owner, limit); err != nil {
		return nil, err
	}
	// Workers poll every second or so, and usually nothing is due: a read on a reader connection says
	// so without taking the one write connection (and the file's write lock) from the ledger.
	var due bool
	err := db.reader.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM `+o.Name+`
		WHERE `+o.Pending()+` AND next_attempt_at <= ? AND lease_until < ?)`, micros(now), micros(now)).Scan(&due)
	if err != nil || !due {
		return nil, wrap(err, o.LeaseOp)
	}
	keys := strings.Join(o.Key, ", ")
	var out []T
	err = db.write(ctx, func(tx *sql.Tx) error {
		out = nil // write may run fn again
		rows, err := tx.QueryContext(ctx, `UPDATE `+o.Name+` SET lease_owner = ?, lease_until = ?
			WHERE (`+keys+`) IN (SELECT `+keys+` FROM `+o.Name+`
				WHERE `+o.Pending()+` AND next_attempt_at <= ? AND lease_until < ?
				ORDER BY next_attempt_at, `+keys+` LIMIT ?)
			RETURNING `+o.Columns, owner, micros(until), micros(now), micros(now), limit)
		if err != nil {
			return wrap(err, o.LeaseOp)
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scan(rows)
			if err != nil {
				return wrap(err, o.LeaseOp)
			}
			out = append(out, r)
		}
		return wrap(rows.Err(), o.LeaseOp)
	})
	if err != nil {
		return nil, err
	}
	outboxtable.SortChosen(out, order)
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
	if o.Again != "" {
		settled = "(status = 'pending' OR status = ? AND ? = '" + o.Again + "')"
		args = append(args, a.Status, a.Status)
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE `+o.Name+` SET status = ?, attempts = attempts + ?, last_error = ?,
				next_attempt_at = COALESCE(?, next_attempt_at), lease_owner = '', lease_until = 0, updated_at = ?
			WHERE `+keyIs(o)+` AND lease_owner = ? AND `+settled, args...)
		if err != nil {
			return wrap(err, o.FinishOp)
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return wrap(err, o.FinishOp)
		}
		var status, holder string
		err = tx.QueryRowContext(ctx, `SELECT status, lease_owner FROM `+o.Name+` WHERE `+keyIs(o), key...).Scan(&status, &holder)
		if errors.Is(err, sql.ErrNoRows) {
			return o.NotFound(key)
		}
		if err != nil {
			return wrap(err, o.FinishOp)
		}
		return o.Lost(key, owner, holder, status)
	})
}
