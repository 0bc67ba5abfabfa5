package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tally-ledger/tally"
)

// chainSealName is the ledger_meta row that keeps the chain seal.
const chainSealName = "chain_seal"

// ChainSeal returns the stored chain seal; ENOTFOUND when none is stored yet.
func (db *DB) ChainSeal(ctx context.Context) (tally.ChainSeal, error) {
	return readChainSeal(ctx, db.pool)
}

func readChainSeal(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}) (tally.ChainSeal, error) {
	var v string
	err := q.QueryRow(ctx, `SELECT value FROM ledger_meta WHERE name = $1`, chainSealName).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return tally.ChainSeal{}, tally.Errorf(tally.ENOTFOUND, "the chains are not sealed yet")
	}
	if err != nil {
		return tally.ChainSeal{}, classify(ctx, "read the chain seal", err)
	}
	return tally.DecodeChainSeal(v)
}

// InitChainSeal stores the seal for the highest sequence number handed out so far, unless one is stored.
// Replicas starting together race to insert it; the primary key keeps the first.
func (db *DB) InitChainSeal(ctx context.Context, seal func(highestSeq int64) tally.ChainSeal) (tally.ChainSeal, error) {
	s, err := readChainSeal(ctx, db.pool)
	if tally.ErrorCode(err) != tally.ENOTFOUND {
		return s, err
	}
	var highest int64
	err = db.pool.QueryRow(ctx, `SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM ledger_seq`).Scan(&highest)
	if err != nil {
		return tally.ChainSeal{}, classify(ctx, "read the ledger sequence", err)
	}
	s = seal(highest)
	_, err = db.pool.Exec(ctx, `INSERT INTO ledger_meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`,
		chainSealName, s.Encode())
	if err != nil {
		return tally.ChainSeal{}, classify(ctx, "store the chain seal", err)
	}
	return readChainSeal(ctx, db.pool)
}

// Checkpoint runs fn in one READ COMMITTED transaction that first takes a transaction-level advisory
// lock, so that checkpoints from every replica are serialised; it blocks no ledger write. Each of fn's
// scans is one statement, so it reads one snapshot.
func (db *DB) Checkpoint(ctx context.Context, fn func(ctx context.Context, tx tally.CheckpointTx) error) error {
	tx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return classify(ctx, "begin", err)
	}
	defer rollback(ctx, tx)
	// The lock is per schema, so that ledgers in other schemas of one database do not wait for each other.
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext(current_schema() || ':tally-checkpoint'))`); err != nil {
		return classify(ctx, "lock checkpoints", err)
	}
	if err := fn(ctx, checkpointTx{tx}); err != nil {
		return err
	}
	return classify(ctx, "commit", tx.Commit(ctx))
}

type checkpointTx struct{ tx pgx.Tx }

func (c checkpointTx) LastCheckpoint(ctx context.Context) (int64, error) {
	var n int64
	err := c.tx.QueryRow(ctx, `SELECT COALESCE(MAX(no), 0) FROM checkpoints`).Scan(&n)
	return n, classify(ctx, "read the last checkpoint", err)
}

func (c checkpointTx) MaxSeq(ctx context.Context) (int64, error) {
	var n int64
	err := c.tx.QueryRow(ctx, `SELECT COALESCE(MAX(seq), 0) FROM transactions`).Scan(&n)
	return n, classify(ctx, "read the highest transaction number", err)
}

func (c checkpointTx) ScanHeads(ctx context.Context, fn func(tally.Head, *tally.Head) error) error {
	rows, err := c.tx.Query(ctx, `SELECT a.id, a.balance_version, a.last_tx_hash, a.balance, h.version, h.hash, h.balance
		FROM accounts a
		LEFT JOIN checkpoint_heads h ON h.account_id = a.id
			AND h.checkpoint_no = (SELECT MAX(x.checkpoint_no) FROM checkpoint_heads x WHERE x.account_id = a.id)
		WHERE a.kind = 'customer'
		ORDER BY a.id`)
	if err != nil {
		return classify(ctx, "scan heads", err)
	}
	defer rows.Close()
	for rows.Next() {
		var cur tally.Head
		var version, balance *int64
		var hash *string
		if err := rows.Scan(&cur.AccountID, &cur.Version, &cur.Hash, &cur.Balance, &version, &hash, &balance); err != nil {
			return classify(ctx, "scan heads", err)
		}
		var rec *tally.Head
		if version != nil {
			rec = &tally.Head{AccountID: cur.AccountID, Version: *version, Hash: *hash, Balance: *balance}
		}
		if err := fn(cur, rec); err != nil {
			return err
		}
	}
	return classify(ctx, "scan heads", rows.Err())
}

func (c checkpointTx) RecordCheckpoint(ctx context.Context, cp tally.Checkpoint, changed []tally.Head) error {
	_, err := c.tx.Exec(ctx, `INSERT INTO checkpoints (no, created_at, max_seq, transactions, accounts, root, key_id, signature)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, cp.No, cp.CreatedAt, cp.MaxSeq, cp.Transactions, cp.Accounts, cp.Root, cp.KeyID, cp.Signature)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == codeUniqueViolation {
		return tally.Errorf(tally.ECONFLICT, "checkpoint %d is already recorded", cp.No)
	}
	if err != nil {
		return classify(ctx, "record the checkpoint", err)
	}
	if len(changed) == 0 {
		return nil
	}
	ids := make([]string, len(changed))
	versions := make([]int64, len(changed))
	hashes := make([]string, len(changed))
	balances := make([]int64, len(changed))
	for i, h := range changed {
		ids[i], versions[i], hashes[i], balances[i] = h.AccountID, h.Version, h.Hash, h.Balance
	}
	_, err = c.tx.Exec(ctx, `INSERT INTO checkpoint_heads (account_id, checkpoint_no, version, hash, balance)
		SELECT id, $2, v, h, b FROM unnest($1::text[], $3::bigint[], $4::text[], $5::bigint[]) AS u(id, v, h, b)`,
		ids, cp.No, versions, hashes, balances)
	return classify(ctx, "record heads", err)
}

// ChainSeal returns the stored chain seal.
func (a auditor) ChainSeal(ctx context.Context) (tally.ChainSeal, error) {
	return readChainSeal(ctx, a.db.pool)
}

// ScanRecordedHeads streams the heads recorded by checkpoints numbered up to through.
func (a auditor) ScanRecordedHeads(ctx context.Context, through int64, fn func(int64, tally.Head) error) error {
	rows, err := a.db.pool.Query(ctx, `SELECT checkpoint_no, account_id, version, hash, balance
		FROM checkpoint_heads WHERE checkpoint_no <= $1 ORDER BY checkpoint_no, account_id`, through)
	if err != nil {
		return classify(ctx, "scan recorded heads", err)
	}
	defer rows.Close()
	for rows.Next() {
		var no int64
		var h tally.Head
		if err := rows.Scan(&no, &h.AccountID, &h.Version, &h.Hash, &h.Balance); err != nil {
			return classify(ctx, "scan recorded heads", err)
		}
		if err := fn(no, h); err != nil {
			return err
		}
	}
	return classify(ctx, "scan recorded heads", rows.Err())
}
