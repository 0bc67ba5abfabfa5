package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"iter"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
)

// querier is what reads need: a read-only transaction, the read pool, or a write transaction.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

// inBatch bounds the parameters of one statement, far below SQLite's 32766.
const inBatch = 500

// chunks yields [lo, hi) ranges that cover n items, size at a time.
func chunks(n, size int) iter.Seq2[int, int] {
	return func(yield func(int, int) bool) {
		for lo := 0; lo < n; lo += size {
			if !yield(lo, min(lo+size, n)) {
				return
			}
		}
	}
}

// list returns n copies of item separated by commas: "?, ?, ?".
func list(n int, item string) string {
	return strings.TrimSuffix(strings.Repeat(item+", ", n), ", ")
}

func micros(t time.Time) int64 { return t.UnixMicro() }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// nullIfZero stores 0 as NULL, for optional references (reverses_seq, tx_seq).
func nullIfZero(v int64) any {
	if v == 0 {
		return nil
	}
	return v
}

// rawJSON returns nil for an empty document, so that "" and NULL read back as absent.
func rawJSON(b []byte) json.RawMessage {
	if len(b) == 0 {
		return nil
	}
	return json.RawMessage(b)
}

// accountSelect reads accounts; a system account's balance is the sum of its shards.
const accountSelect = `SELECT a.id, a.status,
	CASE WHEN a.kind = 'system'
		THEN (SELECT COALESCE(SUM(s.balance), 0) FROM account_shards s WHERE s.account_id = a.id)
		ELSE a.balance END,
	a.balance_version, a.last_tx_hash, a.created_at, a.pending, a.overdraft_limit, a.qualifying_bound, a.qualifying_from
FROM accounts a`

func scanAccount(s scanner) (tally.Account, error) {
	var a tally.Account
	var created int64
	var from *int64
	err := s.Scan(&a.ID, &a.Status, &a.Balance, &a.BalanceVersion, &a.LastTxHash, &created, &a.Pending, &a.OverdraftLimit,
		&a.QualifyingBound, &from)
	a.CreatedAt = fromMicros(created)
	if from != nil {
		a.QualifyingFrom = fromMicros(*from)
	}
	return a, err
}

// transactionColumns are the columns scanTransaction reads, qualified by the alias t.
const transactionColumns = `t.seq, t.kind, t.account_id, t.channel, t.idempotency_key, t.request_hash, t.amount,
	t.reason, t.actor, t.metadata, t.reverses_seq, t.created_at, t.hash`

// scanTransaction reads transactionColumns, then extra.
func scanTransaction(s scanner, extra ...any) (tally.Transaction, error) {
	var t tally.Transaction
	var metadata string
	var reverses sql.NullInt64
	var created int64
	dest := append([]any{&t.Seq, &t.Kind, &t.AccountID, &t.Channel, &t.IdempotencyKey, &t.RequestHash,
		&t.Amount, &t.Reason, &t.Actor, &metadata, &reverses, &created, &t.Hash}, extra...)
	if err := s.Scan(dest...); err != nil {
		return t, err
	}
	t.Metadata = rawJSON([]byte(metadata))
	t.ReversesSeq = reverses.Int64
	t.CreatedAt = fromMicros(created)
	return t, nil
}

// queryTransactions runs a query selecting transactionColumns and attaches every transaction's postings.
func queryTransactions(ctx context.Context, q querier, query string, args ...any) ([]tally.Transaction, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var txs []tally.Transaction
	for rows.Next() {
		t, err := scanTransaction(rows)
		if err != nil {
			return nil, err
		}
		txs = append(txs, t)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	return txs, attachPostings(ctx, q, txs)
}

// attachPostings reads the postings of txs, in posting order, with one query per inBatch transactions.
func attachPostings(ctx context.Context, q querier, txs []tally.Transaction) error {
	at := make(map[int64]int, len(txs))
	for i := range txs {
		at[txs[i].Seq] = i
	}
	for lo, hi := range chunks(len(txs), inBatch) {
		args := make([]any, 0, hi-lo)
		for _, t := range txs[lo:hi] {
			args = append(args, t.Seq)
		}
		rows, err := q.QueryContext(ctx, `SELECT seq, account_id, amount FROM postings
			WHERE seq IN (`+list(len(args), "?")+`) ORDER BY seq, idx`, args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var seq int64
			var p tally.Posting
			if err := rows.Scan(&seq, &p.AccountID, &p.Amount); err != nil {
				rows.Close()
				return err
			}
			t := &txs[at[seq]]
			t.Postings = append(t.Postings, p)
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return err
		}
		rows.Close()
	}
	return nil
}

// outcomeColumns are the columns scanOutcome reads.
const outcomeColumns = `channel, event_id, request_hash, tx_seq, code, response, created_at`

func scanOutcome(s scanner) (tally.Outcome, error) {
	var o tally.Outcome
	var txSeq sql.NullInt64
	var response []byte
	var created int64
	if err := s.Scan(&o.Channel, &o.Key, &o.RequestHash, &txSeq, &o.Code, &response, &created); err != nil {
		return o, err
	}
	o.TxSeq = txSeq.Int64
	o.Response = rawJSON(response)
	o.CreatedAt = fromMicros(created)
	return o, nil
}

// readTx runs fn in a read-only transaction, so that its queries see one snapshot.
func (db *DB) readTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return fn(tx)
}
