package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/internal/outboxtable"
)

// outbox is a table that workers lease rows from (see outboxtable).
type outbox = outboxtable.Table

// leaseSQL leases due, unleased pending rows in one statement. FOR UPDATE SKIP LOCKED makes concurrent
// workers pass over the rows another is leasing instead of waiting for them, and a row whose lease
// another worker committed meanwhile fails the re-checked WHERE (READ COMMITTED re-evaluates it on the
// newest row version), so no two workers ever lease one row at once.
func leaseSQL(o outbox) string {
	keys := strings.Join(o.Key, ", ")
	join := make([]string, len(o.Key))
	for i, k := range o.Key {
		join[i] = "o." + k + " = due." + k
	}
	return `UPDATE ` + o.Name + ` o SET lease_owner = $1, lease_until = $2
		FROM (SELECT ` + keys + ` FROM ` + o.Name + `
			WHERE ` + o.Pending() + ` AND next_attempt_at <= $3 AND lease_until < $3
			ORDER BY next_attempt_at, ` + keys + ` LIMIT $4
			FOR UPDATE SKIP LOCKED) due
		WHERE ` + strings.Join(join, " AND ") + `
		RETURNING ` + prefixed("o.", o.Columns)
}

// leaseDue leases up to limit due rows of o to owner until until and returns them scanned, in the order
// they were chosen: by due time, then by the key, which order gives.
func leaseDue[T any](ctx context.Context, db *DB, o outbox, owner string, now, until time.Time, limit int,
	scan func(pgx.Row) (T, error), order func(T) (time.Time, string)) ([]T, error) {
	if err := outboxtable.CheckLease(owner, limit); err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, leaseSQL(o), owner, until.UTC(), now.UTC(), limit)
	if err != nil {
		return nil, classify(ctx, o.LeaseOp, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
	if err != nil {
		return nil, classify(ctx, o.LeaseOp, err)
	}
	outboxtable.SortChosen(out, order)
	return out, nil
}

// finishLeased records an attempt on the row with key while owner holds its lease, in one statement, and
// ends the lease. The caller has checked a's status. (tally.DeliveryAttempt converts to tally.Attempt.)
func (db *DB) finishLeased(ctx context.Context, o outbox, key []any, owner string, a tally.Attempt) error {
	tried := 0
	if a.Tried {
		tried = 1
	}
	var retry *time.Time
	if a.Status == "pending" {
		t := a.RetryAt.UTC()
		retry = &t
	}
	where := make([]string, len(o.Key))
	for i, k := range o.Key {
		where[i] = k + " = $" + strconv.Itoa(6+i)
	}
	settled := "status = 'pending'"
	if o.Again != "" {
		settled = "(status = 'pending' OR status = $1 AND $1 = '" + o.Again + "')"
	}
	args := append([]any{a.Status, tried, a.Error, retry, a.At.UTC()}, key...)
	tag, err := db.pool.Exec(ctx, `UPDATE `+o.Name+` SET status = $1, attempts = attempts + $2, last_error = $3,
			next_attempt_at = COALESCE($4, next_attempt_at), lease_owner = '', lease_until = 'epoch', updated_at = $5
		WHERE `+strings.Join(where, " AND ")+` AND lease_owner = $`+strconv.Itoa(6+len(key))+` AND `+settled,
		append(args, owner)...)
	if err != nil {
		return classify(ctx, o.FinishOp, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	for i := range where {
		where[i] = o.Key[i] + " = $" + strconv.Itoa(1+i)
	}
	var status, holder string
	err = db.pool.QueryRow(ctx, `SELECT status, lease_owner FROM `+o.Name+` WHERE `+strings.Join(where, " AND "), key...).Scan(&status, &holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return o.NotFound(key)
	}
	if err != nil {
		return classify(ctx, o.FinishOp, err)
	}
	return o.Lost(key, owner, holder, status)
}

// prefixed qualifies every column of a comma-separated list with a table alias.
func prefixed(alias, columns string) string {
	cols := strings.Split(columns, ",")
	for i, c := range cols {
		cols[i] = alias + strings.TrimSpace(c)
	}
	return strings.Join(cols, ", ")
}
