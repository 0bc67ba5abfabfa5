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

// MustRedeem gives account the reward's cost in points and redeems the reward, leaving a pending
// redemption (the fulfillment job) due at due. It writes the redemption row in a transaction of its own
// after the ledger's redemption transaction, which is enough for what fulfillment is tested on.
func MustRedeem(t testing.TB, l *ledger.Service, account string, reward tally.Reward, due time.Time) tally.Redemption {
	t.Helper()
	ctx := context.Background()
	id := "rcp_" + randomHex(8)
	if _, err := l.Accrue(ctx, ledger.Request{Account: account, Key: "earn-" + id, Amount: reward.PointCost, Reason: "test"}); err != nil {
		t.Fatalf("accrue: %v", err)
	}
	rc, err := l.Redeem(ctx, ledger.Request{Account: account, Key: "redeem-" + id, Amount: reward.PointCost, Reason: "reward " + reward.ID})
	if err != nil {
		t.Fatalf("redeem: %v", err)
	}
	now := time.Now().UTC().Truncate(time.Microsecond)
	r := tally.Redemption{ReceiptID: id, TxSeq: rc.Transaction.Seq, AccountID: account, RewardID: reward.ID,
		Points: reward.PointCost, Method: reward.FulfillmentMethod, Status: tally.FulfillmentPending,
		NextAttemptAt: due.UTC().Truncate(time.Microsecond), CreatedAt: now, UpdatedAt: now}
	err = l.Store().Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		return tx.InsertRedemptions(ctx, []tally.Redemption{r})
	})
	if err != nil {
		t.Fatalf("insert redemption: %v", err)
	}
	return r
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
