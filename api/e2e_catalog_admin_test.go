package api_test

import (
	"strconv"
	"strings"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
)

// TestE2ECatalogAdmin administers a catalog that customers redeem from: a partial update keeps what it
// does not name (the stock above all), restocking adds to what was sold, a deactivated reward cannot be
// redeemed, and coupon codes uploaded are the ones customers receive.
func TestE2ECatalogAdmin(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			f := newPortal(t, b)
			s := f.s
			admin := s.Token(tally.ScopeAdmin)
			const alice = "c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21"
			do := func(method, path, body string, status int) map[string]any {
				t.Helper()
				var b []byte
				if body != "" {
					b = []byte(body)
				}
				r := s.Do(method, path, admin, b)
				if r.Status != status {
					t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, r.Status, r.Body, status)
				}
				return r.JSON(t)
			}
			redeem := func(reward string, cost int, key string, status int) map[string]any {
				t.Helper()
				r := f.redeem(f.session, `{"customer_hash":"`+alice+`","reward_id":"`+reward+`","point_cost":`+strconv.Itoa(cost)+`,"idempotency_key":"`+key+`"}`)
				if r.Status != status {
					t.Fatalf("redeem %s: %d %s, want %d", reward, r.Status, r.Body, status)
				}
				return r.JSON(t)
			}

			// A rename keeps the description and the stock.
			m := do("PATCH", "/v1/catalog/rewards/RWD-8842", `{"name":"Big mug"}`, 200)
			if m["name"] != "Big mug" || m["description"] != "A mug" || m["inventory"] != float64(10) || m["point_cost"] != float64(2500) {
				t.Fatalf("after a rename: %v", m)
			}
			// Restocking adds to what customers took meanwhile.
			redeem("RWD-8842", 2500, "mug-1", 201)
			if m := do("POST", "/v1/catalog/rewards/RWD-8842/inventory", `{"add":5}`, 200); m["inventory"] != float64(14) {
				t.Fatalf("10 units, one sold, 5 added: %v", m)
			}

			// Deactivated: gone from the portal and refused; active again: back.
			do("PATCH", "/v1/catalog/rewards/one", `{"active":false}`, 200)
			if strings.Contains(string(s.Do("GET", "/v1/portal/catalog", f.session, nil).Body), `"one"`) {
				t.Fatal("the portal lists a deactivated reward")
			}
			redeem("one", 100, "one-1", 404)
			do("PATCH", "/v1/catalog/rewards/one", `{"active":true}`, 200)
			redeem("one", 100, "one-2", 201)
			// Coupon codes uploaded are handed out, each once, and shown in the listing.
			if r := s.Do("PUT", "/v1/catalog/rewards/GIFT", admin, []byte(`{"name":"Gift card","point_cost":10,"fulfillment_method":"coupon"}`)); r.Status != 200 {
				t.Fatalf("put GIFT: %d %s", r.Status, r.Body)
			}
			if m := do("POST", "/v1/catalog/rewards/GIFT/coupons", `{"codes":["GC-2","GC-1","GC-2"]}`, 200); m["added"] != float64(2) || m["skipped"] != float64(1) || m["free"] != float64(2) {
				t.Fatalf("coupon upload: %v", m)
			}
			got := map[string]bool{}
			for _, key := range []string{"gift-1", "gift-2"} {
				code, _ := redeem("GIFT", 10, key, 201)["fulfillment"].(map[string]any)["coupon_code"].(string)
				got[code] = true
			}
			if !got["GC-1"] || !got["GC-2"] {
				t.Fatalf("codes handed out: %v", got)
			}
			redeem("GIFT", 10, "gift-3", 409) // no code left
			page := do("GET", "/v1/catalog/redemptions?reward_id=GIFT", "", 200)
			rs := page["redemptions"].([]any)
			if len(rs) != 2 {
				t.Fatalf("redemptions of GIFT: %v", page)
			}
			for _, x := range rs {
				r := x.(map[string]any)
				if !got[r["coupon_code"].(string)] || !strings.HasPrefix(r["customer_hash"].(string), "th_") || r["points_debited"] != float64(10) {
					t.Fatalf("listed redemption %v", r)
				}
			}
			// A delivered redemption is no dead letter.
			do("POST", "/v1/catalog/redemptions/"+rs[0].(map[string]any)["receipt_id"].(string)+"/retry", "", 409)
		})
	}
}
