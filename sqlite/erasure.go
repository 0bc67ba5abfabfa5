package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/tally-ledger/tally"
)

// rekeyedTables are the tables, besides the ledger's own, whose account_id column names a customer
// account; an erasure moves their rows to the pseudonym. A table added later that keeps an account id
// belongs here (or in forgottenTables, when its rows must go instead).
var rekeyedTables = []string{"redemptions", "lots", "rule_usage", "customer_tiers", "tier_changes"}

// forgottenTables hold rows that would link the pseudonym to the customer: an erasure deletes them.
var forgottenTables = []string{"contact_mirror"}

// Erase re-keys one customer account in one write transaction (SQLite has one writer, so no ledger
// write or checkpoint record interleaves).
func (db *DB) Erase(ctx context.Context, id string, plan func(tally.ErasureState) (tally.Rekeying, error)) (tally.Erasure, error) {
	if err := tally.CheckText("account id", id); err != nil {
		return tally.Erasure{}, err
	}
	var out tally.Erasure
	// The writer zeroes the space it frees (secure_delete, see Open): the old id's bytes do not linger.
	err := db.write(ctx, func(tx *sql.Tx) error {
		var st tally.ErasureState
		a, err := scanAccount(tx.QueryRowContext(ctx, accountSelect+` WHERE a.id = ? AND a.kind = 'customer'`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return tally.Errorf(tally.ENOTFOUND, "no account for this customer")
		}
		if err != nil {
			return wrap(err, "read the account")
		}
		st.Account = a
		if st.Transactions, err = queryTransactions(ctx, tx, `SELECT `+transactionColumns+` FROM transactions t
			WHERE t.account_id = ? ORDER BY t.seq`, id); err != nil {
			return wrap(err, "read the account's transactions")
		}
		rows, err := tx.QueryContext(ctx, `SELECT checkpoint_no, version, hash, balance FROM checkpoint_heads
			WHERE account_id = ? ORDER BY checkpoint_no`, id)
		if err != nil {
			return wrap(err, "read recorded heads")
		}
		for rows.Next() {
			h := tally.RecordedHead{Head: tally.Head{AccountID: id}}
			if err := rows.Scan(&h.Checkpoint, &h.Version, &h.Hash, &h.Balance); err != nil {
				rows.Close()
				return wrap(err, "read recorded heads")
			}
			st.Heads = append(st.Heads, h)
		}
		if err := rows.Err(); err != nil {
			return wrap(err, "read recorded heads")
		}
		rows.Close()
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(no), 0) FROM checkpoints`).Scan(&st.LastCheckpoint); err != nil {
			return wrap(err, "read the last checkpoint")
		}
		rk, err := plan(st)
		if err != nil {
			return err
		}
		return rekey(ctx, tx, id, st, rk, &out)
	})
	return out, err
}

func rekey(ctx context.Context, tx *sql.Tx, id string, st tally.ErasureState, rk tally.Rekeying, out *tally.Erasure) error {
	// The new row first: transactions, postings and the rest reference accounts.
	if _, err := tx.ExecContext(ctx, `INSERT INTO accounts (id, customer_hash, kind, status, balance, balance_version, last_tx_hash, created_at, pending, overdraft_limit,
			qualifying_bound, qualifying_from)
		SELECT ?, ?, kind, status, balance, balance_version, ?, created_at, pending, overdraft_limit, qualifying_bound, qualifying_from
		FROM accounts WHERE id = ?`,
		rk.NewID, rk.NewID, rk.LastTxHash, id); err != nil {
		if isUniqueViolation(err) {
			return tally.Errorf(tally.ECONFLICT, "the pseudonym is taken")
		}
		return wrap(err, "insert the re-keyed account")
	}
	stmt, err := tx.PrepareContext(ctx, `UPDATE transactions SET account_id = ?, hash = ?, request_hash = ? WHERE seq = ?`)
	if err != nil {
		return wrap(err, "re-key transactions")
	}
	defer stmt.Close()
	for _, t := range st.Transactions {
		if _, err := stmt.ExecContext(ctx, rk.NewID, rk.Hashes[t.Seq], rk.RequestHashes[t.Seq], t.Seq); err != nil {
			return wrap(err, "re-key transactions")
		}
		// A replayed outcome must not give the old id back either.
		if _, err := tx.ExecContext(ctx, `UPDATE processed_events SET request_hash = ?,
			response = CAST(replace(CAST(response AS TEXT), ?, ?) AS BLOB) WHERE tx_seq = ?`, rk.RequestHashes[t.Seq], id, rk.NewID, t.Seq); err != nil {
			return wrap(err, "re-key outcomes")
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE postings SET account_id = ? WHERE account_id = ?`, rk.NewID, id); err != nil {
		return wrap(err, "re-key postings")
	}
	for _, h := range rk.Heads {
		if _, err := tx.ExecContext(ctx, `UPDATE checkpoint_heads SET account_id = ?, hash = ? WHERE account_id = ? AND checkpoint_no = ?`,
			rk.NewID, h.Hash, id, h.Checkpoint); err != nil {
			return wrap(err, "re-key recorded heads")
		}
	}
	// Events waiting to be delivered (or kept as delivered) name the customer in their payload too.
	if _, err := tx.ExecContext(ctx, `UPDATE webhook_deliveries SET account_id = ?, payload = replace(payload, ?, ?) WHERE account_id = ?`,
		rk.NewID, id, rk.NewID, id); err != nil {
		return wrap(err, "re-key webhook deliveries")
	}
	for _, table := range rekeyedTables {
		if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET account_id = ? WHERE account_id = ?`, rk.NewID, id); err != nil {
			return wrap(err, "re-key "+table)
		}
	}
	for _, table := range forgottenTables {
		if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE account_id = ?`, id); err != nil {
			return wrap(err, "forget "+table)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM accounts WHERE id = ?`, id); err != nil {
		return wrap(err, "delete the old account")
	}
	e := rk.Erasure
	err = tx.QueryRowContext(ctx, `INSERT INTO erasures (account_id, actor, reason, erased_at, transactions, checkpoint_through, mac)
		VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING no`,
		e.AccountID, e.Actor, e.Reason, micros(e.ErasedAt), e.Transactions, e.CheckpointThrough, e.MAC).Scan(&e.No)
	if err != nil {
		return wrap(err, "record the erasure")
	}
	*out = e
	return nil
}

// Erasures lists the erasure records by number.
func (db *DB) Erasures(ctx context.Context) ([]tally.Erasure, error) {
	return readErasures(ctx, db.reader)
}

// Erasures lists the erasure records by number.
func (a auditor) Erasures(ctx context.Context) ([]tally.Erasure, error) {
	return readErasures(ctx, a.db)
}

func readErasures(ctx context.Context, q querier) ([]tally.Erasure, error) {
	rows, err := q.QueryContext(ctx, `SELECT no, account_id, actor, reason, erased_at, transactions, checkpoint_through, mac
		FROM erasures ORDER BY no`)
	if err != nil {
		return nil, wrap(err, "read erasures")
	}
	defer rows.Close()
	out := []tally.Erasure{}
	for rows.Next() {
		var e tally.Erasure
		var at int64
		if err := rows.Scan(&e.No, &e.AccountID, &e.Actor, &e.Reason, &at, &e.Transactions, &e.CheckpointThrough, &e.MAC); err != nil {
			return nil, wrap(err, "read erasures")
		}
		e.ErasedAt = fromMicros(at)
		out = append(out, e)
	}
	return out, wrap(rows.Err(), "read erasures")
}
