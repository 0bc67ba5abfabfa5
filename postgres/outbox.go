package postgres

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

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

// leaseSQL leases due, unleased pending rows in one statement. FOR UPDATE SKIP LOCKED makes concurrent
// workers pass over the rows another is leasing instead of waiting for them, and a row whose lease
// another worker committed meanwhile fails the re-checked WHERE (READ COMMITTED re-evaluates it on the
// newest row version), so no two workers ever lease one row at once.
func (o outbox) leaseSQL() string {
	keys := strings.Join(o.key, ", ")
	join := make([]string, len(o.key))
	for i, k := range o.key {
		join[i] = "o." + k + " = due." + k
	}
	return `UPDATE ` + o.table + ` o SET lease_owner = $1, lease_until = $2
		FROM (SELECT ` + keys + ` FROM ` + o.table + `
			WHERE ` + o.pendingIs() + ` AND next_attempt_at <= $3 AND lease_until < $3
			ORDER BY next_attempt_at, ` + keys + ` LIMIT $4
			FOR UPDATE SKIP LOCKED) due
		WHERE ` + strings.Join(join, " AND ") + `
		RETURNING ` + prefixed("o.", o.columns)
}

// leaseDue leases up to limit due rows of o to owner until until and returns them scanned, in the order
// they were chosen: by due time, then by the key, which order gives.
func leaseDue[T any](ctx context.Context, db *DB, o outbox, owner string, now, until time.Time, limit int,
	scan func(pgx.Row) (T, error), order func(T) (time.Time, string)) ([]T, error) {
	if err := checkLease(owner, limit); err != nil {
		return nil, err
	}
	rows, err := db.pool.Query(ctx, o.leaseSQL(), owner, until.UTC(), now.UTC(), limit)
	if err != nil {
		return nil, classify(ctx, o.leaseOp, err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return scan(row) })
	if err != nil {
		return nil, classify(ctx, o.leaseOp, err)
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
	where := make([]string, len(o.key))
	for i, k := range o.key {
		where[i] = k + " = $" + strconv.Itoa(6+i)
	}
	settled := "status = 'pending'"
	if o.again != "" {
		settled = "(status = 'pending' OR status = $1 AND $1 = '" + o.again + "')"
	}
	args := append([]any{a.Status, tried, a.Error, retry, a.At.UTC()}, key...)
	tag, err := db.pool.Exec(ctx, `UPDATE `+o.table+` SET status = $1, attempts = attempts + $2, last_error = $3,
			next_attempt_at = COALESCE($4, next_attempt_at), lease_owner = '', lease_until = 'epoch', updated_at = $5
		WHERE `+strings.Join(where, " AND ")+` AND lease_owner = $`+strconv.Itoa(6+len(key))+` AND `+settled,
		append(args, owner)...)
	if err != nil {
		return classify(ctx, o.finishOp, err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	for i := range where {
		where[i] = o.key[i] + " = $" + strconv.Itoa(1+i)
	}
	var status, holder string
	err = db.pool.QueryRow(ctx, `SELECT status, lease_owner FROM `+o.table+` WHERE `+strings.Join(where, " AND "), key...).Scan(&status, &holder)
	if errors.Is(err, pgx.ErrNoRows) {
		return o.notFound(key)
	}
	if err != nil {
		return classify(ctx, o.finishOp, err)
	}
	return o.lost(key, owner, holder, status)
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
