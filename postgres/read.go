package postgres

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-ledger/tally"
)

// accountColumns reads an account with a system account's balance summed over its shards.
const accountColumns = `a.id, a.status,
	CASE WHEN a.kind = 'system'
		THEN COALESCE((SELECT SUM(s.balance) FROM account_shards s WHERE s.account_id = a.id), 0)::bigint
		ELSE a.balance END,
	a.balance_version, a.last_tx_hash, a.created_at, a.pending, a.overdraft_limit, a.qualifying_bound, a.qualifying_from`

// Account returns one account. ENOTFOUND when absent.
func (db *DB) Account(ctx context.Context, id string) (tally.Account, error) {
	if err := tally.CheckText("account id", id); err != nil {
		return tally.Account{}, err
	}
	a, err := scanAccount(db.pool.QueryRow(ctx, `SELECT `+accountColumns+` FROM accounts a WHERE a.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return tally.Account{}, tally.Errorf(tally.ENOTFOUND, "account %q not found", id)
	}
	if err != nil {
		return tally.Account{}, classify(ctx, "account", err)
	}
	return a, nil
}

// Transaction returns one transaction with its postings. ENOTFOUND when absent.
func (db *DB) Transaction(ctx context.Context, seq int64) (tally.Transaction, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT `+joinedColumns+`
		FROM transactions t LEFT JOIN postings p ON p.seq = t.seq
		WHERE t.seq = $1
		ORDER BY p.idx`,
		seq)
	if err != nil {
		return tally.Transaction{}, classify(ctx, "transaction", err)
	}
	var (
		found bool
		tx    tally.Transaction
	)
	err = scanJoined(rows, func(t tally.Transaction) error {
		found, tx = true, t
		return nil
	})
	if err != nil {
		return tally.Transaction{}, classify(ctx, "transaction", err)
	}
	if !found {
		return tally.Transaction{}, tally.Errorf(tally.ENOTFOUND, "transaction %d not found", seq)
	}
	return tx, nil
}

// TransactionByKey returns the transaction written under an idempotency key. ENOTFOUND when none was.
func (db *DB) TransactionByKey(ctx context.Context, channel, key string) (tally.Transaction, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT `+joinedColumns+`
		FROM transactions t LEFT JOIN postings p ON p.seq = t.seq
		WHERE t.channel = $1 AND t.idempotency_key = $2
		ORDER BY p.idx`,
		channel, key)
	if err != nil {
		return tally.Transaction{}, classify(ctx, "transaction by key", err)
	}
	var (
		found bool
		tx    tally.Transaction
	)
	err = scanJoined(rows, func(t tally.Transaction) error {
		found, tx = true, t
		return nil
	})
	if err != nil {
		return tally.Transaction{}, classify(ctx, "transaction by key", err)
	}
	if !found {
		return tally.Transaction{}, tally.Errorf(tally.ENOTFOUND, "no transaction for key %q in channel %q", key, channel)
	}
	return tx, nil
}

// History returns up to limit transactions of an account with Seq < beforeSeq (all when beforeSeq <= 0),
// newest first, with their postings, in one query.
func (db *DB) History(ctx context.Context, accountID string, beforeSeq int64, limit int) ([]tally.Transaction, error) {
	if err := tally.CheckText("account id", accountID); err != nil {
		return nil, err
	}
	out := []tally.Transaction{}
	if limit <= 0 {
		return out, nil
	}
	if beforeSeq <= 0 {
		beforeSeq = math.MaxInt64
	}
	rows, err := db.pool.Query(ctx, `
		SELECT `+joinedColumns+`
		FROM (
			SELECT * FROM transactions
			WHERE account_id = $1 AND seq < $2
			ORDER BY seq DESC
			LIMIT $3
		) t LEFT JOIN postings p ON p.seq = t.seq
		ORDER BY t.seq DESC, p.idx`,
		accountID, beforeSeq, limit)
	if err != nil {
		return nil, classify(ctx, "history", err)
	}
	err = scanJoined(rows, func(t tally.Transaction) error {
		out = append(out, t)
		return nil
	})
	if err != nil {
		return nil, classify(ctx, "history", err)
	}
	return out, nil
}

const outcomeColumns = `p.channel, p.event_id, p.request_hash, COALESCE(p.tx_seq, 0), p.code, p.response, p.created_at`

// Outcome returns a remembered outcome. ENOTFOUND when absent or still pending.
func (db *DB) Outcome(ctx context.Context, channel, key string) (tally.Outcome, error) {
	if err := cmp.Or(tally.CheckText("channel", channel), tally.CheckText("idempotency key", key)); err != nil {
		return tally.Outcome{}, err
	}
	rows, err := db.pool.Query(ctx, `
		SELECT `+outcomeColumns+` FROM processed_events p
		WHERE p.channel = $1 AND p.event_id = $2 AND p.state = 'done'`,
		channel, key)
	if err != nil {
		return tally.Outcome{}, classify(ctx, "outcome", err)
	}
	o, err := pgx.CollectExactlyOneRow(rows, scanOutcome)
	if errors.Is(err, pgx.ErrNoRows) {
		return tally.Outcome{}, tally.Errorf(tally.ENOTFOUND, "no outcome for key %q in channel %q", key, channel)
	}
	if err != nil {
		return tally.Outcome{}, classify(ctx, "outcome", err)
	}
	return o, nil
}

// PurgeOutcomes deletes the outcomes of events created before the given time. The prefix is compared
// byte for byte.
func (db *DB) PurgeOutcomes(ctx context.Context, before time.Time) (int64, error) {
	tag, err := db.pool.Exec(ctx, `DELETE FROM processed_events
		WHERE created_at < $1 AND left(channel, length($2::text)) = $2::text`, before.UTC(), tally.EventChannelPrefix)
	if err != nil {
		return 0, classify(ctx, "purge outcomes", err)
	}
	return tag.RowsAffected(), nil
}

// Rewards lists the reward catalog ordered by id.
func (db *DB) Rewards(ctx context.Context) ([]tally.Reward, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+rewardColumns+` FROM reward_catalog ORDER BY reward_id`)
	if err != nil {
		return nil, classify(ctx, "rewards", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.Reward, error) { return scanReward(row) })
	if err != nil {
		return nil, classify(ctx, "rewards", err)
	}
	if out == nil {
		out = []tally.Reward{}
	}
	return out, nil
}

// PutReward inserts a reward or replaces every field of the stored one but its creation time. A zero
// CreatedAt or UpdatedAt means now. A point cost or inventory out of range is EINVALID.
func (db *DB) PutReward(ctx context.Context, r tally.Reward) error {
	if err := r.CheckText(); err != nil {
		return err
	}
	now := time.Now().UTC()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = now
	}
	_, err := db.pool.Exec(ctx, `
		INSERT INTO reward_catalog (reward_id, name, point_cost, inventory, min_tier, fulfillment_method,
			webhook_url, active, created_at, updated_at, description, image_url)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
		ON CONFLICT (reward_id) DO UPDATE SET
			name = EXCLUDED.name,
			description = EXCLUDED.description,
			image_url = EXCLUDED.image_url,
			point_cost = EXCLUDED.point_cost,
			inventory = EXCLUDED.inventory,
			min_tier = EXCLUDED.min_tier,
			fulfillment_method = EXCLUDED.fulfillment_method,
			webhook_url = EXCLUDED.webhook_url,
			active = EXCLUDED.active,
			updated_at = EXCLUDED.updated_at`,
		r.ID, r.Name, r.PointCost, r.Inventory, r.MinTier, r.FulfillmentMethod, r.WebhookURL, r.Active,
		r.CreatedAt.UTC(), r.UpdatedAt.UTC(), r.Description, r.ImageURL)
	if code, constraint := pgCode(err); code == codeCheckViolation {
		return &tally.Error{Code: tally.EINVALID, Message: "reward violates " + constraint, Err: err}
	}
	return classify(ctx, "put reward", err)
}

func scanAccount(row pgx.Row) (tally.Account, error) {
	var (
		a      tally.Account
		status string
	)
	var from *time.Time
	err := row.Scan(&a.ID, &status, &a.Balance, &a.BalanceVersion, &a.LastTxHash, &a.CreatedAt, &a.Pending, &a.OverdraftLimit,
		&a.QualifyingBound, &from)
	a.Status = tally.AccountStatus(status)
	a.CreatedAt = a.CreatedAt.UTC()
	if from != nil {
		a.QualifyingFrom = from.UTC()
	}
	return a, err
}

func scanOutcome(row pgx.CollectableRow) (tally.Outcome, error) {
	var (
		o        tally.Outcome
		code     string
		response []byte
	)
	err := row.Scan(&o.Channel, &o.Key, &o.RequestHash, &o.TxSeq, &code, &response, &o.CreatedAt)
	o.Code = tally.Code(code)
	if response != nil {
		o.Response = json.RawMessage(response)
	}
	o.CreatedAt = o.CreatedAt.UTC()
	return o, err
}

// joinedColumns reads a transaction row t LEFT JOINed with its postings p: one result row per posting,
// or one with NULL posting columns for a transaction that has none.
const joinedColumns = `t.seq, t.kind, t.account_id, t.channel, t.idempotency_key, t.request_hash, t.amount,
	t.reason, t.actor, t.metadata, COALESCE(t.reverses_seq, 0), t.created_at, t.hash, p.account_id, p.amount`

// scanJoined groups the consecutive rows of each transaction (rows must be ordered by seq first, or by
// a key that keeps a transaction's rows together) and calls fn once per transaction. It streams: only
// one transaction is held at a time. It closes rows.
func scanJoined(rows pgx.Rows, fn func(tally.Transaction) error) error {
	defer rows.Close()
	var (
		cur  tally.Transaction
		have bool
	)
	for rows.Next() {
		var (
			t              tally.Transaction
			kind, metadata string
			postingAccount *string
			postingAmount  *int64
		)
		err := rows.Scan(&t.Seq, &kind, &t.AccountID, &t.Channel, &t.IdempotencyKey, &t.RequestHash, &t.Amount,
			&t.Reason, &t.Actor, &metadata, &t.ReversesSeq, &t.CreatedAt, &t.Hash, &postingAccount, &postingAmount)
		if err != nil {
			return err
		}
		if !have || t.Seq != cur.Seq {
			if have {
				if err := fn(cur); err != nil {
					return err
				}
			}
			t.Kind = tally.Kind(kind)
			if metadata != "" {
				t.Metadata = json.RawMessage(metadata)
			}
			t.CreatedAt = t.CreatedAt.UTC()
			cur, have = t, true
		}
		if postingAccount != nil && postingAmount != nil {
			cur.Postings = append(cur.Postings, tally.Posting{AccountID: *postingAccount, Amount: *postingAmount})
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if have {
		return fn(cur)
	}
	return nil
}
