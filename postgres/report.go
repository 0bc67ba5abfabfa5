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
	err := r.tx.QueryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(balance), 0)::bigint, 0::bigint
		FROM accounts WHERE kind = 'customer'`).Scan(&t.Accounts, &t.Balance, &t.Pending)
	return t, classify(ctx, "sum the customer accounts", err)
}

func (r reportTx) DailyMovements(ctx context.Context) ([]tally.DailyMovement, error) {
	rows, err := r.tx.Query(ctx, `SELECT (t.created_at AT TIME ZONE 'UTC')::date - DATE '1970-01-01' AS day,
			t.kind, p.amount > 0 AS credit, SUM(p.amount)::bigint, COUNT(*)
		FROM transactions t
		JOIN postings p ON p.seq = t.seq AND p.account_id = t.account_id
		GROUP BY day, t.kind, credit
		ORDER BY day, t.kind, credit`)
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
		m.Day = time.Unix(day*86400, 0).UTC()
		out = append(out, m)
	}
	return out, classify(ctx, "sum the movements", rows.Err())
}
