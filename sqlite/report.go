package sqlite

import (
	"context"
	"database/sql"
	"time"

	"github.com/tally-ledger/tally"
)

// microsPerDay turns created_at (unix microseconds, UTC) into a day number.
const microsPerDay = 86_400_000_000

// Report runs fn in one read transaction on a reader connection: in WAL mode its first read fixes the
// snapshot every later read sees, while the writer goes on.
func (db *DB) Report(ctx context.Context, fn func(ctx context.Context, tx tally.ReportTx) error) error {
	tx, err := db.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return wrap(err, "begin")
	}
	defer tx.Rollback()
	return fn(ctx, reportTx{tx})
}

type reportTx struct{ tx *sql.Tx }

func (r reportTx) CustomerTotals(ctx context.Context) (tally.CustomerTotals, error) {
	var t tally.CustomerTotals
	err := r.tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(balance), 0), COALESCE(SUM(pending), 0),
			COALESCE(SUM(MIN(balance, 0)), 0)
		FROM accounts WHERE kind = 'customer'`).Scan(&t.Accounts, &t.Balance, &t.Pending, &t.Overdrawn)
	return t, wrap(err, "sum the customer accounts")
}

func (r reportTx) DailyMovements(ctx context.Context) ([]tally.DailyMovement, error) {
	rows, err := r.tx.QueryContext(ctx, `SELECT day, kind, delta > 0 AS credit, SUM(delta), COUNT(*)
		FROM (SELECT t.created_at / ? AS day, t.kind,
				CASE t.kind
					WHEN 'accrual' THEN t.amount
					WHEN 'adjustment' THEN t.amount
					WHEN 'redemption' THEN -t.amount
					WHEN 'expiry' THEN -t.amount
					ELSE (SELECT SUM(p.amount) FROM postings p WHERE p.seq = t.seq AND p.account_id = t.account_id)
				END AS delta
			FROM transactions t)
		GROUP BY day, kind, credit
		ORDER BY day, kind, credit`, microsPerDay)
	if err != nil {
		return nil, wrap(err, "sum the movements")
	}
	defer rows.Close()
	var out []tally.DailyMovement
	for rows.Next() {
		var m tally.DailyMovement
		var day int64
		if err := rows.Scan(&day, &m.Kind, &m.Credit, &m.Points, &m.Count); err != nil {
			return nil, wrap(err, "sum the movements")
		}
		m.Day = fromMicros(day * microsPerDay)
		out = append(out, m)
	}
	return out, wrap(rows.Err(), "sum the movements")
}

func (r reportTx) OpenLots(ctx context.Context, now time.Time) ([]tally.LotBucket, error) {
	rows, err := r.tx.QueryContext(ctx, `SELECT pending_until IS NOT NULL AS pending,
			expires_at / ?1 AS day, COALESCE(expires_at <= ?2, 0) AS lapsed,
			SUM(remaining), COUNT(*)
		FROM lots WHERE remaining > 0
		GROUP BY pending, day, lapsed`, microsPerDay, micros(now))
	if err != nil {
		return nil, wrap(err, "sum the open lots")
	}
	defer rows.Close()
	var out []tally.LotBucket
	for rows.Next() {
		var b tally.LotBucket
		var day sql.NullInt64
		if err := rows.Scan(&b.Pending, &day, &b.Lapsed, &b.Points, &b.Lots); err != nil {
			return nil, wrap(err, "sum the open lots")
		}
		if day.Valid {
			b.Expires = fromMicros(day.Int64 * microsPerDay)
		}
		out = append(out, b)
	}
	return out, wrap(rows.Err(), "sum the open lots")
}

func (r reportTx) Cohorts(ctx context.Context, now time.Time) ([]tally.Cohort, error) {
	rows, err := r.tx.QueryContext(ctx, `SELECT created_at / ?2 AS day, COUNT(*), SUM(points), SUM(remaining),
			SUM(CASE WHEN remaining > 0 AND expires_at <= ?1 THEN remaining ELSE 0 END),
			SUM(CASE WHEN remaining > 0 AND (expires_at IS NULL OR expires_at > ?1) THEN 1 ELSE 0 END)
		FROM lots GROUP BY day`, micros(now), microsPerDay)
	if err != nil {
		return nil, wrap(err, "sum the cohorts")
	}
	defer rows.Close()
	var out []tally.Cohort
	at := map[int64]int{}
	for rows.Next() {
		c := tally.Cohort{Used: map[tally.Kind]int64{}}
		var day int64
		if err := rows.Scan(&day, &c.Lots, &c.Issued, &c.Remaining, &c.Lapsed, &c.Open); err != nil {
			return nil, wrap(err, "sum the cohorts")
		}
		c.Day = fromMicros(day * microsPerDay)
		at[day] = len(out)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "sum the cohorts")
	}
	rows.Close()
	uses, err := r.tx.QueryContext(ctx, `SELECT l.created_at / ? AS day, t.kind, SUM(u.points)
		FROM lot_uses u
		JOIN lots l ON l.seq = u.lot_seq
		JOIN transactions t ON t.seq = u.debit_seq
		GROUP BY day, t.kind`, microsPerDay)
	if err != nil {
		return nil, wrap(err, "sum the cohorts' uses")
	}
	defer uses.Close()
	for uses.Next() {
		var day, points int64
		var kind tally.Kind
		if err := uses.Scan(&day, &kind, &points); err != nil {
			return nil, wrap(err, "sum the cohorts' uses")
		}
		if i, ok := at[day]; ok {
			out[i].Used[kind] += points
		}
	}
	return out, wrap(uses.Err(), "sum the cohorts' uses")
}
