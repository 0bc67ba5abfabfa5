package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// MustPutReward stores an active reward with unlimited stock that is fulfilled by method at webhookURL.
func MustPutReward(t testing.TB, s tally.Store, id, method, webhookURL string, cost int64) tally.Reward {
	t.Helper()
	now := time.Now().UTC()
	r := tally.Reward{ID: id, Name: "Reward " + id, PointCost: cost, FulfillmentMethod: method, WebhookURL: webhookURL,
		Active: true, CreatedAt: now, UpdatedAt: now}
	if err := s.PutReward(context.Background(), r); err != nil {
		t.Fatalf("put reward %s: %v", id, err)
	}
	return r
}

// MustRedeem gives account the reward's cost in points and redeems the reward through the ledger's
// redeem decision, which records the pending redemption (the fulfillment job, due at once).
func MustRedeem(t testing.TB, l *ledger.Service, account string, reward tally.Reward) tally.Redemption {
	t.Helper()
	ctx := context.Background()
	key := randomHex(8)
	if _, err := l.Accrue(ctx, ledger.Request{Account: account, Key: "earn-" + key, Amount: reward.PointCost, Reason: "test"}); err != nil {
		t.Fatalf("accrue: %v", err)
	}
	rc, err := l.Redeem(ctx, ledger.Request{Account: account, Key: "redeem-" + key, RewardID: reward.ID, Amount: reward.PointCost})
	if err != nil {
		t.Fatalf("redeem %s: %v", reward.ID, err)
	}
	if rc.Redemption == nil || rc.Redemption.Status != tally.FulfillmentPending {
		t.Fatalf("redeem %s: receipt %+v, want a pending redemption", reward.ID, rc.Redemption)
	}
	return *rc.Redemption
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
