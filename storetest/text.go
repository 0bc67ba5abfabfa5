package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

// testBadText: text that is not UTF-8, or holds a NUL, is refused as EINVALID before it reaches SQL,
// whatever route it came by: PostgreSQL's text type cannot hold it (the query would fail, a 500) and
// SQLite would store it silently, and the two stores must agree. Nothing is written.
func testBadText(t *testing.T, h Harness) {
	ctx := context.Background()
	e := newEnv(t, h)
	db, ok := e.store.(interface {
		tally.Store
		tally.CredentialStore
	})
	if !ok {
		t.Skip("the store keeps no credentials")
	}
	now := time.Now().UTC()
	for _, bad := range []string{"a\x00b", "a\xffb", "\xed\xa0\x80"} {
		for name, call := range map[string]func() error{
			"PutReward id": func() error {
				return db.PutReward(ctx, tally.Reward{ID: bad, Name: "n", PointCost: 1, FulfillmentMethod: "email"})
			},
			"PutReward name": func() error {
				return db.PutReward(ctx, tally.Reward{ID: "r", Name: bad, PointCost: 1, FulfillmentMethod: "email"})
			},
			"PutReward min tier": func() error {
				return db.PutReward(ctx, tally.Reward{ID: "r", Name: "n", PointCost: 1, MinTier: bad, FulfillmentMethod: "email"})
			},
			"PutReward method": func() error {
				return db.PutReward(ctx, tally.Reward{ID: "r", Name: "n", PointCost: 1, FulfillmentMethod: bad})
			},
			"PutReward webhook": func() error {
				return db.PutReward(ctx, tally.Reward{ID: "r", Name: "n", PointCost: 1, FulfillmentMethod: "webhook", WebhookURL: bad})
			},
			"CreateClient id": func() error {
				return db.CreateClient(ctx, tally.Client{ID: bad, Name: "n", SecretHash: "h", Scopes: []string{"admin"}, CreatedAt: now})
			},
			"CreateClient name": func() error {
				return db.CreateClient(ctx, tally.Client{ID: "c", Name: bad, SecretHash: "h", Scopes: []string{"admin"}, CreatedAt: now})
			},
			"CreateClient scope": func() error {
				return db.CreateClient(ctx, tally.Client{ID: "c", Name: "n", SecretHash: "h", Scopes: []string{bad}, CreatedAt: now})
			},
			"Client":          func() error { _, err := db.Client(ctx, bad); return err },
			"RevokeClient":    func() error { return db.RevokeClient(ctx, bad, now) },
			"Account":         func() error { _, err := db.Account(ctx, bad); return err },
			"History":         func() error { _, err := db.History(ctx, bad, 0, 10); return err },
			"Outcome channel": func() error { _, err := db.Outcome(ctx, bad, "k"); return err },
			"Outcome key":     func() error { _, err := db.Outcome(ctx, "api", bad); return err },
			"CreateReward name": func() error {
				return db.CreateReward(ctx, tally.Reward{ID: "r", Name: bad, PointCost: 1, FulfillmentMethod: "email"})
			},
			"UpdateReward id": func() error {
				_, err := db.UpdateReward(ctx, bad, func(*tally.Reward) error { return nil })
				return err
			},
			"SetInventory id": func() error { _, err := db.SetInventory(ctx, bad, nil); return err },
			"AddStock id":     func() error { _, err := db.AddStock(ctx, bad, 1); return err },
			"AddCoupons id":   func() error { _, err := db.AddCoupons(ctx, bad, []string{"c"}); return err },
			"AddCoupons code": func() error { _, err := db.AddCoupons(ctx, "r", []string{bad}); return err },
			"Redemptions reward": func() error {
				_, err := db.Redemptions(ctx, tally.RedemptionFilter{RewardID: bad, Limit: 1})
				return err
			},
			"RetryRedemption id": func() error { _, err := db.RetryRedemption(ctx, bad, now); return err },
		} {
			if err := call(); tally.ErrorCode(err) != tally.EINVALID {
				t.Errorf("%s with %q: %v, want EINVALID", name, bad, err)
			}
		}
	}
	if rewards, err := db.Rewards(ctx); err != nil || len(rewards) != 0 {
		t.Errorf("rewards after the refusals: %v, %v", rewards, err)
	}
	if clients, err := db.Clients(ctx); err != nil || len(clients) != 0 {
		t.Errorf("clients after the refusals: %v, %v", clients, err)
	}
}
