package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
)

// The catalog's writes run in the one write connection's IMMEDIATE transactions, so that SQLite's single
// writer makes each read-then-write below atomic with respect to redemptions.

// readReward reads one reward in a transaction. ENOTFOUND when absent.
func readReward(ctx context.Context, q querier, id string) (tally.Reward, error) {
	r, err := scanReward(q.QueryRowContext(ctx, `SELECT `+rewardColumns+` FROM reward_catalog WHERE reward_id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return tally.Reward{}, tally.Errorf(tally.ENOTFOUND, "no reward %q", id)
	}
	return r, wrap(err, "read reward")
}

// CreateReward inserts a new reward.
func (db *DB) CreateReward(ctx context.Context, r tally.Reward) error {
	if err := r.CheckText(); err != nil {
		return err
	}
	now := micros(time.Now())
	var inventory any
	if r.Inventory != nil {
		inventory = *r.Inventory
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO reward_catalog (reward_id, name, description, image_url,
			point_cost, inventory, min_tier, fulfillment_method, webhook_url, active, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.ID, r.Name, r.Description, r.ImageURL, r.PointCost, inventory, r.MinTier, r.FulfillmentMethod,
			r.WebhookURL, r.Active, now, now)
		if isUniqueViolation(err) {
			return &tally.Error{Code: tally.ECONFLICT, Message: fmt.Sprintf("reward %q exists already", r.ID), Err: err}
		}
		if e := checkViolation(err, fmt.Sprintf("cost or inventory of reward %q", r.ID)); e != nil {
			return e
		}
		return wrap(err, "create reward")
	})
}

// UpdateReward applies fn to a reward in one write transaction.
func (db *DB) UpdateReward(ctx context.Context, id string, fn func(*tally.Reward) error) (tally.Reward, error) {
	if err := tally.CheckText("reward_id", id); err != nil {
		return tally.Reward{}, err
	}
	var out tally.Reward
	err := db.write(ctx, func(tx *sql.Tx) error {
		r, err := readReward(ctx, tx, id)
		if err != nil {
			return err
		}
		created := r.CreatedAt
		if err := fn(&r); err != nil {
			return err
		}
		r.ID, r.CreatedAt, r.UpdatedAt = id, created, time.Now()
		if err := r.CheckText(); err != nil {
			return err
		}
		var inventory any
		if r.Inventory != nil {
			inventory = *r.Inventory
		}
		out, err = scanReward(tx.QueryRowContext(ctx, `UPDATE reward_catalog SET name = ?, description = ?,
			image_url = ?, point_cost = ?, inventory = ?, min_tier = ?, fulfillment_method = ?, webhook_url = ?,
			active = ?, updated_at = ? WHERE reward_id = ? RETURNING `+rewardColumns,
			r.Name, r.Description, r.ImageURL, r.PointCost, inventory, r.MinTier, r.FulfillmentMethod, r.WebhookURL,
			r.Active, micros(r.UpdatedAt), id))
		if e := checkViolation(err, fmt.Sprintf("cost or inventory of reward %q", id)); e != nil {
			return e
		}
		return wrap(err, "update reward")
	})
	return out, err
}

// SetInventory sets a reward's units left in one statement.
func (db *DB) SetInventory(ctx context.Context, id string, n *int64) (tally.Reward, error) {
	if err := tally.CheckText("reward_id", id); err != nil {
		return tally.Reward{}, err
	}
	if n != nil && (*n < 0 || *n > tally.MaxAmount) {
		return tally.Reward{}, tally.Errorf(tally.EINVALID, "inventory must be between 0 and %d (or unlimited)", tally.MaxAmount)
	}
	var inventory any
	if n != nil {
		inventory = *n
	}
	var out tally.Reward
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = scanReward(tx.QueryRowContext(ctx, `UPDATE reward_catalog SET inventory = ?, updated_at = ?
			WHERE reward_id = ? RETURNING `+rewardColumns, inventory, micros(time.Now()), id))
		if errors.Is(err, sql.ErrNoRows) {
			return tally.Errorf(tally.ENOTFOUND, "no reward %q", id)
		}
		return wrap(err, "set inventory")
	})
	return out, err
}

// AddStock adds units to a reward's limited stock.
func (db *DB) AddStock(ctx context.Context, id string, delta int64) (tally.Reward, error) {
	if err := tally.CheckText("reward_id", id); err != nil {
		return tally.Reward{}, err
	}
	var out tally.Reward
	err := db.write(ctx, func(tx *sql.Tx) error {
		r, err := readReward(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := r.CheckStockChange(delta); err != nil {
			return err
		}
		out, err = scanReward(tx.QueryRowContext(ctx, `UPDATE reward_catalog SET inventory = inventory + ?,
			updated_at = ? WHERE reward_id = ? RETURNING `+rewardColumns, delta, micros(time.Now()), id))
		return wrap(err, "add stock")
	})
	return out, err
}

// AddCoupons adds codes to a coupon reward in one write transaction.
func (db *DB) AddCoupons(ctx context.Context, rewardID string, codes []string) (tally.CouponUpload, error) {
	if err := tally.CheckText("reward_id", rewardID); err != nil {
		return tally.CouponUpload{}, err
	}
	if err := tally.CheckCouponCodes(codes); err != nil {
		return tally.CouponUpload{}, err
	}
	unique := distinct(codes)
	var out tally.CouponUpload
	err := db.write(ctx, func(tx *sql.Tx) error {
		out = tally.CouponUpload{}
		r, err := readReward(ctx, tx, rewardID)
		if err != nil {
			return err
		}
		if r.FulfillmentMethod != tally.MethodCoupon {
			return tally.Errorf(tally.ECONFLICT, "reward %q is fulfilled by %s, not coupon: change its method first", rewardID, r.FulfillmentMethod)
		}
		now := micros(time.Now())
		for lo, hi := range chunks(len(unique), inBatch) {
			batch := unique[lo:hi]
			args := make([]any, 0, 1+len(batch))
			args = append(args, rewardID)
			for _, c := range batch {
				args = append(args, c)
			}
			var other, code string
			err := tx.QueryRowContext(ctx, `SELECT reward_id, code FROM reward_coupons WHERE reward_id <> ?
				AND code IN (`+list(len(batch), "?")+`) LIMIT 1`, args...).Scan(&other, &code)
			if err == nil {
				return tally.Errorf(tally.ECONFLICT, "coupon code %q belongs to reward %q already: a code is given to one customer only", code, other)
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return wrap(err, "add coupons")
			}
			args = args[:0]
			for _, c := range batch {
				args = append(args, rewardID, c, now)
			}
			res, err := tx.ExecContext(ctx, `INSERT INTO reward_coupons (reward_id, code, created_at) VALUES `+
				list(len(batch), "(?, ?, ?)")+` ON CONFLICT (reward_id, code) DO NOTHING`, args...)
			if err != nil {
				return wrap(err, "add coupons")
			}
			n, err := res.RowsAffected()
			if err != nil {
				return wrap(err, "add coupons")
			}
			out.Added += int(n)
		}
		out.Skipped = len(codes) - out.Added
		return wrap(tx.QueryRowContext(ctx, `SELECT count(*) FROM reward_coupons WHERE reward_id = ? AND receipt_id IS NULL`,
			rewardID).Scan(&out.Free), "count coupons")
	})
	return out, err
}

// distinct returns codes without repeats, in their first order.
func distinct(codes []string) []string {
	seen := make(map[string]bool, len(codes))
	out := make([]string, 0, len(codes))
	for _, c := range codes {
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out
}

// CouponCounts counts every reward's free and assigned codes.
func (db *DB) CouponCounts(ctx context.Context) (map[string]tally.CouponCount, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT reward_id, sum(receipt_id IS NULL), sum(receipt_id IS NOT NULL)
		FROM reward_coupons GROUP BY reward_id`)
	if err != nil {
		return nil, wrap(err, "count coupons")
	}
	defer rows.Close()
	out := map[string]tally.CouponCount{}
	for rows.Next() {
		var id string
		var c tally.CouponCount
		if err := rows.Scan(&id, &c.Free, &c.Assigned); err != nil {
			return nil, wrap(err, "count coupons")
		}
		out[id] = c
	}
	return out, wrap(rows.Err(), "count coupons")
}

// Redemptions lists redemptions newest first.
func (db *DB) Redemptions(ctx context.Context, f tally.RedemptionFilter) ([]tally.Redemption, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, f.Status)
	}
	if f.RewardID != "" {
		where, args = append(where, "reward_id = ?"), append(args, f.RewardID)
	}
	if f.After != nil {
		at := micros(f.After.CreatedAt)
		where = append(where, "(created_at < ? OR (created_at = ? AND receipt_id < ?))")
		args = append(args, at, at, f.After.ReceiptID)
	}
	q := `SELECT ` + redemptionColumns + ` FROM redemptions`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	rows, err := db.reader.QueryContext(ctx, q+` ORDER BY created_at DESC, receipt_id DESC LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, wrap(err, "list redemptions")
	}
	defer rows.Close()
	out := []tally.Redemption{}
	for rows.Next() {
		r, err := scanRedemption(rows)
		if err != nil {
			return nil, wrap(err, "list redemptions")
		}
		out = append(out, r)
	}
	return out, wrap(rows.Err(), "list redemptions")
}

// RetryRedemption puts a dead letter back in the queue, in one statement.
func (db *DB) RetryRedemption(ctx context.Context, receiptID string, now time.Time) (tally.Redemption, error) {
	if err := tally.CheckText("receipt_id", receiptID); err != nil {
		return tally.Redemption{}, err
	}
	var out tally.Redemption
	err := db.write(ctx, func(tx *sql.Tx) error {
		var err error
		out, err = scanRedemption(tx.QueryRowContext(ctx, `UPDATE redemptions SET status = ?, attempts = 0,
			next_attempt_at = ?, lease_owner = '', lease_until = 0, updated_at = ?
			WHERE receipt_id = ? AND status = ? RETURNING `+redemptionColumns,
			tally.FulfillmentPending, micros(now), micros(now), receiptID, tally.FulfillmentDead))
		if errors.Is(err, sql.ErrNoRows) {
			return notRetriable(ctx, tx, receiptID)
		}
		return wrap(err, "retry redemption")
	})
	return out, err
}

// notRetriable says why a redemption could not be retried: it does not exist, or it is not dead.
func notRetriable(ctx context.Context, q querier, receiptID string) error {
	var status string
	err := q.QueryRowContext(ctx, `SELECT status FROM redemptions WHERE receipt_id = ?`, receiptID).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) {
		return tally.Errorf(tally.ENOTFOUND, "no receipt %q", receiptID)
	}
	if err != nil {
		return wrap(err, "retry redemption")
	}
	return tally.Errorf(tally.ECONFLICT, "redemption %q is %s, not dead: only a dead letter can be retried", receiptID, status)
}
