package sqlite

import (
	"context"
	"database/sql"

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
	err := r.tx.QueryRowContext(ctx, `SELECT COUNT(*), COALESCE(SUM(balance), 0), 0
		FROM accounts WHERE kind = 'customer'`).Scan(&t.Accounts, &t.Balance, &t.Pending)
	return t, wrap(err, "sum the customer accounts")
}

func (r reportTx) DailyMovements(ctx context.Context) ([]tally.DailyMovement, error) {
	rows, err := r.tx.QueryContext(ctx, `SELECT t.created_at / ? AS day, t.kind, p.amount > 0 AS credit,
			SUM(p.amount), COUNT(*)
		FROM transactions t
		JOIN postings p ON p.seq = t.seq AND p.account_id = t.account_id
		GROUP BY day, t.kind, credit
		ORDER BY day, t.kind, credit`, microsPerDay)
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
