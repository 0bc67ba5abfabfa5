package postgres

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-ledger/tally"
)

var _ tally.FulfillmentStore = (*DB)(nil)

// LeaseRedemptions leases due, unleased pending redemptions in one statement. FOR UPDATE SKIP LOCKED
// makes concurrent workers pass over the rows another is leasing instead of waiting for them, and a row
// whose lease another worker committed meanwhile fails the re-checked WHERE (READ COMMITTED re-evaluates
// it on the newest row version), so no two workers ever lease one row at once.
func (db *DB) LeaseRedemptions(ctx context.Context, owner string, now, until time.Time, limit int) ([]tally.Redemption, error) {
	if err := checkLease(owner, limit); err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, `UPDATE redemptions r SET lease_owner = $1, lease_until = $2
		FROM (SELECT receipt_id FROM redemptions
			WHERE status = 'pending' AND next_attempt_at <= $3 AND lease_until < $3
			ORDER BY next_attempt_at, receipt_id LIMIT $4
			FOR UPDATE SKIP LOCKED) due
		WHERE r.receipt_id = due.receipt_id
		RETURNING `+prefixed("r.", redemptionColumns), owner, until.UTC(), now.UTC(), limit)
	if err != nil {
		return nil, classify(ctx, "lease redemptions", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.Redemption, error) { return scanRedemption(row) })
	if err != nil {
		return nil, classify(ctx, "lease redemptions", err)
	}
	// RETURNING does not promise an order: give them back as they were chosen.
	sort.Slice(out, func(i, j int) bool {
		if !out[i].NextAttemptAt.Equal(out[j].NextAttemptAt) {
			return out[i].NextAttemptAt.Before(out[j].NextAttemptAt)
		}
		return out[i].ReceiptID < out[j].ReceiptID
	})
	return out, nil
}

// prefixed qualifies every column of a comma-separated list with a table alias.
func prefixed(alias, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = alias + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
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

// FinishAttempt records an attempt's result while owner holds the lease, in one statement.
func (db *DB) FinishAttempt(ctx context.Context, receiptID, owner string, a tally.Attempt) error {
	if !a.Valid() {
		return tally.Errorf(tally.EINVALID, "a delivery attempt cannot leave a redemption %q", a.Status)
	}
	if err := tally.CheckText("last error", a.Error); err != nil {
		return err
	}
	tried := 0
	if a.Tried {
		tried = 1
	}
	var retry *time.Time
	if a.Status == tally.FulfillmentPending {
		t := a.RetryAt.UTC()
		retry = &t
	}
	tag, err := db.pool.Exec(ctx, `UPDATE redemptions SET status = $1, attempts = attempts + $2, last_error = $3,
			next_attempt_at = COALESCE($4, next_attempt_at), lease_owner = '', lease_until = 'epoch', updated_at = $5
		WHERE receipt_id = $6 AND lease_owner = $7 AND (status = 'pending' OR status = $1 AND $1 = 'refunded')`,
		a.Status, tried, a.Error, retry, a.At.UTC(), receiptID, owner)
	if err != nil {
		return classify(ctx, "finish delivery attempt", err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var status, holder string
	err = db.pool.QueryRow(ctx, `SELECT status, lease_owner FROM redemptions WHERE receipt_id = $1`, receiptID).Scan(&status, &holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return tally.Errorf(tally.ENOTFOUND, "no receipt %q", receiptID)
	}
	if err != nil {
		return classify(ctx, "finish delivery attempt", err)
	}
	if holder != owner {
		return tally.Errorf(tally.ECONFLICT, "the lease on receipt %q was lost: another worker took it over", receiptID)
	}
	return tally.Errorf(tally.ECONFLICT, "receipt %q is %s now: it was settled while it was being delivered", receiptID, status)
}
