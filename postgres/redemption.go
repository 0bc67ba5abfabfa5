package postgres

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/internal/outboxtable"
)

// rewardColumns reads a reward row.
const rewardColumns = `reward_id, name, description, image_url, point_cost, inventory, min_tier,
	fulfillment_method, webhook_url, active, created_at, updated_at`

func scanReward(row pgx.Row) (tally.Reward, error) {
	var r tally.Reward
	err := row.Scan(&r.ID, &r.Name, &r.Description, &r.ImageURL, &r.PointCost, &r.Inventory, &r.MinTier,
		&r.FulfillmentMethod, &r.WebhookURL, &r.Active, &r.CreatedAt, &r.UpdatedAt)
	r.CreatedAt, r.UpdatedAt = r.CreatedAt.UTC(), r.UpdatedAt.UTC()
	return r, err
}

// LockRewards locks the rewards among ids, in id order (after the accounts: see tally.WriteTx).
func (w *writeTx) LockRewards(ctx context.Context, ids []string) (map[string]tally.Reward, error) {
	out := make(map[string]tally.Reward, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := w.query(ctx, "lock rewards", `SELECT `+rewardColumns+` FROM reward_catalog
		WHERE reward_id = ANY($1) ORDER BY reward_id FOR UPDATE`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanReward(rows)
		if err != nil {
			return nil, w.fail(ctx, "lock rewards", err)
		}
		out[r.ID] = r
	}
	if err := rows.Err(); err != nil {
		return nil, w.fail(ctx, "lock rewards", err)
	}
	return out, nil
}

// FreeCoupons returns up to n unassigned codes of a (locked) reward.
func (w *writeTx) FreeCoupons(ctx context.Context, rewardID string, n int) ([]string, error) {
	rows, err := w.query(ctx, "free coupons", `SELECT code FROM reward_coupons
		WHERE reward_id = $1 AND receipt_id IS NULL ORDER BY code LIMIT $2`, rewardID, n)
	if err != nil {
		return nil, err
	}
	codes, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, w.fail(ctx, "free coupons", err)
	}
	return codes, nil
}

// AddInventory adds deltas to limited inventories in one statement (deferred), in reward order.
func (w *writeTx) AddInventory(ctx context.Context, deltas map[string]int64) error {
	if len(deltas) == 0 {
		return nil
	}
	ids := make([]string, 0, len(deltas))
	for id := range deltas {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	amounts := make([]int64, len(ids))
	for i, id := range ids {
		amounts[i] = deltas[id]
	}
	w.pending = append(w.pending, deferred{op: "add inventory", sql: `
		UPDATE reward_catalog r SET inventory = r.inventory + u.delta
		FROM unnest($1::text[], $2::bigint[]) AS u(id, delta)
		WHERE r.reward_id = u.id AND r.inventory IS NOT NULL`,
		args: []any{ids, amounts},
		mapErr: func(err error) error {
			if code, _ := pgCode(err); code == codeCheckViolation {
				return &tally.Error{Code: tally.EINTERNAL, Message: "ledger invariant violated: a reward's inventory would go below zero", Err: err}
			}
			return nil
		}})
	return nil
}

// InsertRedemptions writes redemptions (deferred, after their transactions) and assigns coupon codes.
func (w *writeTx) InsertRedemptions(ctx context.Context, rs []tally.Redemption) error {
	if len(rs) == 0 {
		return nil
	}
	var (
		ids, accounts, rewards, methods, statuses, codes []string
		seqs, points                                     []int64
		next, created                                    []time.Time
	)
	for _, r := range rs {
		ids, accounts, rewards = append(ids, r.ReceiptID), append(accounts, r.AccountID), append(rewards, r.RewardID)
		methods, statuses, codes = append(methods, r.Method), append(statuses, r.Status), append(codes, r.CouponCode)
		seqs, points = append(seqs, r.TxSeq), append(points, r.Points)
		next, created = append(next, r.NextAttemptAt.UTC()), append(created, r.CreatedAt.UTC())
	}
	w.pending = append(w.pending, deferred{op: "insert redemptions", sql: `
		INSERT INTO redemptions (receipt_id, tx_seq, account_id, reward_id, points, method, status, coupon_code,
			next_attempt_at, created_at, updated_at)
		SELECT u.id, u.seq, u.account, u.reward, u.points, u.method, u.status, u.code, u.next, u.created, u.created
		FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[],
			$9::timestamptz[], $10::timestamptz[]) AS u(id, seq, account, reward, points, method, status, code, next, created)`,
		args: []any{ids, seqs, accounts, rewards, points, methods, statuses, codes, next, created},
		mapErr: func(err error) error {
			if code, _ := pgCode(err); code == codeUniqueViolation {
				return &tally.Error{Code: tally.ECONFLICT, Message: "a redemption's receipt or transaction is already recorded", Err: err}
			}
			return nil
		}})
	var cRewards, cCodes, cIDs []string
	for _, r := range rs {
		if r.CouponCode != "" {
			cRewards, cCodes, cIDs = append(cRewards, r.RewardID), append(cCodes, r.CouponCode), append(cIDs, r.ReceiptID)
		}
	}
	if len(cCodes) > 0 {
		want := int64(len(cCodes))
		w.pending = append(w.pending, deferred{op: "assign coupons", sql: `
			UPDATE reward_coupons c SET receipt_id = u.id
			FROM unnest($1::text[], $2::text[], $3::text[]) AS u(reward, code, id)
			WHERE c.reward_id = u.reward AND c.code = u.code AND c.receipt_id IS NULL`,
			args: []any{cRewards, cCodes, cIDs},
			check: func(tag pgconn.CommandTag) error {
				if tag.RowsAffected() != want {
					return tally.Errorf(tally.EINTERNAL, "%d of %d coupon codes to assign are not free", want-tag.RowsAffected(), want)
				}
				return nil
			}})
	}
	return nil
}

// redemptionColumns reads a redemption row.
const redemptionColumns = outboxtable.RedemptionColumns

func scanRedemption(row pgx.Row) (tally.Redemption, error) {
	var r tally.Redemption
	err := row.Scan(&r.ReceiptID, &r.TxSeq, &r.AccountID, &r.RewardID, &r.Points, &r.Method, &r.Status,
		&r.CouponCode, &r.Attempts, &r.NextAttemptAt, &r.LastError, &r.CreatedAt, &r.UpdatedAt, &r.LeaseUntil)
	r.NextAttemptAt, r.CreatedAt, r.UpdatedAt, r.LeaseUntil = r.NextAttemptAt.UTC(), r.CreatedAt.UTC(), r.UpdatedAt.UTC(), r.LeaseUntil.UTC()
	return r, err
}

// RedemptionsOf returns the redemptions of transactions.
func (w *writeTx) RedemptionsOf(ctx context.Context, seqs []int64) (map[int64]tally.Redemption, error) {
	out := make(map[int64]tally.Redemption, len(seqs))
	if len(seqs) == 0 {
		return out, nil
	}
	rows, err := w.query(ctx, "read redemptions", `SELECT `+redemptionColumns+` FROM redemptions WHERE tx_seq = ANY($1)`, seqs)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRedemption(rows)
		if err != nil {
			return nil, w.fail(ctx, "read redemptions", err)
		}
		out[r.TxSeq] = r
	}
	if err := rows.Err(); err != nil {
		return nil, w.fail(ctx, "read redemptions", err)
	}
	return out, nil
}

// SetRedemptionStatus sets the status of redemptions (deferred).
func (w *writeTx) SetRedemptionStatus(ctx context.Context, receiptIDs []string, status string, now time.Time) error {
	if len(receiptIDs) == 0 {
		return nil
	}
	want := int64(len(receiptIDs))
	w.pending = append(w.pending, deferred{op: "set redemption status", sql: `
		UPDATE redemptions SET status = $2, updated_at = $3 WHERE receipt_id = ANY($1)`,
		args: []any{receiptIDs, status, now.UTC()},
		mapErr: func(err error) error {
			if code, _ := pgCode(err); code == codeCheckViolation {
				return tally.Errorf(tally.EINVALID, "redemption status %q is out of range", status)
			}
			return nil
		},
		check: func(tag pgconn.CommandTag) error {
			if tag.RowsAffected() != want {
				return tally.Errorf(tally.EINTERNAL, "%d of %d redemptions to update do not exist", want-tag.RowsAffected(), want)
			}
			return nil
		}})
	return nil
}

// Redemption returns one redemption by receipt id.
func (db *DB) Redemption(ctx context.Context, receiptID string) (tally.Redemption, error) {
	r, err := scanRedemption(db.pool.QueryRow(ctx, `SELECT `+redemptionColumns+` FROM redemptions WHERE receipt_id = $1`, receiptID))
	if errors.Is(err, pgx.ErrNoRows) {
		return tally.Redemption{}, tally.Errorf(tally.ENOTFOUND, "no receipt %q", receiptID)
	}
	if err != nil {
		return tally.Redemption{}, classify(ctx, fmt.Sprintf("read redemption %q", receiptID), err)
	}
	return r, nil
}
