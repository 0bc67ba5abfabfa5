package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"sort"
	"time"

	"github.com/tally-ledger/tally"
)

var _ tally.FulfillmentStore = (*DB)(nil)

// LeaseRedemptions leases due, unleased pending redemptions in one write transaction: SQLite has one
// writer, so two workers (or processes) cannot take the same rows.
func (db *DB) LeaseRedemptions(ctx context.Context, owner string, now, until time.Time, limit int) ([]tally.Redemption, error) {
	if err := checkLease(owner, limit); err != nil {
		return nil, err
	}
	// Workers poll every second or so, and usually nothing is due: a read on a reader connection says
	// so without taking the one write connection (and the file's write lock) from the ledger.
	var due bool
	err := db.reader.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM redemptions
		WHERE status = 'pending' AND next_attempt_at <= ? AND lease_until < ?)`, micros(now), micros(now)).Scan(&due)
	if err != nil {
		return nil, wrap(err, "lease redemptions")
	}
	if !due {
		return nil, nil
	}
	var out []tally.Redemption
	err = db.write(ctx, func(tx *sql.Tx) error {
		out = nil // write may run fn again
		rows, err := tx.QueryContext(ctx, `UPDATE redemptions SET lease_owner = ?, lease_until = ?
			WHERE receipt_id IN (SELECT receipt_id FROM redemptions
				WHERE status = 'pending' AND next_attempt_at <= ? AND lease_until < ?
				ORDER BY next_attempt_at, receipt_id LIMIT ?)
			RETURNING `+redemptionColumns, owner, micros(until), micros(now), micros(now), limit)
		if err != nil {
			return wrap(err, "lease redemptions")
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRedemption(rows)
			if err != nil {
				return wrap(err, "lease redemptions")
			}
			out = append(out, r)
		}
		return wrap(rows.Err(), "lease redemptions")
	})
	if err != nil {
		return nil, err
	}
	sortDue(out)
	return out, nil
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

// sortDue orders leased redemptions as they were chosen (RETURNING does not promise an order).
func sortDue(rs []tally.Redemption) {
	sort.Slice(rs, func(i, j int) bool {
		if !rs[i].NextAttemptAt.Equal(rs[j].NextAttemptAt) {
			return rs[i].NextAttemptAt.Before(rs[j].NextAttemptAt)
		}
		return rs[i].ReceiptID < rs[j].ReceiptID
	})
}

// FinishAttempt records an attempt's result while owner holds the lease.
func (db *DB) FinishAttempt(ctx context.Context, receiptID, owner string, a tally.Attempt) error {
	if !a.Valid() {
		return tally.Errorf(tally.EINVALID, "a delivery attempt cannot leave a redemption %q", a.Status)
	}
	if err := tally.CheckText("last error", a.Error); err != nil {
		return err
	}
	tried, retry := 0, sql.NullInt64{}
	if a.Tried {
		tried = 1
	}
	if a.Status == tally.FulfillmentPending {
		retry = sql.NullInt64{Int64: micros(a.RetryAt), Valid: true}
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE redemptions SET status = ?, attempts = attempts + ?, last_error = ?,
				next_attempt_at = COALESCE(?, next_attempt_at), lease_owner = '', lease_until = 0, updated_at = ?
			WHERE receipt_id = ? AND lease_owner = ? AND (status = 'pending' OR status = ? AND ? = 'refunded')`,
			a.Status, tried, a.Error, retry, micros(a.At), receiptID, owner, a.Status, a.Status)
		if err != nil {
			return wrap(err, "finish delivery attempt")
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return wrap(err, "finish delivery attempt")
		}
		var status, holder string
		err = tx.QueryRowContext(ctx, `SELECT status, lease_owner FROM redemptions WHERE receipt_id = ?`, receiptID).Scan(&status, &holder)
		if errors.Is(err, sql.ErrNoRows) {
			return tally.Errorf(tally.ENOTFOUND, "no receipt %q", receiptID)
		}
		if err != nil {
			return wrap(err, "finish delivery attempt")
		}
		return lostLease(receiptID, owner, holder, status)
	})
}

// lostLease explains why FinishAttempt changed nothing.
func lostLease(receiptID, owner, holder, status string) error {
	if holder != owner {
		return tally.Errorf(tally.ECONFLICT, "the lease on receipt %q was lost: another worker took it over", receiptID)
	}
	return tally.Errorf(tally.ECONFLICT, "receipt %q is %s now: it was settled while it was being delivered", receiptID, status)
}
