package postgres

import (
	"context"

	"github.com/tally-ledger/tally"
)

// Audit returns a reader of the whole ledger. Each scan is one streamed query, so it reads one
// consistent snapshot without loading the ledger into memory.
func (db *DB) Audit() tally.Auditor { return auditor{db} }

type auditor struct{ db *DB }

// CountTransactions returns how many transactions the ledger holds.
func (a auditor) CountTransactions(ctx context.Context) (int64, error) {
	var n int64
	if err := a.db.pool.QueryRow(ctx, `SELECT count(*) FROM transactions`).Scan(&n); err != nil {
		return 0, classify(ctx, "count transactions", err)
	}
	return n, nil
}

// ScanAccounts calls fn for every account ordered by id. An error fn returns is returned as is.
func (a auditor) ScanAccounts(ctx context.Context, fn func(tally.Account) error) error {
	rows, err := a.db.pool.Query(ctx, `SELECT `+accountColumns+` FROM accounts a ORDER BY a.id`)
	if err != nil {
		return classify(ctx, "scan accounts", err)
	}
	defer rows.Close()
	for rows.Next() {
		acc, err := scanAccount(rows)
		if err != nil {
			return classify(ctx, "scan accounts", err)
		}
		if err := fn(acc); err != nil {
			return err
		}
	}
	return classify(ctx, "scan accounts", rows.Err())
}

// ScanTransactions calls fn for every transaction with its postings, ordered by (AccountID, Seq). A
// transaction without postings comes with none. An error fn returns is returned as is.
func (a auditor) ScanTransactions(ctx context.Context, fn func(tally.Transaction) error) error {
	rows, err := a.db.pool.Query(ctx, `
		SELECT `+joinedColumns+`
		FROM transactions t LEFT JOIN postings p ON p.seq = t.seq
		ORDER BY t.account_id, t.seq, p.idx`)
	if err != nil {
		return classify(ctx, "scan transactions", err)
	}
	var fnErr error
	err = scanJoined(rows, func(t tally.Transaction) error {
		fnErr = fn(t)
		return fnErr
	})
	if fnErr != nil {
		return fnErr
	}
	return classify(ctx, "scan transactions", err)
}
