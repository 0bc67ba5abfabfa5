package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tally-ledger/tally"
)

// writeTx is the tally.WriteTx of one Update. SQLite has one writer at a time, so the rows it reads
// cannot change under it and no row locks are taken.
type writeTx struct {
	tx *sql.Tx
}

var _ tally.WriteTx = (*writeTx)(nil)

// claimBatch is how many claims one INSERT carries (4 parameters each).
const claimBatch = 100

// ClaimOutcomes inserts a pending row for each key that has none, in batches; the rows of the others are
// read back and returned in the order of claims.
func (w *writeTx) ClaimOutcomes(ctx context.Context, claims []tally.Outcome) ([]tally.Outcome, error) {
	claimed := make(map[tally.OutcomeKey]bool, len(claims))
	for lo, hi := range chunks(len(claims), claimBatch) {
		batch := claims[lo:hi]
		args := make([]any, 0, 4*len(batch))
		for _, c := range batch {
			args = append(args, c.Channel, c.Key, c.RequestHash, micros(c.CreatedAt))
		}
		// RETURNING yields only the rows inserted: the keys that were free.
		rows, err := w.tx.QueryContext(ctx, `INSERT INTO processed_events (channel, event_id, request_hash, state, created_at)
			VALUES `+list(len(batch), "(?, ?, ?, 'pending', ?)")+`
			ON CONFLICT (channel, event_id) DO NOTHING
			RETURNING channel, event_id`, args...)
		if err != nil {
			return nil, wrap(err, "claim outcomes")
		}
		for rows.Next() {
			var k tally.OutcomeKey
			if err := rows.Scan(&k.Channel, &k.Key); err != nil {
				rows.Close()
				return nil, wrap(err, "claim outcomes")
			}
			claimed[k] = true
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return nil, wrap(err, "claim outcomes")
		}
		rows.Close()
	}

	var taken []tally.OutcomeKey
	seen := make(map[tally.OutcomeKey]bool)
	for _, c := range claims {
		if !claimed[c.OutcomeKey] && !seen[c.OutcomeKey] {
			seen[c.OutcomeKey] = true
			taken = append(taken, c.OutcomeKey)
		}
	}
	if len(taken) == 0 {
		return nil, nil
	}
	stored, err := w.outcomes(ctx, taken)
	if err != nil {
		return nil, wrap(err, "claim outcomes")
	}
	existing := make([]tally.Outcome, 0, len(taken))
	for _, k := range taken {
		if o, ok := stored[k]; ok {
			existing = append(existing, o)
		}
	}
	return existing, nil
}

// outcomes reads the rows of keys, pending or done.
func (w *writeTx) outcomes(ctx context.Context, keys []tally.OutcomeKey) (map[tally.OutcomeKey]tally.Outcome, error) {
	out := make(map[tally.OutcomeKey]tally.Outcome, len(keys))
	for lo, hi := range chunks(len(keys), inBatch/2) {
		args := make([]any, 0, 2*(hi-lo))
		for _, k := range keys[lo:hi] {
			args = append(args, k.Channel, k.Key)
		}
		rows, err := w.tx.QueryContext(ctx, `SELECT `+outcomeColumns+` FROM processed_events
			WHERE (channel, event_id) IN (VALUES `+list(hi-lo, "(?, ?)")+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			o, err := scanOutcome(rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			out[o.OutcomeKey] = o
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return nil, err
		}
		rows.Close()
	}
	return out, nil
}

// SaveOutcomes marks pending rows done with their outcome. A key without a pending row is an error of
// the caller: the outcome would otherwise be lost without a trace, or overwrite one already given.
func (w *writeTx) SaveOutcomes(ctx context.Context, outcomes []tally.Outcome) error {
	if len(outcomes) == 0 {
		return nil
	}
	stmt, err := w.tx.PrepareContext(ctx, `UPDATE processed_events
		SET state = 'done', code = ?, tx_seq = ?, response = ?
		WHERE channel = ? AND event_id = ? AND state = 'pending'`)
	if err != nil {
		return wrap(err, "save outcomes")
	}
	defer stmt.Close()
	for _, o := range outcomes {
		var response any // NULL when there is none
		if len(o.Response) > 0 {
			response = []byte(o.Response)
		}
		res, err := stmt.ExecContext(ctx, string(o.Code), nullIfZero(o.TxSeq), response, o.Channel, o.Key)
		if err != nil {
			return wrap(err, "save outcomes")
		}
		if n, err := res.RowsAffected(); err != nil {
			return wrap(err, "save outcomes")
		} else if n == 0 {
			return tally.Errorf(tally.EINTERNAL, "outcome of key %q on channel %q has no pending claim", o.Key, o.Channel)
		}
	}
	return nil
}

// ReleaseClaims deletes pending rows. A row already done is a remembered outcome and stays.
func (w *writeTx) ReleaseClaims(ctx context.Context, keys []tally.OutcomeKey) error {
	for lo, hi := range chunks(len(keys), inBatch/2) {
		args := make([]any, 0, 2*(hi-lo))
		for _, k := range keys[lo:hi] {
			args = append(args, k.Channel, k.Key)
		}
		_, err := w.tx.ExecContext(ctx, `DELETE FROM processed_events
			WHERE state = 'pending' AND (channel, event_id) IN (VALUES `+list(hi-lo, "(?, ?)")+`)`, args...)
		if err != nil {
			return wrap(err, "release claims")
		}
	}
	return nil
}

// EnsureAccounts inserts the customer accounts that do not exist yet.
func (w *writeTx) EnsureAccounts(ctx context.Context, ids []string, now time.Time) error {
	created := micros(now)
	for lo, hi := range chunks(len(ids), inBatch/3) {
		args := make([]any, 0, 3*(hi-lo))
		for _, id := range ids[lo:hi] {
			args = append(args, id, id, created)
		}
		_, err := w.tx.ExecContext(ctx, `INSERT INTO accounts (id, customer_hash, kind, created_at)
			VALUES `+list(hi-lo, "(?, ?, 'customer', ?)")+` ON CONFLICT DO NOTHING`, args...)
		if err != nil {
			return wrap(err, "ensure accounts")
		}
	}
	return nil
}

// LockAccounts returns the customer accounts among ids. The write lock that BEGIN IMMEDIATE took covers
// them: no other writer runs until this transaction ends.
func (w *writeTx) LockAccounts(ctx context.Context, ids []string) (map[string]tally.Account, error) {
	out := make(map[string]tally.Account, len(ids))
	for lo, hi := range chunks(len(ids), inBatch) {
		args := make([]any, 0, hi-lo)
		for _, id := range ids[lo:hi] {
			args = append(args, id)
		}
		rows, err := w.tx.QueryContext(ctx, accountSelect+`
			WHERE a.kind = 'customer' AND a.id IN (`+list(hi-lo, "?")+`)`, args...)
		if err != nil {
			return nil, wrap(err, "lock accounts")
		}
		for rows.Next() {
			a, err := scanAccount(rows)
			if err != nil {
				rows.Close()
				return nil, wrap(err, "lock accounts")
			}
			out[a.ID] = a
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return nil, wrap(err, "lock accounts")
		}
		rows.Close()
	}
	return out, nil
}

// UpdateAccounts writes balance, version, last hash and status of customer accounts. Updating a row
// that is not there is an error of the caller, which must have locked the account first.
func (w *writeTx) UpdateAccounts(ctx context.Context, accounts []tally.Account) error {
	if len(accounts) == 0 {
		return nil
	}
	stmt, err := w.tx.PrepareContext(ctx, `UPDATE accounts
		SET balance = ?, balance_version = ?, last_tx_hash = ?, status = ?, pending = ?, overdraft_limit = ?,
			qualifying_bound = ?, qualifying_from = ?
		WHERE id = ? AND kind = 'customer'`)
	if err != nil {
		return wrap(err, "update accounts")
	}
	defer stmt.Close()
	for _, a := range accounts {
		var from *int64
		if !a.QualifyingFrom.IsZero() {
			us := micros(a.QualifyingFrom)
			from = &us
		}
		res, err := stmt.ExecContext(ctx, a.Balance, a.BalanceVersion, a.LastTxHash, string(a.Status), a.Pending, a.OverdraftLimit,
			a.QualifyingBound, from, a.ID)
		if err != nil {
			if e := checkViolation(err, fmt.Sprintf("status %q", a.Status)); e != nil {
				return e
			}
			return wrap(err, "update accounts")
		}
		if n, err := res.RowsAffected(); err != nil {
			return wrap(err, "update accounts")
		} else if n == 0 {
			return tally.Errorf(tally.EINTERNAL, "account %q to update is not an existing customer account", a.ID)
		}
	}
	return nil
}

// Transactions returns the given transactions with their postings.
func (w *writeTx) Transactions(ctx context.Context, seqs []int64) (map[int64]tally.Transaction, error) {
	out := make(map[int64]tally.Transaction, len(seqs))
	for lo, hi := range chunks(len(seqs), inBatch) {
		args := make([]any, 0, hi-lo)
		for _, s := range seqs[lo:hi] {
			args = append(args, s)
		}
		txs, err := queryTransactions(ctx, w.tx, `SELECT `+transactionColumns+` FROM transactions t
			WHERE t.seq IN (`+list(hi-lo, "?")+`)`, args...)
		if err != nil {
			return nil, wrap(err, "read transactions")
		}
		for _, t := range txs {
			out[t.Seq] = t
		}
	}
	return out, nil
}

// ReversedBy maps each given seq that has a reversal to the reversal's seq.
func (w *writeTx) ReversedBy(ctx context.Context, seqs []int64) (map[int64]int64, error) {
	out := make(map[int64]int64)
	for lo, hi := range chunks(len(seqs), inBatch) {
		args := make([]any, 0, hi-lo)
		for _, s := range seqs[lo:hi] {
			args = append(args, s)
		}
		rows, err := w.tx.QueryContext(ctx, `SELECT reverses_seq, seq FROM transactions
			WHERE reverses_seq IN (`+list(hi-lo, "?")+`)`, args...)
		if err != nil {
			return nil, wrap(err, "read reversals")
		}
		for rows.Next() {
			var reversed, by int64
			if err := rows.Scan(&reversed, &by); err != nil {
				rows.Close()
				return nil, wrap(err, "read reversals")
			}
			out[reversed] = by
		}
		if err := rows.Err(); err != nil {
			rows.Close()
			return nil, wrap(err, "read reversals")
		}
		rows.Close()
	}
	return out, nil
}

// NextSeqs reserves n sequence numbers from the ledger_seq counter.
func (w *writeTx) NextSeqs(ctx context.Context, n int) ([]int64, error) {
	if n < 0 {
		return nil, tally.Errorf(tally.EINVALID, "cannot reserve %d sequence numbers", n)
	}
	if n == 0 {
		return nil, nil
	}
	var last int64
	err := w.tx.QueryRowContext(ctx,
		`UPDATE counters SET value = value + ? WHERE name = 'ledger_seq' RETURNING value`, n).Scan(&last)
	if err != nil {
		return nil, wrap(err, "reserve sequence numbers")
	}
	seqs := make([]int64, n)
	for i := range seqs {
		seqs[i] = last - int64(n) + 1 + int64(i)
	}
	return seqs, nil
}

// InsertTransactions writes transactions and their postings (idx is the position in Postings).
func (w *writeTx) InsertTransactions(ctx context.Context, txs []tally.Transaction) error {
	if len(txs) == 0 {
		return nil
	}
	insertTx, err := w.tx.PrepareContext(ctx, `INSERT INTO transactions (seq, kind, account_id, channel,
		idempotency_key, request_hash, amount, reason, actor, metadata, reverses_seq, created_at, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		return wrap(err, "insert transactions")
	}
	defer insertTx.Close()
	insertPosting, err := w.tx.PrepareContext(ctx,
		`INSERT INTO postings (seq, idx, account_id, amount) VALUES (?, ?, ?, ?)`)
	if err != nil {
		return wrap(err, "insert transactions")
	}
	defer insertPosting.Close()

	for i := range txs {
		t := &txs[i]
		_, err := insertTx.ExecContext(ctx, t.Seq, string(t.Kind), t.AccountID, t.Channel, t.IdempotencyKey,
			t.RequestHash, t.Amount, t.Reason, t.Actor, string(t.Metadata), nullIfZero(t.ReversesSeq),
			micros(t.CreatedAt), t.Hash)
		if err != nil {
			if e := transactionConflict(err, t); e != nil {
				return e
			}
			if e := checkViolation(err, fmt.Sprintf("transaction kind %q", t.Kind)); e != nil {
				return e
			}
			return wrap(err, fmt.Sprintf("insert transaction %d", t.Seq))
		}
		for idx, p := range t.Postings {
			if _, err := insertPosting.ExecContext(ctx, t.Seq, idx, p.AccountID, p.Amount); err != nil {
				return wrap(err, fmt.Sprintf("insert posting %d of transaction %d", idx, t.Seq))
			}
		}
	}
	return nil
}

// AddSystemBalances adds each delta to its shard, creating the shard row on first use.
func (w *writeTx) AddSystemBalances(ctx context.Context, deltas []tally.SystemDelta) error {
	if len(deltas) == 0 {
		return nil
	}
	stmt, err := w.tx.PrepareContext(ctx, `INSERT INTO account_shards (account_id, shard, balance) VALUES (?, ?, ?)
		ON CONFLICT (account_id, shard) DO UPDATE SET balance = balance + excluded.balance`)
	if err != nil {
		return wrap(err, "add system balances")
	}
	defer stmt.Close()
	for _, d := range deltas {
		if _, err := stmt.ExecContext(ctx, d.AccountID, d.Shard, d.Delta); err != nil {
			return wrap(err, fmt.Sprintf("add to shard %d of %s", d.Shard, d.AccountID))
		}
	}
	return nil
}
