package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-ledger/tally"
)

// Report runs fn in one REPEATABLE READ, READ ONLY transaction: every query sees the snapshot taken at
// its first one, and PostgreSQL's MVCC lets writers go on meanwhile without waiting for it.
func (db *DB) Report(ctx context.Context, fn func(ctx context.Context, tx tally.ReportTx) error) error {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return classify(ctx, "begin", err)
	}
	defer rollback(ctx, tx)
	if err := fn(ctx, reportTx{tx}); err != nil {
		return err
	}
	return classify(ctx, "commit", tx.Commit(ctx))
}

type reportTx struct{ tx pgx.Tx }

func (r reportTx) CustomerTotals(ctx context.Context) (tally.CustomerTotals, error) {
	var t tally.CustomerTotals
	err := r.tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(balance), 0)::bigint, COALESCE(SUM(pending), 0)::bigint,
			COALESCE(SUM(LEAST(balance, 0)), 0)::bigint
		FROM accounts WHERE kind = 'customer'`).Scan(&t.Accounts, &t.Balance, &t.Pending, &t.Overdrawn)
	return t, classify(ctx, "sum the customer accounts", err)
}

func (r reportTx) DailyMovements(ctx context.Context) ([]tally.DailyMovement, error) {
	rows, err := r.tx.Query(ctx, `SELECT day, kind, delta > 0 AS credit, SUM(delta)::bigint, COUNT(*)
		FROM (SELECT `+utcDay("t.created_at")+` AS day, t.kind,
				CASE t.kind
					WHEN 'accrual' THEN t.amount
					WHEN 'adjustment' THEN t.amount
					WHEN 'redemption' THEN -t.amount
					WHEN 'expiry' THEN -t.amount
					ELSE (SELECT SUM(p.amount) FROM postings p WHERE p.seq = t.seq AND p.account_id = t.account_id)
				END AS delta
			FROM transactions t) m
		GROUP BY day, kind, credit
		ORDER BY day, kind, credit`)
	if err != nil {
		return nil, classify(ctx, "sum the movements", err)
	}
	defer rows.Close()
	var out []tally.DailyMovement
	for rows.Next() {
		var m tally.DailyMovement
		var day int64
		var kind string
		if err := rows.Scan(&day, &kind, &m.Credit, &m.Points, &m.Count); err != nil {
			return nil, classify(ctx, "sum the movements", err)
		}
		m.Kind = tally.Kind(kind)
		m.Day = fromDay(day)
		out = append(out, m)
	}
	return out, classify(ctx, "sum the movements", rows.Err())
}

// utcDay is the SQL of the UTC day of a timestamptz column, as days since 1970-01-01.
func utcDay(col string) string {
	return `((` + col + ` AT TIME ZONE 'UTC')::date - DATE '1970-01-01')`
}

func fromDay(day int64) time.Time { return time.Unix(day*86400, 0).UTC() }

func (r reportTx) OpenLots(ctx context.Context, now time.Time) ([]tally.LotBucket, error) {
	rows, err := r.tx.Query(ctx, `SELECT pending_until IS NOT NULL AS pending,
			`+utcDay("expires_at")+` AS day, COALESCE(expires_at <= $1, false) AS lapsed,
			SUM(remaining)::bigint, COUNT(*)
		FROM lots WHERE remaining > 0
		GROUP BY pending, day, lapsed`, now)
	if err != nil {
		return nil, classify(ctx, "sum the open lots", err)
	}
	defer rows.Close()
	var out []tally.LotBucket
	for rows.Next() {
		var b tally.LotBucket
		var day *int64
		if err := rows.Scan(&b.Pending, &day, &b.Lapsed, &b.Points, &b.Lots); err != nil {
			return nil, classify(ctx, "sum the open lots", err)
		}
		if day != nil {
			b.Expires = fromDay(*day)
		}
		out = append(out, b)
	}
	return out, classify(ctx, "sum the open lots", rows.Err())
}

func (r reportTx) Cohorts(ctx context.Context, now time.Time) ([]tally.Cohort, error) {
	rows, err := r.tx.Query(ctx, `SELECT `+utcDay("created_at")+` AS day, COUNT(*), SUM(points)::bigint,
			SUM(remaining)::bigint,
			SUM(CASE WHEN remaining > 0 AND expires_at <= $1 THEN remaining ELSE 0 END)::bigint,
			COUNT(*) FILTER (WHERE remaining > 0 AND (expires_at IS NULL OR expires_at > $1))
		FROM lots GROUP BY day`, now)
	if err != nil {
		return nil, classify(ctx, "sum the cohorts", err)
	}
	defer rows.Close()
	var out []tally.Cohort
	at := map[int64]int{}
	for rows.Next() {
		c := tally.Cohort{Used: map[tally.Kind]int64{}}
		var day int64
		if err := rows.Scan(&day, &c.Lots, &c.Issued, &c.Remaining, &c.Lapsed, &c.Open); err != nil {
			return nil, classify(ctx, "sum the cohorts", err)
		}
		c.Day = fromDay(day)
		at[day] = len(out)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(ctx, "sum the cohorts", err)
	}
	rows.Close()
	uses, err := r.tx.Query(ctx, `SELECT `+utcDay("l.created_at")+` AS day, t.kind, SUM(u.points)::bigint
		FROM lot_uses u
		JOIN lots l ON l.seq = u.lot_seq
		JOIN transactions t ON t.seq = u.debit_seq
		GROUP BY day, t.kind`)
	if err != nil {
		return nil, classify(ctx, "sum the cohorts' uses", err)
	}
	defer uses.Close()
	for uses.Next() {
		var day, points int64
		var kind string
		if err := uses.Scan(&day, &kind, &points); err != nil {
			return nil, classify(ctx, "sum the cohorts' uses", err)
		}
		if i, ok := at[day]; ok {
			out[i].Used[tally.Kind(kind)] += points
		}
	}
	return out, classify(ctx, "sum the cohorts' uses", uses.Err())
}
