package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/tally-ledger/tally"
)

// Rewards lists the reward catalog ordered by id.
func (db *DB) Rewards(ctx context.Context) ([]tally.Reward, error) {
	rows, err := db.reader.QueryContext(ctx, `SELECT `+rewardColumns+` FROM reward_catalog ORDER BY reward_id`)
	if err != nil {
		return nil, wrap(err, "read rewards")
	}
	defer rows.Close()
	rewards := []tally.Reward{}
	for rows.Next() {
		r, err := scanReward(rows)
		if err != nil {
			return nil, wrap(err, "read rewards")
		}
		rewards = append(rewards, r)
	}
	if err := rows.Err(); err != nil {
		return nil, wrap(err, "read rewards")
	}
	return rewards, nil
}

// PutReward inserts a reward or replaces every field of the stored one but its creation time. A zero
// CreatedAt or UpdatedAt means now (as the postgres adapter does). EINVALID when the cost is not
// positive or the inventory is negative.
func (db *DB) PutReward(ctx context.Context, r tally.Reward) error {
	if err := r.CheckText(); err != nil {
		return err
	}
	now := time.Now()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = now
	}
	if r.UpdatedAt.IsZero() {
		r.UpdatedAt = now
	}
	var inventory any
	if r.Inventory != nil {
		inventory = *r.Inventory
	}
	return db.write(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO reward_catalog (reward_id, name, description, image_url,
			point_cost, inventory, min_tier, fulfillment_method, webhook_url, active, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (reward_id) DO UPDATE SET name = excluded.name, description = excluded.description,
				image_url = excluded.image_url, point_cost = excluded.point_cost,
				inventory = excluded.inventory, min_tier = excluded.min_tier,
				fulfillment_method = excluded.fulfillment_method, webhook_url = excluded.webhook_url,
				active = excluded.active, updated_at = excluded.updated_at`,
			r.ID, r.Name, r.Description, r.ImageURL, r.PointCost, inventory, r.MinTier, r.FulfillmentMethod,
			r.WebhookURL, r.Active, micros(r.CreatedAt), micros(r.UpdatedAt))
		if e := checkViolation(err, fmt.Sprintf("cost or inventory of reward %q", r.ID)); e != nil {
			return e
		}
		return wrap(err, "put reward")
	})
}
