package ledger

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"

	"github.com/tally-ledger/tally"
)

// rewardRun is what one batch attempt knows of the rewards its redemptions (and the reversals of
// redemptions) touch: the locked rewards, the units and coupon codes left as the batch decides, and the
// rows to write.
type rewardRun struct {
	rewards     map[string]tally.Reward
	left        map[string]int64    // units left of limited rewards, as decided so far
	coupons     map[string][]string // free codes of coupon rewards, handed out in order
	stock       map[string]int64    // net change of each limited reward's inventory
	redemptions []*tally.Redemption // new redemptions, in batch order
	ofTarget    map[int64]tally.Redemption
	refunded    []string // receipts whose redemption this batch reversed
}

// lockRewards locks the rewards the fresh ops redeem or whose redemptions they reverse (after the
// accounts: the global lock order), and reads the coupon codes coupon rewards may hand out.
func (b *batchRun) lockRewards(ctx context.Context, targetSeqs []int64) error {
	rr := &b.rw
	var ids []string
	wanted := map[string]int{} // coupon codes each reward may need
	for _, i := range b.fresh {
		if r := b.ops[i].req; r.RewardID != "" {
			ids = append(ids, r.RewardID)
			wanted[r.RewardID]++
		}
	}
	rr.ofTarget = map[int64]tally.Redemption{}
	var redeemed []int64
	for _, seq := range targetSeqs {
		if t, ok := b.targets[seq]; ok && t.Kind == tally.KindRedemption {
			redeemed = append(redeemed, seq)
		}
	}
	if len(redeemed) > 0 {
		m, err := b.tx.RedemptionsOf(ctx, redeemed)
		if err != nil {
			return err
		}
		rr.ofTarget = m
		for _, red := range m {
			ids = append(ids, red.RewardID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	locked, err := b.tx.LockRewards(ctx, sortedUnique(ids))
	if err != nil {
		return err
	}
	rr.rewards, rr.left, rr.coupons, rr.stock = locked, map[string]int64{}, map[string][]string{}, map[string]int64{}
	for id, rw := range locked {
		if rw.Inventory != nil {
			rr.left[id] = *rw.Inventory
		}
		if n := wanted[id]; n > 0 && rw.FulfillmentMethod == tally.MethodCoupon && rw.Active {
			codes, err := b.tx.FreeCoupons(ctx, id, n)
			if err != nil {
				return err
			}
			rr.coupons[id] = codes
		}
	}
	return nil
}

// rewardPrice checks a redemption of a reward against the catalog and returns what it costs: the
// reward must exist and be active, cost what the caller expects (when it says), be within the
// customer's tier, and have a unit (and a coupon code) left.
func (b *batchRun) rewardPrice(r Request, a *tally.Account) (int64, error) {
	rw, ok := b.rw.rewards[r.RewardID]
	if !ok || !rw.Active {
		return 0, tally.Errorf(tally.ENOTFOUND, "reward %q does not exist or is not available", r.RewardID)
	}
	if r.Amount != 0 && r.Amount != rw.PointCost {
		return 0, &tally.Error{Code: tally.ECOSTCHANGED, Details: map[string]int64{"point_cost": rw.PointCost},
			Message: fmt.Sprintf("reward %q costs %d points now, not %d", rw.ID, rw.PointCost, r.Amount)}
	}
	if rw.MinTier != "" {
		if err := b.tierReaches(a.ID, rw); err != nil {
			return 0, err
		}
	}
	if left, limited := b.rw.left[rw.ID]; limited && left <= 0 {
		return 0, tally.Errorf(tally.EOUTOFSTOCK, "reward %q is out of stock", rw.ID)
	}
	if rw.FulfillmentMethod == tally.MethodCoupon && len(b.rw.coupons[rw.ID]) == 0 {
		return 0, tally.Errorf(tally.EOUTOFSTOCK, "reward %q has no coupon code left", rw.ID)
	}
	return rw.PointCost, nil
}

// tierReaches checks that the customer holds (stored) the reward's tier or a higher one.
func (b *batchRun) tierReaches(account string, rw tally.Reward) error {
	p := b.tiers
	if p == nil {
		return tally.Errorf(tally.ETIER, "reward %q needs tier %s, and the programme has no tiers", rw.ID, rw.MinTier)
	}
	need, ok := p.Rank(rw.MinTier)
	if !ok {
		return tally.Errorf(tally.ETIER, "reward %q needs tier %q, which the programme does not have", rw.ID, rw.MinTier)
	}
	tier := b.tierOf(account)
	if have, _ := p.Rank(tier); have < need {
		return tally.Errorf(tally.ETIER, "reward %q needs tier %s; the customer's tier is %s", rw.ID, rw.MinTier, tier)
	}
	return nil
}

// takeReward takes the unit (and code) of a decided redemption and records its receipt, to be written
// with its transaction.
func (b *batchRun) takeReward(i int, t *tally.Transaction) {
	r := b.ops[i].req
	rw := b.rw.rewards[r.RewardID]
	if _, limited := b.rw.left[rw.ID]; limited {
		b.rw.left[rw.ID]--
		b.rw.stock[rw.ID]--
	}
	red := &tally.Redemption{
		ReceiptID: newReceiptID(), AccountID: t.AccountID, RewardID: rw.ID, Points: t.Amount,
		Method: rw.FulfillmentMethod, Status: tally.FulfillmentPending, NextAttemptAt: b.now, CreatedAt: b.now, UpdatedAt: b.now,
	}
	switch rw.FulfillmentMethod {
	case tally.MethodCoupon:
		red.CouponCode, b.rw.coupons[rw.ID] = b.rw.coupons[rw.ID][0], b.rw.coupons[rw.ID][1:]
		red.Status = tally.FulfillmentDelivered
	case tally.MethodManual:
		red.Status = tally.FulfillmentManual
	}
	b.rw.redemptions = append(b.rw.redemptions, red)
	b.results[i].receipt.Redemption = red
	b.redemptionTx = append(b.redemptionTx, t)
}

// refundReward gives back the unit of a redemption that a reversal undoes, and marks it refunded.
func (b *batchRun) refundReward(target tally.Transaction) {
	red, ok := b.rw.ofTarget[target.Seq]
	if !ok {
		return
	}
	if rw, ok := b.rw.rewards[red.RewardID]; ok && rw.Inventory != nil {
		b.rw.stock[red.RewardID]++
		b.rw.left[red.RewardID]++
	}
	b.rw.refunded = append(b.rw.refunded, red.ReceiptID)
}

// reversalBlocked refuses to reverse a redemption while a fulfillment worker is delivering it: the
// customer would get the reward and the points back, and the receipt would lose the delivery. The
// worker's own refund of a dead letter (an internal write, made under its lease) goes through. The
// refusal is not remembered, so the operator retries with the same key once the delivery settled.
func (b *batchRun) reversalBlocked(target tally.Transaction, r Request) error {
	red, ok := b.rw.ofTarget[target.Seq]
	if !ok || r.Internal || red.Status != tally.FulfillmentPending || !red.LeaseUntil.After(b.now) {
		return nil
	}
	return tally.Errorf(tally.ECONFLICT, "redemption %s of transaction %d is being delivered right now: reverse it once the delivery has settled (its receipt shows the status)", red.ReceiptID, target.Seq)
}

// writeRewards writes the redemptions after their transactions, the stock taken and given back, and
// the refunds.
func (b *batchRun) writeRewards(ctx context.Context) error {
	if len(b.rw.redemptions) > 0 {
		rows := make([]tally.Redemption, len(b.rw.redemptions))
		for n, red := range b.rw.redemptions {
			red.TxSeq = b.redemptionTx[n].Seq
			rows[n] = *red
		}
		if err := b.tx.InsertRedemptions(ctx, rows); err != nil {
			return err
		}
	}
	deltas := map[string]int64{}
	for id, d := range b.rw.stock {
		if d != 0 {
			deltas[id] = d
		}
	}
	if len(deltas) > 0 {
		if err := b.tx.AddInventory(ctx, deltas); err != nil {
			return err
		}
	}
	if len(b.rw.refunded) > 0 {
		sort.Strings(b.rw.refunded)
		return b.tx.SetRedemptionStatus(ctx, b.rw.refunded, tally.FulfillmentRefunded, b.now)
	}
	return nil
}

// newReceiptID returns a receipt id that cannot be guessed: a receipt is shown only to its owner, and
// an id is no secret, but a guessable one would invite trying.
func newReceiptID() string {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return "rcp_" + hex.EncodeToString(b[:])
}
