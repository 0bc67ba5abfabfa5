package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-ledger/tally"
)

// couponUploadLock is the advisory lock key that serialises coupon uploads across all rewards, so that
// two uploads cannot both find a code free of other rewards and both add it.
const couponUploadLock = 0x7461_6c6c_7963_7570 // "tallycup"

// inTx runs fn in one READ COMMITTED transaction and commits it.
func (db *DB) inTx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	err := pgx.BeginTxFunc(ctx, db.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, fn)
	return classify(ctx, op, err)
}

// CreateReward inserts a new reward.
func (db *DB) CreateReward(ctx context.Context, r tally.Reward) error {
	if err := r.CheckText(); err != nil {
		return err
	}
	now := time.Now().UTC()
	_, err := db.pool.Exec(ctx, `
		INSERT INTO reward_catalog (reward_id, name, description, image_url, point_cost, inventory, min_tier,
			fulfillment_method, webhook_url, active, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)`,
		r.ID, r.Name, r.Description, r.ImageURL, r.PointCost, r.Inventory, r.MinTier, r.FulfillmentMethod,
		r.WebhookURL, r.Active, now)
	switch code, constraint := pgCode(err); code {
	case codeUniqueViolation:
		return &tally.Error{Code: tally.ECONFLICT, Message: fmt.Sprintf("reward %q exists already", r.ID), Err: err}
	case codeCheckViolation:
		return &tally.Error{Code: tally.EINVALID, Message: "reward violates " + constraint, Err: err}
	}
	return classify(ctx, "create reward", err)
}

// UpdateReward locks a reward (FOR UPDATE, as redemptions do), applies fn and writes it back.
func (db *DB) UpdateReward(ctx context.Context, id string, fn func(*tally.Reward) error) (tally.Reward, error) {
	if err := tally.CheckText("reward_id", id); err != nil {
		return tally.Reward{}, err
	}
	var out tally.Reward
	err := db.inTx(ctx, "update reward", func(tx pgx.Tx) error {
		r, err := scanReward(tx.QueryRow(ctx, `SELECT `+rewardColumns+` FROM reward_catalog WHERE reward_id = $1 FOR UPDATE`, id))
		if errors.Is(err, pgx.ErrNoRows) {
			return tally.Errorf(tally.ENOTFOUND, "no reward %q", id)
		}
		if err != nil {
			return err
		}
		created := r.CreatedAt
		if err := fn(&r); err != nil {
			return err
		}
		r.ID, r.CreatedAt = id, created
		if err := r.CheckText(); err != nil {
			return err
		}
		out, err = scanReward(tx.QueryRow(ctx, `UPDATE reward_catalog SET name = $2, description = $3,
			image_url = $4, point_cost = $5, inventory = $6, min_tier = $7, fulfillment_method = $8,
			webhook_url = $9, active = $10, updated_at = $11 WHERE reward_id = $1 RETURNING `+rewardColumns,
			id, r.Name, r.Description, r.ImageURL, r.PointCost, r.Inventory, r.MinTier, r.FulfillmentMethod,
			r.WebhookURL, r.Active, time.Now().UTC()))
		if code, constraint := pgCode(err); code == codeCheckViolation {
			return &tally.Error{Code: tally.EINVALID, Message: "reward violates " + constraint, Err: err}
		}
		return err
	})
	return out, err
}

// SetInventory sets a reward's units left in one statement, which waits for the redemptions holding
// the reward's row.
func (db *DB) SetInventory(ctx context.Context, id string, n *int64) (tally.Reward, error) {
	if err := tally.CheckText("reward_id", id); err != nil {
		return tally.Reward{}, err
	}
	if n != nil && (*n < 0 || *n > tally.MaxAmount) {
		return tally.Reward{}, tally.Errorf(tally.EINVALID, "inventory must be between 0 and %d (or unlimited)", tally.MaxAmount)
	}
	r, err := scanReward(db.pool.QueryRow(ctx, `UPDATE reward_catalog SET inventory = $2, updated_at = $3
		WHERE reward_id = $1 RETURNING `+rewardColumns, id, n, time.Now().UTC()))
	if errors.Is(err, pgx.ErrNoRows) {
		return tally.Reward{}, tally.Errorf(tally.ENOTFOUND, "no reward %q", id)
	}
	if err != nil {
		return tally.Reward{}, classify(ctx, "set inventory", err)
	}
	return r, nil
}

// AddStock adds units in one statement guarded by the range it must stay in; when it changes nothing,
// the reward is read to say why.
func (db *DB) AddStock(ctx context.Context, id string, delta int64) (tally.Reward, error) {
	if err := tally.CheckText("reward_id", id); err != nil {
		return tally.Reward{}, err
	}
	if delta < -tally.MaxAmount || delta > tally.MaxAmount {
		return tally.Reward{}, tally.Errorf(tally.EINVALID, "a stock change must be between %d and %d units", -tally.MaxAmount, tally.MaxAmount)
	}
	r, err := scanReward(db.pool.QueryRow(ctx, `UPDATE reward_catalog SET inventory = inventory + $2, updated_at = $3
		WHERE reward_id = $1 AND inventory IS NOT NULL AND inventory + $2 BETWEEN 0 AND $4
		RETURNING `+rewardColumns, id, delta, time.Now().UTC(), tally.MaxAmount))
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return tally.Reward{}, classify(ctx, "add stock", err)
	}
	r, err = scanReward(db.pool.QueryRow(ctx, `SELECT `+rewardColumns+` FROM reward_catalog WHERE reward_id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return tally.Reward{}, tally.Errorf(tally.ENOTFOUND, "no reward %q", id)
	}
	if err != nil {
		return tally.Reward{}, classify(ctx, "add stock", err)
	}
	if err := r.CheckStockChange(delta); err != nil {
		return tally.Reward{}, err
	}
	// The stock changed between the two statements and would now allow the change: the caller may retry.
	return tally.Reward{}, tally.Errorf(tally.ECONFLICT, "the stock of reward %q changed meanwhile: try again", id)
}

// AddCoupons adds codes to a coupon reward in one transaction, serialised with other uploads.
func (db *DB) AddCoupons(ctx context.Context, rewardID string, codes []string) (tally.CouponUpload, error) {
	if err := tally.CheckText("reward_id", rewardID); err != nil {
		return tally.CouponUpload{}, err
	}
	if err := tally.CheckCouponCodes(codes); err != nil {
		return tally.CouponUpload{}, err
	}
	var out tally.CouponUpload
	err := db.inTx(ctx, "add coupons", func(tx pgx.Tx) error {
		out = tally.CouponUpload{}
		var method string
		err := tx.QueryRow(ctx, `SELECT fulfillment_method FROM reward_catalog WHERE reward_id = $1`, rewardID).Scan(&method)
		if errors.Is(err, pgx.ErrNoRows) {
			return tally.Errorf(tally.ENOTFOUND, "no reward %q", rewardID)
		}
		if err != nil {
			return err
		}
		if method != tally.MethodCoupon {
			return tally.Errorf(tally.ECONFLICT, "reward %q is fulfilled by %s, not coupon: change its method first", rewardID, method)
		}
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(couponUploadLock)); err != nil {
			return err
		}
		var other, code string
		err = tx.QueryRow(ctx, `SELECT reward_id, code FROM reward_coupons WHERE code = ANY($1) AND reward_id <> $2
			ORDER BY reward_id, code LIMIT 1`, codes, rewardID).Scan(&other, &code)
		if err == nil {
			return tally.Errorf(tally.ECONFLICT, "coupon code %q belongs to reward %q already: a code is given to one customer only", code, other)
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO reward_coupons (reward_id, code, created_at)
			SELECT DISTINCT $1, c, $3::timestamptz FROM unnest($2::text[]) AS c ON CONFLICT (reward_id, code) DO NOTHING`,
			rewardID, codes, time.Now().UTC())
		if err != nil {
			return err
		}
		out.Added = int(tag.RowsAffected())
		out.Skipped = len(codes) - out.Added
		return tx.QueryRow(ctx, `SELECT count(*) FROM reward_coupons WHERE reward_id = $1 AND receipt_id IS NULL`,
			rewardID).Scan(&out.Free)
	})
	return out, err
}

// CouponCounts counts every reward's free and assigned codes.
func (db *DB) CouponCounts(ctx context.Context) (map[string]tally.CouponCount, error) {
	rows, err := db.pool.Query(ctx, `SELECT reward_id, count(*) FILTER (WHERE receipt_id IS NULL),
		count(receipt_id) FROM reward_coupons GROUP BY reward_id`)
	if err != nil {
		return nil, classify(ctx, "count coupons", err)
	}
	defer rows.Close()
	out := map[string]tally.CouponCount{}
	for rows.Next() {
		var id string
		var c tally.CouponCount
		if err := rows.Scan(&id, &c.Free, &c.Assigned); err != nil {
			return nil, classify(ctx, "count coupons", err)
		}
		out[id] = c
	}
	return out, classify(ctx, "count coupons", rows.Err())
}

// Redemptions lists redemptions newest first.
func (db *DB) Redemptions(ctx context.Context, f tally.RedemptionFilter) ([]tally.Redemption, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	arg := func(v any) string { args = append(args, v); return fmt.Sprintf("$%d", len(args)) }
	if f.Status != "" {
		where = append(where, "status = "+arg(f.Status))
	}
	if f.RewardID != "" {
		where = append(where, "reward_id = "+arg(f.RewardID))
	}
	if f.After != nil {
		where = append(where, "(created_at, receipt_id) < ("+arg(f.After.CreatedAt.UTC())+", "+arg(f.After.ReceiptID)+")")
	}
	q := `SELECT ` + redemptionColumns + ` FROM redemptions`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	rows, err := db.pool.Query(ctx, q+` ORDER BY created_at DESC, receipt_id DESC LIMIT `+arg(f.Limit), args...)
	if err != nil {
		return nil, classify(ctx, "list redemptions", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (tally.Redemption, error) { return scanRedemption(row) })
	if err != nil {
		return nil, classify(ctx, "list redemptions", err)
	}
	if out == nil {
		out = []tally.Redemption{}
	}
	return out, nil
}

// RetryRedemption puts a dead letter back in the queue, in one statement.
func (db *DB) RetryRedemption(ctx context.Context, receiptID string, now time.Time) (tally.Redemption, error) {
	if err := tally.CheckText("receipt_id", receiptID); err != nil {
		return tally.Redemption{}, err
	}
	r, err := scanRedemption(db.pool.QueryRow(ctx, `UPDATE redemptions SET status = $2, attempts = 0,
		next_attempt_at = $3, lease_owner = '', lease_until = 'epoch', updated_at = $3
		WHERE receipt_id = $1 AND status = $4 RETURNING `+redemptionColumns,
		receiptID, tally.FulfillmentPending, now.UTC(), tally.FulfillmentDead))
	if err == nil {
		return r, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return tally.Redemption{}, classify(ctx, "retry redemption", err)
	}
	var status string
	err = db.pool.QueryRow(ctx, `SELECT status FROM redemptions WHERE receipt_id = $1`, receiptID).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		return tally.Redemption{}, tally.Errorf(tally.ENOTFOUND, "no receipt %q", receiptID)
	}
	if err != nil {
		return tally.Redemption{}, classify(ctx, "retry redemption", err)
	}
	return tally.Redemption{}, tally.Errorf(tally.ECONFLICT, "redemption %q is %s, not dead: only a dead letter can be retried", receiptID, status)
}
