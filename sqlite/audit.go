package sqlite

import (
	"context"
	"database/sql"

	"github.com/tally-ledger/tally"
)

// Audit returns a reader of the whole ledger. Each scan streams one query on a read connection: its
// memory does not grow with the ledger, and it sees one snapshot while writes go on.
func (db *DB) Audit() tally.Auditor { return auditor{db: db.reader} }

type auditor struct {
	db *sql.DB
}

// CountTransactions returns how many transactions the ledger holds.
func (a auditor) CountTransactions(ctx context.Context) (int64, error) {
	var n int64
	if err := a.db.QueryRowContext(ctx, `SELECT count(*) FROM transactions`).Scan(&n); err != nil {
		return 0, wrap(err, "count transactions")
	}
	return n, nil
}

// ScanAccounts calls fn for every account ordered by id. An error of fn ends the scan and is returned.
func (a auditor) ScanAccounts(ctx context.Context, fn func(tally.Account) error) error {
	rows, err := a.db.QueryContext(ctx, accountSelect+` ORDER BY a.id`)
	if err != nil {
		return wrap(err, "scan accounts")
	}
	defer rows.Close()
	for rows.Next() {
		acc, err := scanAccount(rows)
		if err != nil {
			return wrap(err, "scan accounts")
		}
		if err := fn(acc); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), "scan accounts")
}

// ScanTransactions calls fn for every transaction, with its postings in posting order, ordered by
// (AccountID, Seq). One query joins the postings; a transaction whose postings are gone still comes, with
// none. An error of fn ends the scan and is returned.
func (a auditor) ScanTransactions(ctx context.Context, fn func(tally.Transaction) error) error {
	rows, err := a.db.QueryContext(ctx, `SELECT `+transactionColumns+`, p.account_id, p.amount
		FROM transactions t LEFT JOIN postings p ON p.seq = t.seq
		ORDER BY t.account_id, t.seq, p.idx`)
	if err != nil {
		return wrap(err, "scan transactions")
	}
	defer rows.Close()
	var cur tally.Transaction
	have := false
	for rows.Next() {
		var postingAccount sql.NullString
		var postingAmount sql.NullInt64
		t, err := scanTransaction(rows, &postingAccount, &postingAmount)
		if err != nil {
			return wrap(err, "scan transactions")
		}
		if have && t.Seq != cur.Seq {
			if err := fn(cur); err != nil {
				return err
			}
			have = false
		}
		if !have {
			cur, have = t, true
		}
		if postingAccount.Valid {
			cur.Postings = append(cur.Postings, tally.Posting{AccountID: postingAccount.String, Amount: postingAmount.Int64})
		}
	}
	if err := rows.Err(); err != nil {
		return wrap(err, "scan transactions")
	}
	if have {
		return fn(cur)
	}
	return nil
}
