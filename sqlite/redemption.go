package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/internal/outboxtable"
)

// rewardColumns reads a reward row.
const rewardColumns = `reward_id, name, description, image_url, point_cost, inventory, min_tier,
	fulfillment_method, webhook_url, active, created_at, updated_at`

func scanReward(row interface{ Scan(...any) error }) (tally.Reward, error) {
	var r tally.Reward
	var inventory sql.NullInt64
	var created, updated int64
	if err := row.Scan(&r.ID, &r.Name, &r.Description, &r.ImageURL, &r.PointCost, &inventory, &r.MinTier,
		&r.FulfillmentMethod, &r.WebhookURL, &r.Active, &created, &updated); err != nil {
		return tally.Reward{}, err
	}
	if inventory.Valid {
		r.Inventory = &inventory.Int64
	}
	r.CreatedAt, r.UpdatedAt = fromMicros(created), fromMicros(updated)
	return r, nil
}

// LockRewards returns the rewards among ids. SQLite has one writer: reading them is locking them.
func (w *writeTx) LockRewards(ctx context.Context, ids []string) (map[string]tally.Reward, error) {
	out := make(map[string]tally.Reward, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := w.tx.QueryContext(ctx, `SELECT `+rewardColumns+` FROM reward_catalog
		WHERE reward_id IN (`+list(len(ids), "?")+`) ORDER BY reward_id`, args...)
	if err != nil {
		return nil, wrap(err, "lock rewards")
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanReward(rows)
		if err != nil {
			return nil, wrap(err, "lock rewards")
		}
		out[r.ID] = r
	}
	return out, wrap(rows.Err(), "lock rewards")
}

// FreeCoupons returns up to n unassigned codes of a reward.
func (w *writeTx) FreeCoupons(ctx context.Context, rewardID string, n int) ([]string, error) {
	rows, err := w.tx.QueryContext(ctx, `SELECT code FROM reward_coupons
		WHERE reward_id = ? AND receipt_id IS NULL ORDER BY code LIMIT ?`, rewardID, n)
	if err != nil {
		return nil, wrap(err, "free coupons")
	}
	defer rows.Close()
	var codes []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			return nil, wrap(err, "free coupons")
		}
		codes = append(codes, c)
	}
	return codes, wrap(rows.Err(), "free coupons")
}

// AddInventory adds deltas to limited inventories, in reward order.
func (w *writeTx) AddInventory(ctx context.Context, deltas map[string]int64) error {
	ids := make([]string, 0, len(deltas))
	for id := range deltas {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		_, err := w.tx.ExecContext(ctx, `UPDATE reward_catalog SET inventory = inventory + ?
			WHERE reward_id = ? AND inventory IS NOT NULL`, deltas[id], id)
		if resultCode(err) != 0 && checkViolation(err, "") != nil {
			return tally.Errorf(tally.EINTERNAL, "ledger invariant violated: the inventory of reward %q would go below zero", id)
		}
		if err != nil {
			return wrap(err, "add inventory")
		}
	}
	return nil
}

// InsertRedemptions writes redemptions and assigns their coupon codes.
func (w *writeTx) InsertRedemptions(ctx context.Context, rs []tally.Redemption) error {
	for _, r := range rs {
		_, err := w.tx.ExecContext(ctx, `INSERT INTO redemptions (receipt_id, tx_seq, account_id, reward_id,
			points, method, status, coupon_code, attempts, next_attempt_at, last_error, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ReceiptID, r.TxSeq, r.AccountID, r.RewardID, r.Points, r.Method, r.Status, r.CouponCode, r.Attempts,
			micros(r.NextAttemptAt), r.LastError, micros(r.CreatedAt), micros(r.UpdatedAt))
		if isUniqueViolation(err) {
			return &tally.Error{Code: tally.ECONFLICT, Message: fmt.Sprintf("redemption %q or its transaction %d is already recorded", r.ReceiptID, r.TxSeq), Err: err}
		}
		if err != nil {
			return wrap(err, "insert redemptions")
		}
		if r.CouponCode == "" {
			continue
		}
		res, err := w.tx.ExecContext(ctx, `UPDATE reward_coupons SET receipt_id = ?
			WHERE reward_id = ? AND code = ? AND receipt_id IS NULL`, r.ReceiptID, r.RewardID, r.CouponCode)
		if err != nil {
			return wrap(err, "assign coupon")
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return tally.Errorf(tally.EINTERNAL, "coupon code of reward %q is not free", r.RewardID)
		}
	}
	return nil
}

// redemptionColumns reads a redemption row.
const redemptionColumns = outboxtable.RedemptionColumns

func scanRedemption(row scanner) (tally.Redemption, error) {
	var r tally.Redemption
	var next, created, updated, lease int64
	if err := row.Scan(&r.ReceiptID, &r.TxSeq, &r.AccountID, &r.RewardID, &r.Points, &r.Method, &r.Status,
		&r.CouponCode, &r.Attempts, &next, &r.LastError, &created, &updated, &lease); err != nil {
		return tally.Redemption{}, err
	}
	r.NextAttemptAt, r.CreatedAt, r.UpdatedAt, r.LeaseUntil = fromMicros(next), fromMicros(created), fromMicros(updated), fromMicros(lease)
	return r, nil
}

// RedemptionsOf returns the redemptions of transactions.
func (w *writeTx) RedemptionsOf(ctx context.Context, seqs []int64) (map[int64]tally.Redemption, error) {
	out := make(map[int64]tally.Redemption, len(seqs))
	if len(seqs) == 0 {
		return out, nil
	}
	args := make([]any, len(seqs))
	for i, s := range seqs {
		args[i] = s
	}
	rows, err := w.tx.QueryContext(ctx, `SELECT `+redemptionColumns+` FROM redemptions
		WHERE tx_seq IN (`+list(len(seqs), "?")+`)`, args...)
	if err != nil {
		return nil, wrap(err, "read redemptions")
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRedemption(rows)
		if err != nil {
			return nil, wrap(err, "read redemptions")
		}
		out[r.TxSeq] = r
	}
	return out, wrap(rows.Err(), "read redemptions")
}

// SetRedemptionStatus sets the status of redemptions.
func (w *writeTx) SetRedemptionStatus(ctx context.Context, receiptIDs []string, status string, now time.Time) error {
	for _, id := range receiptIDs {
		res, err := w.tx.ExecContext(ctx, `UPDATE redemptions SET status = ?, updated_at = ? WHERE receipt_id = ?`,
			status, micros(now), id)
		if e := checkViolation(err, fmt.Sprintf("redemption status %q", status)); e != nil {
			return e
		}
		if err != nil {
			return wrap(err, "set redemption status")
		}
		if n, err := res.RowsAffected(); err != nil || n != 1 {
			return tally.Errorf(tally.EINTERNAL, "redemption %q does not exist", id)
		}
	}
	return nil
}

// Redemption returns one redemption by receipt id.
func (db *DB) Redemption(ctx context.Context, receiptID string) (tally.Redemption, error) {
	r, err := scanRedemption(db.reader.QueryRowContext(ctx, `SELECT `+redemptionColumns+` FROM redemptions WHERE receipt_id = ?`, receiptID))
	if errors.Is(err, sql.ErrNoRows) {
		return tally.Redemption{}, tally.Errorf(tally.ENOTFOUND, "no receipt %q", receiptID)
	}
	if err != nil {
		return tally.Redemption{}, wrap(err, "read redemption")
	}
	return r, nil
}
