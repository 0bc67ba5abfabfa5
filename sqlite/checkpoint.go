package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/tally-ledger/tally"
)

// chainSealName is the ledger_meta row that keeps the chain seal.
const chainSealName = "chain_seal"

// ChainSeal returns the stored chain seal; ENOTFOUND when none is stored yet.
func (db *DB) ChainSeal(ctx context.Context) (tally.ChainSeal, error) {
	return readChainSeal(ctx, db.reader)
}

func readChainSeal(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}) (tally.ChainSeal, error) {
	var v string
	err := q.QueryRowContext(ctx, `SELECT value FROM ledger_meta WHERE name = ?`, chainSealName).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return tally.ChainSeal{}, tally.Errorf(tally.ENOTFOUND, "the chains are not sealed yet")
	}
	if err != nil {
		return tally.ChainSeal{}, wrap(err, "read the chain seal")
	}
	return tally.DecodeChainSeal(v)
}

// InitChainSeal stores the seal for the highest sequence number handed out so far, unless one is stored.
func (db *DB) InitChainSeal(ctx context.Context, seal func(highestSeq int64) tally.ChainSeal) (tally.ChainSeal, error) {
	var out tally.ChainSeal
	err := db.write(ctx, func(tx *sql.Tx) error {
		s, err := readChainSeal(ctx, tx)
		if tally.ErrorCode(err) != tally.ENOTFOUND {
			out = s
			return err
		}
		var highest int64
		if err := tx.QueryRowContext(ctx, `SELECT value FROM counters WHERE name = 'ledger_seq'`).Scan(&highest); err != nil {
			return wrap(err, "read the ledger sequence")
		}
		out = seal(highest)
		_, err = tx.ExecContext(ctx, `INSERT INTO ledger_meta (name, value) VALUES (?, ?)`, chainSealName, out.Encode())
		return wrap(err, "store the chain seal")
	})
	return out, err
}

// Checkpoint reads in one read transaction (a WAL snapshot), so that scanning every account does not
// hold the one write lock, and records in a short write transaction that first checks that no other
// checkpoint was recorded since the snapshot (ECONFLICT if one was): checkpoints stay serialised.
func (db *DB) Checkpoint(ctx context.Context, fn func(ctx context.Context, tx tally.CheckpointTx) error) error {
	tx, err := db.reader.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return wrap(err, "begin")
	}
	defer tx.Rollback()
	return fn(ctx, &checkpointTx{tx: tx, db: db})
}

type checkpointTx struct {
	tx   *sql.Tx // the read snapshot
	db   *DB
	last int64 // the newest checkpoint in the snapshot
	// erasures is how many erasures the snapshot holds: one recorded since re-keyed an account whose old
	// head the snapshot still shows.
	erasures int64
}

func (c *checkpointTx) LastCheckpoint(ctx context.Context) (int64, error) {
	err := c.tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(no), 0), (SELECT COUNT(*) FROM erasures) FROM checkpoints`).Scan(&c.last, &c.erasures)
	return c.last, wrap(err, "read the last checkpoint")
}

func (c *checkpointTx) MaxSeq(ctx context.Context) (int64, error) {
	var n int64
	err := c.tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(seq), 0) FROM transactions`).Scan(&n)
	return n, wrap(err, "read the highest transaction number")
}

// headsQuery reads every customer account's head beside the head its newest checkpoint row recorded.
const headsQuery = `SELECT a.id, a.balance_version, a.last_tx_hash, a.balance, h.version, h.hash, h.balance
	FROM accounts a
	LEFT JOIN checkpoint_heads h ON h.account_id = a.id
		AND h.checkpoint_no = (SELECT MAX(x.checkpoint_no) FROM checkpoint_heads x WHERE x.account_id = a.id)
	WHERE a.kind = 'customer'
	ORDER BY a.id`

func (c *checkpointTx) ScanHeads(ctx context.Context, fn func(tally.Head, *tally.Head) error) error {
	rows, err := c.tx.QueryContext(ctx, headsQuery)
	if err != nil {
		return wrap(err, "scan heads")
	}
	defer rows.Close()
	for rows.Next() {
		var cur tally.Head
		var version, balance sql.NullInt64
		var hash sql.NullString
		if err := rows.Scan(&cur.AccountID, &cur.Version, &cur.Hash, &cur.Balance, &version, &hash, &balance); err != nil {
			return wrap(err, "scan heads")
		}
		var rec *tally.Head
		if version.Valid {
			rec = &tally.Head{AccountID: cur.AccountID, Version: version.Int64, Hash: hash.String, Balance: balance.Int64}
		}
		if err := fn(cur, rec); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), "scan heads")
}

func (c *checkpointTx) RecordCheckpoint(ctx context.Context, cp tally.Checkpoint, changed []tally.Head) error {
	return c.db.write(ctx, func(tx *sql.Tx) error {
		var n int64
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM erasures`).Scan(&n); err != nil {
			return wrap(err, "count erasures")
		}
		if n != c.erasures {
			return tally.Errorf(tally.ECONFLICT, "a customer was forgotten meanwhile")
		}
		return recordCheckpoint(ctx, tx, cp, c.last, changed)
	})
}

func recordCheckpoint(ctx context.Context, tx *sql.Tx, cp tally.Checkpoint, last int64, changed []tally.Head) error {
	var now int64
	if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(no), 0) FROM checkpoints`).Scan(&now); err != nil {
		return wrap(err, "read the last checkpoint")
	}
	if now != last {
		return tally.Errorf(tally.ECONFLICT, "checkpoint %d was recorded meanwhile", now)
	}
	_, err := tx.ExecContext(ctx, `INSERT INTO checkpoints (no, created_at, max_seq, transactions, accounts, root, key_id, signature)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, cp.No, cp.CreatedAt.UnixMicro(), cp.MaxSeq, cp.Transactions, cp.Accounts, cp.Root, cp.KeyID, cp.Signature)
	if isUniqueViolation(err) {
		return tally.Errorf(tally.ECONFLICT, "checkpoint %d is already recorded", cp.No)
	}
	if err != nil {
		return wrap(err, "record the checkpoint")
	}
	if len(changed) == 0 {
		return nil
	}
	stmt, err := tx.PrepareContext(ctx, `INSERT INTO checkpoint_heads (account_id, checkpoint_no, version, hash, balance) VALUES (?, ?, ?, ?, ?)`)
	if err != nil {
		return wrap(err, "record heads")
	}
	defer stmt.Close()
	for _, h := range changed {
		if _, err := stmt.ExecContext(ctx, h.AccountID, cp.No, h.Version, h.Hash, h.Balance); err != nil {
			return wrap(err, "record heads")
		}
	}
	return nil
}

// ChainSeal returns the stored chain seal.
func (a auditor) ChainSeal(ctx context.Context) (tally.ChainSeal, error) {
	return readChainSeal(ctx, a.db)
}

// ScanRecordedHeads streams the heads recorded by checkpoints numbered up to through.
func (a auditor) ScanRecordedHeads(ctx context.Context, through int64, fn func(int64, tally.Head) error) error {
	rows, err := a.db.QueryContext(ctx, `SELECT checkpoint_no, account_id, version, hash, balance
		FROM checkpoint_heads WHERE checkpoint_no <= ? ORDER BY checkpoint_no, account_id`, through)
	if err != nil {
		return wrap(err, "scan recorded heads")
	}
	defer rows.Close()
	for rows.Next() {
		var no int64
		var h tally.Head
		if err := rows.Scan(&no, &h.AccountID, &h.Version, &h.Hash, &h.Balance); err != nil {
			return wrap(err, "scan recorded heads")
		}
		if err := fn(no, h); err != nil {
			return err
		}
	}
	return wrap(rows.Err(), "scan recorded heads")
}
