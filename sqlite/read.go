package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"math"
	"time"

	"github.com/tally-ledger/tally"
)

// Account returns a customer or system account. ENOTFOUND when absent.
func (db *DB) Account(ctx context.Context, id string) (tally.Account, error) {
	if err := tally.CheckText("account id", id); err != nil {
		return tally.Account{}, err
	}
	stmt, err := db.prepareAccount(ctx)
	if err != nil {
		return tally.Account{}, wrap(err, "read account")
	}
	a, err := scanAccount(stmt.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return tally.Account{}, tally.Errorf(tally.ENOTFOUND, "account %q not found", id)
	}
	if err != nil {
		return tally.Account{}, wrap(err, "read account")
	}
	return a, nil
}

// prepareAccount prepares the account read on first use (not at Open: before Migrate the table may not
// exist yet). database/sql prepares it again on each connection as needed.
func (db *DB) prepareAccount(ctx context.Context) (*sql.Stmt, error) {
	db.stmtMu.Lock()
	defer db.stmtMu.Unlock()
	if db.accountStmt == nil {
		stmt, err := db.reader.PrepareContext(ctx, accountSelect+` WHERE a.id = ?`)
		if err != nil {
			return nil, err
		}
		db.accountStmt = stmt
	}
	return db.accountStmt, nil
}

// Transaction returns one transaction with its postings. ENOTFOUND when absent.
func (db *DB) Transaction(ctx context.Context, seq int64) (tally.Transaction, error) {
	var txs []tally.Transaction
	err := db.readTx(ctx, func(tx *sql.Tx) (err error) {
		txs, err = queryTransactions(ctx, tx, `SELECT `+transactionColumns+` FROM transactions t WHERE t.seq = ?`, seq)
		return err
	})
	if err != nil {
		return tally.Transaction{}, wrap(err, "read transaction")
	}
	if len(txs) == 0 {
		return tally.Transaction{}, tally.Errorf(tally.ENOTFOUND, "transaction %d not found", seq)
	}
	return txs[0], nil
}

// TransactionByKey returns the transaction written under an idempotency key. ENOTFOUND when none was.
func (db *DB) TransactionByKey(ctx context.Context, channel, key string) (tally.Transaction, error) {
	var txs []tally.Transaction
	err := db.readTx(ctx, func(tx *sql.Tx) (err error) {
		txs, err = queryTransactions(ctx, tx, `SELECT `+transactionColumns+` FROM transactions t
			WHERE t.channel = ? AND t.idempotency_key = ?`, channel, key)
		return err
	})
	if err != nil {
		return tally.Transaction{}, wrap(err, "read transaction by key")
	}
	if len(txs) == 0 {
		return tally.Transaction{}, tally.Errorf(tally.ENOTFOUND, "no transaction for key %q on channel %q", key, channel)
	}
	return txs[0], nil
}

// History returns up to limit transactions of an account with Seq < beforeSeq (all when beforeSeq <= 0),
// newest first, with postings: one query for the page, one for its postings. An unknown account has
// no history; limit <= 0 asks for none.
func (db *DB) History(ctx context.Context, accountID string, beforeSeq int64, limit int) ([]tally.Transaction, error) {
	if err := tally.CheckText("account id", accountID); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return []tally.Transaction{}, nil
	}
	if beforeSeq <= 0 {
		beforeSeq = math.MaxInt64
	}
	var txs []tally.Transaction
	err := db.readTx(ctx, func(tx *sql.Tx) (err error) {
		txs, err = queryTransactions(ctx, tx, `SELECT `+transactionColumns+` FROM transactions t
			WHERE t.account_id = ? AND t.seq < ? ORDER BY t.seq DESC LIMIT ?`, accountID, beforeSeq, limit)
		return err
	})
	if err != nil {
		return nil, wrap(err, "read history")
	}
	if txs == nil {
		txs = []tally.Transaction{}
	}
	return txs, nil
}

// Outcome returns a remembered outcome. ENOTFOUND when absent or still pending.
func (db *DB) Outcome(ctx context.Context, channel, key string) (tally.Outcome, error) {
	if err := cmp.Or(tally.CheckText("channel", channel), tally.CheckText("idempotency key", key)); err != nil {
		return tally.Outcome{}, err
	}
	o, err := scanOutcome(db.reader.QueryRowContext(ctx, `SELECT `+outcomeColumns+` FROM processed_events
		WHERE channel = ? AND event_id = ? AND state = 'done'`, channel, key))
	if errors.Is(err, sql.ErrNoRows) {
		return tally.Outcome{}, tally.Errorf(tally.ENOTFOUND, "no outcome for key %q on channel %q", key, channel)
	}
	if err != nil {
		return tally.Outcome{}, wrap(err, "read outcome")
	}
	return o, nil
}

// PurgeOutcomes deletes the outcome rows of events, done or pending, created before the given time. The
// prefix is compared byte for byte (substr, not LIKE, which ignores case in SQLite).
func (db *DB) PurgeOutcomes(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	err := db.write(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM processed_events
			WHERE created_at < ? AND substr(channel, 1, length(?2)) = ?2`, micros(before), tally.EventChannelPrefix)
		if err != nil {
			return wrap(err, "purge outcomes")
		}
		n, err = res.RowsAffected()
		return wrap(err, "purge outcomes")
	})
	return n, err
}
