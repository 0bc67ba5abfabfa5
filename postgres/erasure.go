package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tally-ledger/tally"
)

// rekeyedTables are the tables, besides the ledger's own, whose account_id column names a customer
// account; an erasure moves their rows to the pseudonym. A table added later that keeps an account id
// belongs here (or in forgottenTables, when its rows must go instead).
var rekeyedTables = []string{"redemptions", "lots", "rule_usage", "customer_tiers", "tier_changes"}

// forgottenTables hold rows that would link the pseudonym to the customer: an erasure deletes them.
var forgottenTables = []string{"contact_mirror"}

// Erase re-keys one customer account in one transaction. It takes the checkpoint lock first, so that no
// checkpoint reads heads half re-keyed, then the account's row lock, which ledger writes to the account
// wait for.
func (db *DB) Erase(ctx context.Context, id string, plan func(tally.ErasureState) (tally.Rekeying, error)) (tally.Erasure, error) {
	if err := tally.CheckText("account id", id); err != nil {
		return tally.Erasure{}, err
	}
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return tally.Erasure{}, classify(ctx, "begin", err)
	}
	defer rollback(ctx, tx)
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':tally-checkpoint'))`); err != nil {
		return tally.Erasure{}, classify(ctx, "lock checkpoints", err)
	}
	var st tally.ErasureState
	a, err := scanAccount(tx.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts a
		WHERE a.id = $1 AND a.kind = 'customer' FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return tally.Erasure{}, tally.Errorf(tally.ENOTFOUND, "no account for this customer")
	}
	if err != nil {
		return tally.Erasure{}, classify(ctx, "read the account", err)
	}
	st.Account = a
	rows, err := tx.Query(ctx, `SELECT `+joinedColumns+`
		FROM transactions t LEFT JOIN postings p ON p.seq = t.seq
		WHERE t.account_id = $1 ORDER BY t.seq, p.idx`, id)
	if err != nil {
		return tally.Erasure{}, classify(ctx, "read the account's transactions", err)
	}
	if err := scanJoined(rows, func(t tally.Transaction) error {
		st.Transactions = append(st.Transactions, t)
		return nil
	}); err != nil {
		return tally.Erasure{}, classify(ctx, "read the account's transactions", err)
	}
	hrows, err := tx.Query(ctx, `SELECT checkpoint_no, version, hash, balance FROM checkpoint_heads
		WHERE account_id = $1 ORDER BY checkpoint_no`, id)
	if err != nil {
		return tally.Erasure{}, classify(ctx, "read recorded heads", err)
	}
	st.Heads, err = pgx.CollectRows(hrows, func(r pgx.CollectableRow) (tally.RecordedHead, error) {
		h := tally.RecordedHead{Head: tally.Head{AccountID: id}}
		return h, r.Scan(&h.Checkpoint, &h.Version, &h.Hash, &h.Balance)
	})
	if err != nil {
		return tally.Erasure{}, classify(ctx, "read recorded heads", err)
	}
	if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(no), 0) FROM checkpoints`).Scan(&st.LastCheckpoint); err != nil {
		return tally.Erasure{}, classify(ctx, "read the last checkpoint", err)
	}
	rk, err := plan(st)
	if err != nil {
		return tally.Erasure{}, err
	}
	e, err := rekey(ctx, tx, id, st, rk)
	if err != nil {
		return tally.Erasure{}, err
	}
	return e, classify(ctx, "commit", tx.Commit(ctx))
}

func rekey(ctx context.Context, tx pgx.Tx, id string, st tally.ErasureState, rk tally.Rekeying) (tally.Erasure, error) {
	// The new row first: transactions, postings and the rest reference accounts.
	_, err := tx.Exec(ctx, `INSERT INTO accounts (id, customer_hash, kind, status, balance, balance_version, last_tx_hash, created_at, pending, overdraft_limit,
			qualifying_bound, qualifying_from)
		SELECT $1, $1, kind, status, balance, balance_version, $2, created_at, pending, overdraft_limit, qualifying_bound, qualifying_from
		FROM accounts WHERE id = $3`,
		rk.NewID, rk.LastTxHash, id)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation {
		return tally.Erasure{}, tally.Errorf(tally.ECONFLICT, "the pseudonym is taken")
	}
	if err != nil {
		return tally.Erasure{}, classify(ctx, "insert the re-keyed account", err)
	}
	seqs := make([]int64, len(st.Transactions))
	hashes := make([]string, len(st.Transactions))
	requests := make([]string, len(st.Transactions))
	for i, t := range st.Transactions {
		seqs[i], hashes[i], requests[i] = t.Seq, rk.Hashes[t.Seq], rk.RequestHashes[t.Seq]
	}
	if _, err := tx.Exec(ctx, `UPDATE transactions t SET account_id = $1, hash = u.h, request_hash = u.r
		FROM unnest($2::bigint[], $3::text[], $4::text[]) AS u(s, h, r) WHERE t.seq = u.s`, rk.NewID, seqs, hashes, requests); err != nil {
		return tally.Erasure{}, classify(ctx, "re-key transactions", err)
	}
	// A replayed outcome must not give the old id back either.
	if _, err := tx.Exec(ctx, `UPDATE processed_events p SET request_hash = u.r,
		response = CASE WHEN p.response IS NULL THEN NULL ELSE convert_to(replace(convert_from(p.response, 'UTF8'), $1, $2), 'UTF8') END
		FROM unnest($3::bigint[], $4::text[]) AS u(s, r) WHERE p.tx_seq = u.s`, id, rk.NewID, seqs, requests); err != nil {
		return tally.Erasure{}, classify(ctx, "re-key outcomes", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE postings SET account_id = $1 WHERE account_id = $2`, rk.NewID, id); err != nil {
		return tally.Erasure{}, classify(ctx, "re-key postings", err)
	}
	nos := make([]int64, len(rk.Heads))
	headHashes := make([]string, len(rk.Heads))
	for i, h := range rk.Heads {
		nos[i], headHashes[i] = h.Checkpoint, h.Hash
	}
	if _, err := tx.Exec(ctx, `UPDATE checkpoint_heads c SET account_id = $1, hash = u.h
		FROM unnest($3::bigint[], $4::text[]) AS u(n, h) WHERE c.account_id = $2 AND c.checkpoint_no = u.n`,
		rk.NewID, id, nos, headHashes); err != nil {
		return tally.Erasure{}, classify(ctx, "re-key recorded heads", err)
	}
	// Events waiting to be delivered (or kept as delivered) name the customer in their payload too.
	if _, err := tx.Exec(ctx, `UPDATE webhook_deliveries SET account_id = $1, payload = replace(payload, $2, $1) WHERE account_id = $2`,
		rk.NewID, id); err != nil {
		return tally.Erasure{}, classify(ctx, "re-key webhook deliveries", err)
	}
	for _, table := range rekeyedTables {
		if _, err := tx.Exec(ctx, `UPDATE `+table+` SET account_id = $1 WHERE account_id = $2`, rk.NewID, id); err != nil {
			return tally.Erasure{}, classify(ctx, "re-key "+table, err)
		}
	}
	for _, table := range forgottenTables {
		if _, err := tx.Exec(ctx, `DELETE FROM `+table+` WHERE account_id = $1`, id); err != nil {
			return tally.Erasure{}, classify(ctx, "forget "+table, err)
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM accounts WHERE id = $1`, id); err != nil {
		return tally.Erasure{}, classify(ctx, "delete the old account", err)
	}
	e := rk.Erasure
	err = tx.QueryRow(ctx, `INSERT INTO erasures (account_id, actor, reason, erased_at, transactions, checkpoint_through, mac)
		VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING no`,
		e.AccountID, e.Actor, e.Reason, e.ErasedAt, e.Transactions, e.CheckpointThrough, e.MAC).Scan(&e.No)
	if err != nil {
		return tally.Erasure{}, classify(ctx, "record the erasure", err)
	}
	return e, nil
}

// Erasures lists the erasure records by number.
func (db *DB) Erasures(ctx context.Context) ([]tally.Erasure, error) { return readErasures(ctx, db) }

// Erasures lists the erasure records by number.
func (a auditor) Erasures(ctx context.Context) ([]tally.Erasure, error) {
	return readErasures(ctx, a.db)
}

func readErasures(ctx context.Context, db *DB) ([]tally.Erasure, error) {
	rows, err := db.pool.Query(ctx, `SELECT no, account_id, actor, reason, erased_at, transactions, checkpoint_through, mac
		FROM erasures ORDER BY no`)
	if err != nil {
		return nil, classify(ctx, "read erasures", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (tally.Erasure, error) {
		var e tally.Erasure
		err := r.Scan(&e.No, &e.AccountID, &e.Actor, &e.Reason, &e.ErasedAt, &e.Transactions, &e.CheckpointThrough, &e.MAC)
		e.ErasedAt = e.ErasedAt.UTC()
		return e, err
	})
	if err != nil {
		return nil, classify(ctx, "read erasures", err)
	}
	if out == nil {
		out = []tally.Erasure{}
	}
	return out, nil
}
