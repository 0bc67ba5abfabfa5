package storetest

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// ladder is a tier policy for tests: base, then silver from 500 points, then gold from 2000.
type ladder struct{}

func (ladder) TierOf(balance int64) string {
	switch {
	case balance >= 2000:
		return "gold"
	case balance >= 500:
		return "silver"
	}
	return "base"
}

func (ladder) QualifyingSince(now time.Time) time.Time { return now.AddDate(-1, 0, 0) }

func (ladder) Rank(tier string) (int, bool) {
	r, ok := map[string]int{"base": 0, "silver": 1, "gold": 2}[tier]
	return r, ok
}

// testRedeem checks redemptions of rewards: one decision that checks the reward, its cost, the tier,
// the balance and the stock, takes a unit (and a coupon code), posts the redemption and records its
// receipt for fulfillment, all or nothing.
func testRedeem(t *testing.T, h Harness) {
	units := func(n int64) *int64 { return &n }
	newRedeemEnv := func(t *testing.T) (*env, *ledger.Service) {
		e := newEnv(t, h)
		for _, rw := range []tally.Reward{
			{ID: "mug", Name: "Mug", PointCost: 300, Inventory: units(5), FulfillmentMethod: tally.MethodWebhook, WebhookURL: "https://example.test/hook", Active: true},
			{ID: "one", Name: "Last one", PointCost: 100, Inventory: units(1), FulfillmentMethod: tally.MethodManual, Active: true},
			{ID: "gold-hat", Name: "Hat", PointCost: 100, MinTier: "gold", FulfillmentMethod: tally.MethodManual, Active: true},
			{ID: "gone", Name: "Gone", PointCost: 100, FulfillmentMethod: tally.MethodManual, Active: false},
			{ID: "code", Name: "Voucher", PointCost: 10, FulfillmentMethod: tally.MethodCoupon, Active: true},
		} {
			if err := e.store.PutReward(e.ctx, rw); err != nil {
				t.Fatal(err)
			}
		}
		l := ledger.New(e.store, ledger.Options{Key: e.key, Tiers: ladder{}, Workers: max(h.Workers, 2)})
		t.Cleanup(l.Close)
		return e, l
	}
	inventory := func(e *env, id string) *int64 {
		rws, err := e.store.Rewards(e.ctx)
		if err != nil {
			e.t.Fatal(err)
		}
		for _, rw := range rws {
			if rw.ID == id {
				return rw.Inventory
			}
		}
		e.t.Fatalf("no reward %s", id)
		return nil
	}
	redeem := func(l *ledger.Service, e *env, c, key, reward string, cost int64) (ledger.Receipt, error) {
		return l.Write(e.ctx, ledger.Request{Kind: tally.KindRedemption, Account: c, Key: key, RewardID: reward, Amount: cost})
	}

	t.Run("receipt, stock and replay", func(t *testing.T) {
		t.Parallel()
		e, l := newRedeemEnv(t)
		c := e.customer("alice")
		e.mustAccrue(c, "seed-"+c, 1000)
		rc, err := redeem(l, e, c, "r1", "mug", 300)
		if err != nil {
			t.Fatal(err)
		}
		red := rc.Redemption
		if red == nil || red.RewardID != "mug" || red.Points != 300 || red.Status != tally.FulfillmentPending ||
			red.TxSeq != rc.Transaction.Seq || rc.Balance != 700 || rc.Transaction.Amount != 300 {
			t.Fatalf("receipt %+v, redemption %+v", rc, red)
		}
		stored, err := e.store.Redemption(e.ctx, red.ReceiptID)
		if err != nil || stored.AccountID != c || stored.TxSeq != red.TxSeq {
			t.Fatalf("stored redemption %+v, %v", stored, err)
		}
		if n := inventory(e, "mug"); n == nil || *n != 4 {
			t.Fatalf("inventory after one redemption: %v, want 4", n)
		}
		again, err := redeem(l, e, c, "r1", "mug", 300)
		if err != nil || !again.Replayed || again.Redemption == nil || again.Redemption.ReceiptID != red.ReceiptID {
			t.Fatalf("replay: %+v, %v", again, err)
		}
		if n := inventory(e, "mug"); *n != 4 || e.balance(c) != 700 {
			t.Fatalf("a replay took stock or points: inventory %d, balance %d", *n, e.balance(c))
		}
		// Without an expected cost the catalog's is charged; the caller's amount is never what is charged.
		rc2, err := redeem(l, e, c, "r2", "mug", 0)
		if err != nil || rc2.Transaction.Amount != 300 {
			t.Fatalf("redeem at the catalog cost: %+v, %v", rc2, err)
		}
		e.mustVerify()
	})

	t.Run("refusals", func(t *testing.T) {
		t.Parallel()
		e, l := newRedeemEnv(t)
		c, poor, stranger := e.customer("bob"), e.customer("poor"), e.customer("stranger")
		e.mustAccrue(c, "seed-"+c, 1000)
		e.mustAccrue(poor, "seed-poor", 50)
		_, err := redeem(l, e, c, "k1", "mug", 250)
		wantCode(t, err, tally.ECOSTCHANGED)
		if d := err.(*tally.Error).Details; d["point_cost"] != 300 {
			t.Fatalf("cost refusal carries %v, want the current cost 300", d)
		}
		// A changed cost is not remembered: the same key with the current cost goes through.
		if _, err := redeem(l, e, c, "k1", "mug", 300); err != nil {
			t.Fatalf("retry with the current cost: %v", err)
		}
		_, err = redeem(l, e, c, "k2", "gone", 100)
		wantCode(t, err, tally.ENOTFOUND)
		_, err = redeem(l, e, c, "k3", "no-such-reward", 100)
		wantCode(t, err, tally.ENOTFOUND)
		_, err = redeem(l, e, c, "k4", "gold-hat", 100)
		wantCode(t, err, tally.ETIER)
		_, err = redeem(l, e, poor, "k5", "mug", 300)
		wantCode(t, err, tally.EINSUFFICIENT)
		if d := err.(*tally.Error).Details; d["balance"] != 50 {
			t.Fatalf("insufficient refusal carries %v, want the balance 50", d)
		}
		_, err = redeem(l, e, stranger, "k6", "mug", 300)
		wantCode(t, err, tally.EINSUFFICIENT)
		// The env's ledger has no tier policy: a tier-gated reward is refused rather than given away.
		_, err = redeem(e.ledger, e, c, "k7", "gold-hat", 100)
		wantCode(t, err, tally.ETIER)
		if n := inventory(e, "mug"); *n != 4 || e.balance(c) != 700 || e.balance(poor) != 50 {
			t.Fatalf("refusals moved something: inventory %d, balances %d %d", *n, e.balance(c), e.balance(poor))
		}
		// The tier is the stored one, raised by an accrual through a ledger that applies the tiers.
		rich := e.customer("rich")
		if _, err := l.Write(e.ctx, ledger.Request{Kind: tally.KindAccrual, Account: rich, Key: "seed-rich", Amount: 5000, Reason: "test"}); err != nil {
			t.Fatal(err)
		}
		if _, err := redeem(l, e, rich, "k8", "gold-hat", 100); err != nil {
			t.Fatalf("a gold customer redeeming the gold reward: %v", err)
		}
		e.mustVerify()
	})

	t.Run("50 customers, one unit", func(t *testing.T) {
		t.Parallel()
		e, l := newRedeemEnv(t)
		var cs []string
		for i := range 50 {
			c := e.customer(fmt.Sprint("racer", i))
			e.mustAccrue(c, "seed-"+c, 500)
			cs = append(cs, c)
		}
		errs := parallel(50, func(i int) error {
			_, err := redeem(l, e, cs[i], fmt.Sprint("buy", i), "one", 100)
			return err
		})
		won := 0
		for _, err := range errs {
			switch tally.ErrorCode(err) {
			case "":
				won++
			case tally.EOUTOFSTOCK:
			default:
				t.Fatalf("racer: %v", err)
			}
		}
		if n := inventory(e, "one"); won != 1 || *n != 0 {
			t.Fatalf("%d receipts for one unit, inventory %d", won, *n)
		}
		e.mustVerify()
	})

	t.Run("20 redemptions by one customer who can afford one", func(t *testing.T) {
		t.Parallel()
		e, l := newRedeemEnv(t)
		c := e.customer("carol")
		e.mustAccrue(c, "seed", 450)
		errs := parallel(20, func(i int) error {
			_, err := redeem(l, e, c, fmt.Sprint("k", i), "mug", 300)
			return err
		})
		won := 0
		for _, err := range errs {
			if err == nil {
				won++
			} else if tally.ErrorCode(err) != tally.EINSUFFICIENT {
				t.Fatalf("redemption: %v", err)
			}
		}
		if n := inventory(e, "mug"); won != 1 || *n != 4 || e.balance(c) != 150 {
			t.Fatalf("%d redemptions, inventory %d, balance %d", won, *n, e.balance(c))
		}
	})

	t.Run("coupons never given twice", func(t *testing.T) {
		t.Parallel()
		e, l := newRedeemEnv(t)
		for _, code := range []string{"AAA-1", "BBB-2", "CCC-3"} {
			e.exec(fmt.Sprintf("INSERT INTO reward_coupons (reward_id, code, created_at) VALUES ('code', '%s', '2026-01-01T00:00:00Z')", code))
		}
		var cs []string
		for i := range 8 {
			c := e.customer(fmt.Sprint("coupon", i))
			e.mustAccrue(c, "seed-"+c, 100)
			cs = append(cs, c)
		}
		codes := make([]string, len(cs))
		errs := parallel(len(cs), func(i int) error {
			rc, err := redeem(l, e, cs[i], fmt.Sprint("v", i), "code", 10)
			if err == nil {
				codes[i] = rc.Redemption.CouponCode
				if rc.Redemption.Status != tally.FulfillmentDelivered {
					return fmt.Errorf("a coupon redemption is %s, want delivered", rc.Redemption.Status)
				}
			}
			return err
		})
		var got []string
		for i, err := range errs {
			switch tally.ErrorCode(err) {
			case "":
				got = append(got, codes[i])
			case tally.EOUTOFSTOCK:
			default:
				t.Fatalf("coupon redemption: %v", err)
			}
		}
		sort.Strings(got)
		if fmt.Sprint(got) != "[AAA-1 BBB-2 CCC-3]" {
			t.Fatalf("codes handed out: %v, want each of the three once", got)
		}
	})

	t.Run("no reversal while being delivered", func(t *testing.T) {
		t.Parallel()
		e, l := newRedeemEnv(t)
		jobs, ok := e.store.(tally.FulfillmentStore)
		if !ok {
			t.Skip("the store keeps no fulfillment outbox")
		}
		c := e.customer("erin")
		e.mustAccrue(c, "seed-erin", 1000)
		rc, err := redeem(l, e, c, "r", "mug", 300)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		leased, err := jobs.LeaseRedemptions(e.ctx, "worker-1", now, now.Add(time.Minute), 10)
		if err != nil || len(leased) != 1 {
			t.Fatalf("lease: %v, %v", leased, err)
		}
		undo := ledger.Request{Key: "undo", ReversesSeq: rc.Transaction.Seq, Reason: "operator refund"}
		_, err = l.Reverse(e.ctx, undo)
		wantCode(t, err, tally.ECONFLICT)
		if e.balance(c) != 700 {
			t.Fatalf("a refused reversal moved points: balance %d", e.balance(c))
		}
		// The worker's own refund, under its lease, goes through.
		refund := ledger.Request{Channel: "fulfillment", Internal: true, Key: "refund:" + rc.Redemption.ReceiptID, ReversesSeq: rc.Transaction.Seq, Reason: "fulfillment failed"}
		if _, err := l.Reverse(e.ctx, refund); err != nil {
			t.Fatalf("the worker's refund: %v", err)
		}
		if e.balance(c) != 1000 {
			t.Fatalf("after the refund: balance %d", e.balance(c))
		}
	})

	t.Run("reversal gives points and stock back", func(t *testing.T) {
		t.Parallel()
		e, l := newRedeemEnv(t)
		c := e.customer("dave")
		e.mustAccrue(c, "seed", 400)
		rc, err := redeem(l, e, c, "r", "one", 100)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Reverse(e.ctx, ledger.Request{Key: "undo", ReversesSeq: rc.Transaction.Seq, Reason: "refund"}); err != nil {
			t.Fatal(err)
		}
		red, err := e.store.Redemption(e.ctx, rc.Redemption.ReceiptID)
		if err != nil || red.Status != tally.FulfillmentRefunded {
			t.Fatalf("redemption after its reversal: %+v, %v", red, err)
		}
		if n := inventory(e, "one"); *n != 1 || e.balance(c) != 400 {
			t.Fatalf("after the reversal: inventory %d, balance %d; want 1 and 400", *n, e.balance(c))
		}
		// The unit given back can be redeemed again.
		if _, err := redeem(l, e, c, "r2", "one", 100); err != nil {
			t.Fatalf("redeem the returned unit: %v", err)
		}
		e.mustVerify()
	})
}
