package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// testCatalog holds the stores to tally.CatalogStore: the administration of rewards, stock, coupon codes
// and dead letters.
func testCatalog(t *testing.T, h Harness) {
	t.Run("UpdateReward", func(t *testing.T) { t.Parallel(); testUpdateReward(t, h) })
	t.Run("Stock", func(t *testing.T) { t.Parallel(); testStock(t, h) })
	t.Run("StockRace", func(t *testing.T) { t.Parallel(); testStockRace(t, h) })
	t.Run("StockRaceWithRedeem", func(t *testing.T) { t.Parallel(); testStockRaceWithRedeem(t, h) })
	t.Run("Coupons", func(t *testing.T) { t.Parallel(); testCoupons(t, h) })
	t.Run("Redemptions", func(t *testing.T) { t.Parallel(); testRedemptionList(t, h) })
}

func units(n int64) *int64 { return &n }

func (e *env) mustPutReward(r tally.Reward) {
	e.t.Helper()
	if r.Name == "" {
		r.Name = "Reward " + r.ID
	}
	if r.PointCost == 0 {
		r.PointCost = 100
	}
	if r.FulfillmentMethod == "" {
		r.FulfillmentMethod = tally.MethodManual
	}
	if err := e.store.PutReward(e.ctx, r); err != nil {
		e.t.Fatalf("put reward %q: %v", r.ID, err)
	}
}

func (e *env) mustReward(id string) tally.Reward {
	e.t.Helper()
	rewards, err := e.store.Rewards(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, r := range rewards {
		if r.ID == id {
			return r
		}
	}
	e.t.Fatalf("no reward %q", id)
	return tally.Reward{}
}

func stock(r tally.Reward) string {
	if r.Inventory == nil {
		return "unlimited"
	}
	return fmt.Sprint(*r.Inventory)
}

func testUpdateReward(t *testing.T, h Harness) {
	e := newEnv(t, h)
	// CreateReward creates, and never replaces.
	mug := tally.Reward{ID: "mug", Name: "Mug", PointCost: 250, Inventory: units(7), FulfillmentMethod: tally.MethodManual, Active: true, Description: "blue"}
	if err := e.store.CreateReward(e.ctx, mug); err != nil {
		t.Fatal(err)
	}
	again := mug
	again.Name, again.Inventory = "Another mug", nil
	wantCode(t, e.store.CreateReward(e.ctx, again), tally.ECONFLICT)
	zero := mug
	zero.ID, zero.PointCost = "zero", 0
	wantCode(t, e.store.CreateReward(e.ctx, zero), tally.EINVALID)
	wantCode(t, e.store.CreateReward(e.ctx, tally.Reward{ID: "nul", Name: "a\x00", PointCost: 1, FulfillmentMethod: tally.MethodManual}), tally.EINVALID)
	if r := e.mustReward("mug"); r.Name != "Mug" || stock(r) != "7" || r.CreatedAt.IsZero() || !r.CreatedAt.Equal(r.UpdatedAt) {
		t.Fatalf("created: %+v", r)
	}
	if rs, _ := e.store.Rewards(e.ctx); len(rs) != 1 {
		t.Fatalf("refused creations left %+v", rs)
	}
	before := e.mustReward("mug")

	got, err := e.store.UpdateReward(e.ctx, "mug", func(r *tally.Reward) error {
		r.Name, r.PointCost = "Big mug", 300
		r.ID, r.CreatedAt = "other", time.Unix(0, 0) // kept as they were, whatever fn does
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	stored := e.mustReward("mug")
	if got.ID != "mug" || got.Name != "Big mug" || got.PointCost != 300 || stock(got) != "7" || got.Description != "blue" ||
		!got.Active || !got.CreatedAt.Equal(before.CreatedAt) || got.UpdatedAt.Before(before.UpdatedAt) {
		t.Fatalf("UpdateReward returned %+v (before %+v)", got, before)
	}
	if stored.Name != got.Name || stored.PointCost != got.PointCost || !stored.UpdatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("stored %+v, returned %+v", stored, got)
	}
	if rs, _ := e.store.Rewards(e.ctx); len(rs) != 1 {
		t.Fatalf("UpdateReward made a second reward: %+v", rs)
	}

	refusal := errors.New("refused by fn")
	for _, tc := range []struct {
		name string
		id   string
		fn   func(*tally.Reward) error
		want tally.Code
	}{
		{"unknown reward", "nope", func(*tally.Reward) error { return nil }, tally.ENOTFOUND},
		{"fn refuses", "mug", func(r *tally.Reward) error { r.Name = "changed"; return refusal }, tally.EINTERNAL},
		{"zero cost", "mug", func(r *tally.Reward) error { r.Name, r.PointCost = "changed", 0; return nil }, tally.EINVALID},
		{"negative stock", "mug", func(r *tally.Reward) error { r.Name, r.Inventory = "changed", units(-1); return nil }, tally.EINVALID},
		{"NUL in name", "mug", func(r *tally.Reward) error { r.Name = "a\x00b"; return nil }, tally.EINVALID},
		{"id not text", "mug\xff", func(*tally.Reward) error { return nil }, tally.EINVALID},
	} {
		_, err := e.store.UpdateReward(e.ctx, tc.id, tc.fn)
		if got := tally.ErrorCode(err); got != tc.want {
			t.Errorf("%s: %v (code %q), want %q", tc.name, err, got, tc.want)
		}
		if tc.name == "fn refuses" && !errors.Is(err, refusal) {
			t.Errorf("fn's error came back as %v", err)
		}
	}
	if after := e.mustReward("mug"); after.Name != "Big mug" || after.PointCost != 300 || stock(after) != "7" {
		t.Fatalf("refused updates changed the reward: %+v", after)
	}

	// Deactivating is an update of one field.
	got, err = e.store.UpdateReward(e.ctx, "mug", func(r *tally.Reward) error { r.Active = false; return nil })
	if err != nil || got.Active || e.mustReward("mug").Active {
		t.Fatalf("deactivate: %+v %v", got, err)
	}
}

func testStock(t *testing.T, h Harness) {
	e := newEnv(t, h)
	e.mustPutReward(tally.Reward{ID: "cap", Inventory: units(5), Active: true})
	e.mustPutReward(tally.Reward{ID: "free-coffee", Active: true}) // unlimited

	steps := []struct {
		name  string
		do    func() (tally.Reward, error)
		want  tally.Code
		stock string // of cap afterwards
	}{
		{"add", func() (tally.Reward, error) { return e.store.AddStock(e.ctx, "cap", 3) }, "", "8"},
		{"remove", func() (tally.Reward, error) { return e.store.AddStock(e.ctx, "cap", -8) }, "", "0"},
		{"remove more than left", func() (tally.Reward, error) { return e.store.AddStock(e.ctx, "cap", -1) }, tally.EINVALID, "0"},
		{"add beyond the bound", func() (tally.Reward, error) { return e.store.AddStock(e.ctx, "cap", tally.MaxAmount+1) }, tally.EINVALID, "0"},
		{"set", func() (tally.Reward, error) { return e.store.SetInventory(e.ctx, "cap", units(40)) }, "", "40"},
		{"set negative", func() (tally.Reward, error) { return e.store.SetInventory(e.ctx, "cap", units(-2)) }, tally.EINVALID, "40"},
		{"add to unlimited", func() (tally.Reward, error) { return e.store.AddStock(e.ctx, "free-coffee", 1) }, tally.ECONFLICT, "40"},
		{"add to unknown", func() (tally.Reward, error) { return e.store.AddStock(e.ctx, "nope", 1) }, tally.ENOTFOUND, "40"},
		{"set unknown", func() (tally.Reward, error) { return e.store.SetInventory(e.ctx, "nope", units(1)) }, tally.ENOTFOUND, "40"},
		{"set unlimited", func() (tally.Reward, error) { return e.store.SetInventory(e.ctx, "cap", nil) }, "", "unlimited"},
		{"set limited again", func() (tally.Reward, error) { return e.store.SetInventory(e.ctx, "cap", units(0)) }, "", "0"},
	}
	for _, s := range steps {
		r, err := s.do()
		if got := tally.ErrorCode(err); got != s.want {
			t.Fatalf("%s: %v (code %q), want %q", s.name, err, got, s.want)
		}
		if err == nil && stock(r) != s.stock {
			t.Fatalf("%s: returned stock %s, want %s", s.name, stock(r), s.stock)
		}
		if got := stock(e.mustReward("cap")); got != s.stock {
			t.Fatalf("%s: stock %s, want %s", s.name, got, s.stock)
		}
	}
	if got := stock(e.mustReward("free-coffee")); got != "unlimited" {
		t.Fatalf("the unlimited reward has stock %s", got)
	}
}

// testStockRace changes a reward while redemptions take its stock, as a flash sale would meet an
// administrator: restocking adds to what redemptions left, and editing the reward loses none of them.
func testStockRace(t *testing.T, h Harness) {
	e := newEnv(t, h)
	e.mustPutReward(tally.Reward{ID: "flash", Inventory: units(1000), Active: true})
	const takes, restocks, edits = 60, 20, 20
	errs := parallel(takes+restocks+edits, func(i int) error {
		switch {
		case i < takes: // a unit taken as the ledger's redemptions take it
			return e.store.Update(e.ctx, func(ctx context.Context, tx tally.WriteTx) error {
				locked, err := tx.LockRewards(ctx, []string{"flash"})
				if err != nil {
					return err
				}
				if *locked["flash"].Inventory < 1 {
					return errors.New("out of stock")
				}
				return tx.AddInventory(ctx, map[string]int64{"flash": -1})
			})
		case i < takes+restocks:
			_, err := e.store.AddStock(e.ctx, "flash", 2)
			return err
		default:
			_, err := e.store.UpdateReward(e.ctx, "flash", func(r *tally.Reward) error {
				r.Name = fmt.Sprintf("Flash sale %d", i)
				return nil
			})
			return err
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if got, want := stock(e.mustReward("flash")), fmt.Sprint(1000-takes+2*restocks); got != want {
		t.Fatalf("stock %s after %d units taken and %d added, want %s", got, takes, 2*restocks, want)
	}
}

// testStockRaceWithRedeem is testStockRace with the ledger's own redemptions: customers redeem the reward
// while an administrator restocks and renames it; every unit is accounted for.
func testStockRaceWithRedeem(t *testing.T, h Harness) {
	e := newEnv(t, h)
	e.mustPutReward(tally.Reward{ID: "flash", PointCost: 10, Inventory: units(30), Active: true})
	l := ledger.New(e.store, ledger.Options{Key: e.key, Tiers: ladder{}, Workers: max(h.Workers, 2)})
	t.Cleanup(l.Close)
	const customers, restocks, edits = 60, 10, 10
	for i := range customers {
		if _, err := l.Write(e.ctx, ledger.Request{Kind: tally.KindAccrual, Account: e.customer(fmt.Sprint("buyer-", i)), Key: fmt.Sprint("seed-", i), Amount: 10}); err != nil {
			t.Fatal(err)
		}
	}
	redeemed := make([]bool, customers)
	errs := parallel(customers+restocks+edits, func(i int) error {
		switch {
		case i < customers:
			_, err := l.Write(e.ctx, ledger.Request{Kind: tally.KindRedemption, Account: e.customer(fmt.Sprint("buyer-", i)),
				Key: fmt.Sprint("redeem-", i), RewardID: "flash", Amount: 10})
			if tally.ErrorCode(err) == tally.EOUTOFSTOCK {
				return nil
			}
			redeemed[i] = err == nil
			return err
		case i < customers+restocks:
			_, err := e.store.AddStock(e.ctx, "flash", 2)
			return err
		default:
			_, err := e.store.UpdateReward(e.ctx, "flash", func(r *tally.Reward) error { r.Name = fmt.Sprint("Flash ", i); return nil })
			return err
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	sold := 0
	for _, ok := range redeemed {
		if ok {
			sold++
		}
	}
	rs, err := e.store.Redemptions(e.ctx, tally.RedemptionFilter{RewardID: "flash", Limit: tally.MaxRedemptionPage})
	if err != nil {
		t.Fatal(err)
	}
	left := *e.mustReward("flash").Inventory
	if len(rs) != sold || left+int64(sold) != 30+2*restocks || left < 0 {
		t.Fatalf("%d redeemed, %d receipts, %d left: receipts plus units left must be the %d units there ever were", sold, len(rs), left, 30+2*restocks)
	}
}

func testCoupons(t *testing.T, h Harness) {
	e := newEnv(t, h)
	e.mustPutReward(tally.Reward{ID: "gift", FulfillmentMethod: tally.MethodCoupon, Active: true})
	e.mustPutReward(tally.Reward{ID: "other-gift", FulfillmentMethod: tally.MethodCoupon, Active: true})
	e.mustPutReward(tally.Reward{ID: "mug", FulfillmentMethod: tally.MethodManual, Active: true})

	up, err := e.store.AddCoupons(e.ctx, "gift", []string{"AAA-1", "BBB-2", "AAA-1", "CCC 3"})
	if err != nil {
		t.Fatal(err)
	}
	if up != (tally.CouponUpload{Added: 3, Skipped: 1, Free: 3}) {
		t.Fatalf("first upload: %+v", up)
	}
	// Uploading a file again adds only what is new.
	up, err = e.store.AddCoupons(e.ctx, "gift", []string{"BBB-2", "CCC 3", "DDD-4"})
	if err != nil || up != (tally.CouponUpload{Added: 1, Skipped: 2, Free: 4}) {
		t.Fatalf("second upload: %+v %v", up, err)
	}
	// Many codes at once (more than one statement's worth on SQLite).
	many := make([]string, 1200)
	for i := range many {
		many[i] = fmt.Sprintf("BULK-%05d", i)
	}
	if up, err = e.store.AddCoupons(e.ctx, "other-gift", many); err != nil || up != (tally.CouponUpload{Added: 1200, Free: 1200}) {
		t.Fatalf("bulk upload: %+v %v", up, err)
	}

	for _, tc := range []struct {
		name   string
		reward string
		codes  []string
		want   tally.Code
	}{
		{"unknown reward", "nope", []string{"X"}, tally.ENOTFOUND},
		{"not a coupon reward", "mug", []string{"X"}, tally.ECONFLICT},
		{"a code of another reward", "gift", []string{"NEW-1", "BULK-00042"}, tally.ECONFLICT},
		{"no codes", "gift", nil, tally.EINVALID},
		{"empty code", "gift", []string{"NEW-1", ""}, tally.EINVALID},
		{"padded code", "gift", []string{"NEW-1", " NEW-2"}, tally.EINVALID},
		{"code too long", "gift", []string{"NEW-1", strings.Repeat("x", tally.MaxCouponCode+1)}, tally.EINVALID},
		{"code with a NUL", "gift", []string{"NEW-1", "a\x00b"}, tally.EINVALID},
		{"code not UTF-8", "gift", []string{"NEW-1", "caf\xe9"}, tally.EINVALID},
		{"code with a line break", "gift", []string{"NEW-1", "a\nb"}, tally.EINVALID},
	} {
		_, err := e.store.AddCoupons(e.ctx, tc.reward, tc.codes)
		if got := tally.ErrorCode(err); got != tc.want {
			t.Errorf("%s: %v (code %q), want %q", tc.name, err, got, tc.want)
		}
	}
	counts, err := e.store.CouponCounts(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]tally.CouponCount{"gift": {Free: 4}, "other-gift": {Free: 1200}}
	if fmt.Sprint(counts) != fmt.Sprint(want) {
		t.Fatalf("coupon counts after refused uploads: %v, want %v", counts, want)
	}

	// An assigned code counts as assigned, and uploading it again does not free it.
	c := e.customer("coupon-holder")
	e.mustAccrue(c, "seed", 500)
	rc := e.mustWrite(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "redeem-gift", Amount: 100})
	e.mustInsertRedemption(tally.Redemption{ReceiptID: "rcpt-gift", TxSeq: rc.Transaction.Seq, AccountID: c, RewardID: "gift",
		Points: 100, Method: tally.MethodCoupon, Status: tally.FulfillmentDelivered, CouponCode: "AAA-1"})
	if up, err = e.store.AddCoupons(e.ctx, "gift", []string{"AAA-1"}); err != nil || up != (tally.CouponUpload{Skipped: 1, Free: 3}) {
		t.Fatalf("upload of an assigned code: %+v %v", up, err)
	}
	if counts, _ = e.store.CouponCounts(e.ctx); counts["gift"] != (tally.CouponCount{Free: 3, Assigned: 1}) {
		t.Fatalf("coupon counts after one assignment: %v", counts)
	}
}

// mustInsertRedemption records a redemption as the ledger's redeem decision does, for a transaction that
// exists.
func (e *env) mustInsertRedemption(r tally.Redemption) {
	e.t.Helper()
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now().UTC()
	}
	r.UpdatedAt, r.NextAttemptAt = r.CreatedAt, r.CreatedAt
	err := e.store.Update(e.ctx, func(ctx context.Context, tx tally.WriteTx) error {
		return tx.InsertRedemptions(ctx, []tally.Redemption{r})
	})
	if err != nil {
		e.t.Fatalf("insert redemption %q: %v", r.ReceiptID, err)
	}
}

func testRedemptionList(t *testing.T, h Harness) {
	e := newEnv(t, h)
	e.mustPutReward(tally.Reward{ID: "mug", FulfillmentMethod: tally.MethodWebhook, WebhookURL: "https://example.com/hook", Active: true})
	e.mustPutReward(tally.Reward{ID: "cap", FulfillmentMethod: tally.MethodWebhook, WebhookURL: "https://example.com/hook", Active: true})
	c := e.customer("redeemer")
	e.mustAccrue(c, "seed", 10000)
	base := time.Date(2026, 11, 20, 14, 0, 0, 0, time.UTC)
	statuses := []string{tally.FulfillmentPending, tally.FulfillmentDead, tally.FulfillmentDelivered, tally.FulfillmentDead,
		tally.FulfillmentRefunded, tally.FulfillmentDead, tally.FulfillmentPending}
	var all []string // receipt ids, oldest first
	for i, status := range statuses {
		rc := e.mustWrite(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: fmt.Sprintf("redeem-%d", i), Amount: 10})
		reward := []string{"mug", "cap"}[i%2]
		id := fmt.Sprintf("rcpt-%d", i)
		created := base.Add(time.Duration(i) * time.Minute)
		if i == 4 {
			created = base.Add(3 * time.Minute) // a tie with rcpt-3: the receipt id orders them
		}
		e.mustInsertRedemption(tally.Redemption{ReceiptID: id, TxSeq: rc.Transaction.Seq, AccountID: c, RewardID: reward,
			Points: 10, Method: tally.MethodWebhook, Status: status, CreatedAt: created})
		all = append(all, id)
	}
	ids := func(rs []tally.Redemption) []string {
		out := []string{}
		for _, r := range rs {
			out = append(out, r.ReceiptID)
		}
		return out
	}
	list := func(f tally.RedemptionFilter) []string {
		t.Helper()
		rs, err := e.store.Redemptions(e.ctx, f)
		if err != nil {
			t.Fatalf("Redemptions(%+v): %v", f, err)
		}
		return ids(rs)
	}
	newestFirst := []string{"rcpt-6", "rcpt-5", "rcpt-4", "rcpt-3", "rcpt-2", "rcpt-1", "rcpt-0"}
	if got := list(tally.RedemptionFilter{Limit: 100}); !slices.Equal(got, newestFirst) {
		t.Fatalf("all redemptions: %v, want %v", got, newestFirst)
	}
	if got := list(tally.RedemptionFilter{Status: tally.FulfillmentDead, Limit: 100}); !slices.Equal(got, []string{"rcpt-5", "rcpt-3", "rcpt-1"}) {
		t.Fatalf("dead letters: %v", got)
	}
	if got := list(tally.RedemptionFilter{Status: tally.FulfillmentDead, RewardID: "cap", Limit: 100}); !slices.Equal(got, []string{"rcpt-5", "rcpt-3", "rcpt-1"}) {
		t.Fatalf("dead letters of cap: %v", got)
	}
	if got := list(tally.RedemptionFilter{RewardID: "mug", Limit: 100}); !slices.Equal(got, []string{"rcpt-6", "rcpt-4", "rcpt-2", "rcpt-0"}) {
		t.Fatalf("redemptions of mug: %v", got)
	}
	// Pages of two, each after the last of the one before, cover the list once.
	var paged []string
	f := tally.RedemptionFilter{Limit: 2}
	for range 10 {
		rs, err := e.store.Redemptions(e.ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) == 0 {
			break
		}
		paged = append(paged, ids(rs)...)
		last := rs[len(rs)-1]
		f.After = &tally.RedemptionCursor{CreatedAt: last.CreatedAt, ReceiptID: last.ReceiptID}
	}
	if !slices.Equal(paged, newestFirst) {
		t.Fatalf("paged: %v, want %v", paged, newestFirst)
	}
	for _, bad := range []tally.RedemptionFilter{{Limit: 0}, {Limit: tally.MaxRedemptionPage + 1}, {Status: "lost", Limit: 1}, {RewardID: "a\x00", Limit: 1}} {
		if _, err := e.store.Redemptions(e.ctx, bad); tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("Redemptions(%+v): %v, want %q", bad, err, tally.EINVALID)
		}
	}

	// Retrying a dead letter queues it again, due now, with no attempt made.
	now := base.Add(time.Hour)
	r, err := e.store.RetryRedemption(e.ctx, "rcpt-3", now)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != tally.FulfillmentPending || r.Attempts != 0 || !r.NextAttemptAt.Equal(now) || !r.UpdatedAt.Equal(now) || r.ReceiptID != "rcpt-3" {
		t.Fatalf("retried: %+v", r)
	}
	if stored, err := e.store.Redemption(e.ctx, "rcpt-3"); err != nil || stored.Status != tally.FulfillmentPending || !stored.NextAttemptAt.Equal(now) {
		t.Fatalf("stored after retry: %+v %v", stored, err)
	}
	for _, tc := range []struct {
		id   string
		want tally.Code
	}{
		{"rcpt-3", tally.ECONFLICT}, // pending now
		{"rcpt-2", tally.ECONFLICT}, // delivered
		{"rcpt-4", tally.ECONFLICT}, // refunded: the customer has the points back
		{"nope", tally.ENOTFOUND},
		{"rcpt\x00", tally.EINVALID},
	} {
		if _, err := e.store.RetryRedemption(e.ctx, tc.id, now); tally.ErrorCode(err) != tc.want {
			t.Errorf("retry %q: %v, want %q", tc.id, err, tc.want)
		}
	}
	if got := list(tally.RedemptionFilter{Status: tally.FulfillmentDead, Limit: 100}); !slices.Equal(got, []string{"rcpt-5", "rcpt-1"}) {
		t.Fatalf("dead letters after one retry: %v", got)
	}
}
