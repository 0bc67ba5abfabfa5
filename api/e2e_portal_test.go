package api_test

import (
	"bytes"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/tally-ledger/tally/api/apitest"
)

// portalFixture is a server with a small catalog and a funded customer, and that customer's session.
type portalFixture struct {
	s       *apitest.Server
	session string
}

func newPortal(t *testing.T, b apitest.Backend) *portalFixture {
	t.Helper()
	s := apitest.Start(t, b, apitest.Config{})
	for id, body := range map[string]string{
		"RWD-8842": `{"name":"Coffee mug","description":"A mug","image_url":"https://example.test/mug.png","point_cost":2500,"inventory":10,"fulfillment_method":"email"}`,
		"one":      `{"name":"Last one","point_cost":100,"inventory":1,"fulfillment_method":"manual"}`,
		"gold-hat": `{"name":"Hat","point_cost":100,"min_tier":"gold","fulfillment_method":"manual"}`,
		"retired":  `{"name":"Retired","point_cost":100,"fulfillment_method":"manual","active":false}`,
	} {
		if r := s.Do("PUT", "/v1/catalog/rewards/"+id, s.Token(apitest.AllScopes...), []byte(body)); r.Status != 200 {
			t.Fatalf("put reward %s: %d %s", id, r.Status, r.Body)
		}
	}
	f := &portalFixture{s: s}
	f.fund("c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21", 3000)
	f.session = f.sessionOf("c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21")
	return f
}

func (f *portalFixture) fund(customer string, points int) {
	f.s.T().Helper()
	body := fmt.Sprintf(`{"idempotency_key":"fund-%s","customer_hash":%q,"kind":"accrual","amount":%d,"reason":"test"}`, customer, customer, points)
	if r := f.s.Post("/v1/ledger/transaction/process", []byte(body)); r.Status != 201 {
		f.s.T().Fatalf("fund %s: %d %s", customer, r.Status, r.Body)
	}
}

func (f *portalFixture) sessionOf(customer string) string {
	f.s.T().Helper()
	r := f.s.Post("/v1/ledger/balance/lookup", []byte(fmt.Sprintf(`{"customer_hash":%q}`, customer)))
	tok, _ := r.JSON(f.s.T())["session_token"].(string)
	if r.Status != 200 || tok == "" {
		f.s.T().Fatalf("lookup: %d %s", r.Status, r.Body)
	}
	return tok
}

func (f *portalFixture) redeem(session, body string) apitest.Response {
	return f.s.Do("POST", "/v1/portal/redeem", session, []byte(body))
}

func (f *portalFixture) balance(customer string) float64 {
	f.s.T().Helper()
	r := f.s.Post("/v1/ledger/balance/lookup", []byte(fmt.Sprintf(`{"customer_hash":%q}`, customer)))
	return r.JSON(f.s.T())["balance"].(float64)
}

func TestE2EPortalRedeem(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			f := newPortal(t, b)
			const alice = "c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21"

			// The catalog, decided by the server for this customer; the guide's query is ignored.
			cat := f.s.Do("GET", "/v1/portal/catalog?tier=gold&balance=999999", f.session, nil)
			m := cat.JSON(t)
			if cat.Status != 200 || m["balance"] != float64(3000) || m["tier"] != "base" {
				t.Fatalf("catalog: %d %s", cat.Status, cat.Body)
			}
			rewards := map[string]map[string]any{}
			for _, x := range m["rewards"].([]any) {
				rw := x.(map[string]any)
				rewards[rw["reward_id"].(string)] = rw
			}
			if _, ok := rewards["retired"]; ok || len(rewards) != 3 {
				t.Fatalf("catalog rewards: %v", rewards)
			}
			if mug := rewards["RWD-8842"]; mug["affordable"] != true || mug["eligible"] != true || mug["in_stock"] != true || mug["description"] != "A mug" || mug["image_url"] != "https://example.test/mug.png" {
				t.Fatalf("mug: %v", mug)
			}
			if hat := rewards["gold-hat"]; hat["eligible"] != false {
				t.Fatalf("a base customer is eligible for the gold hat: %v", hat)
			}

			// The guide's redeem body, exactly as the sample has it.
			guide, err := os.ReadFile("../testdata/genesys/guide-redeem-request.json")
			if err != nil {
				t.Fatal(err)
			}
			first := f.redeem(f.session, string(guide))
			rc := first.JSON(t)
			if first.Status != 201 || rc["reward_id"] != "RWD-8842" || rc["points_debited"] != float64(2500) || rc["balance_after"] != float64(500) {
				t.Fatalf("redeem: %d %s", first.Status, first.Body)
			}
			if ful := rc["fulfillment"].(map[string]any); ful["method"] != "email" || ful["status"] != "pending" {
				t.Fatalf("fulfillment: %v", ful)
			}
			again := f.redeem(f.session, string(guide))
			if again.Status != 200 || !bytes.Equal(again.Body, first.Body) {
				t.Fatalf("replay: %d %s, want 200 and the same body", again.Status, again.Body)
			}
			if got := f.balance(alice); got != 500 {
				t.Fatalf("balance after one redemption and its replay: %v", got)
			}

			// Refusals, each charging nothing.
			bob := "bob-0001"
			f.fund(bob, 5000)
			for _, tc := range []struct {
				name, body string
				status     int
				code       string
			}{
				{"another customer's hash (IDOR)", `{"customer_hash":"bob-0001","reward_id":"one","point_cost":100,"idempotency_key":"i1"}`, 403, "forbidden"},
				{"tampered point_cost", `{"customer_hash":"` + alice + `","reward_id":"one","point_cost":1,"idempotency_key":"i2"}`, 409, "cost_changed"},
				{"not enough points", `{"customer_hash":"` + alice + `","reward_id":"RWD-8842","point_cost":2500,"idempotency_key":"i3"}`, 409, "insufficient_points"},
				{"inactive reward", `{"customer_hash":"` + alice + `","reward_id":"retired","point_cost":100,"idempotency_key":"i4"}`, 404, "not_found"},
				{"unknown reward", `{"customer_hash":"` + alice + `","reward_id":"nope","point_cost":100,"idempotency_key":"i5"}`, 404, "not_found"},
				{"tier too low", `{"customer_hash":"` + alice + `","reward_id":"gold-hat","point_cost":100,"idempotency_key":"i6"}`, 403, "tier_too_low"},
				{"no point_cost", `{"customer_hash":"` + alice + `","reward_id":"one","idempotency_key":"i7"}`, 422, "invalid"},
				{"unknown field", `{"customer_hash":"` + alice + `","reward_id":"one","point_cost":100,"idempotency_key":"i8","amount":1}`, 422, "invalid"},
				{"duplicate point_cost", `{"customer_hash":"` + alice + `","reward_id":"one","point_cost":1,"point_cost":100,"idempotency_key":"i9"}`, 422, "invalid"},
			} {
				r := f.redeem(f.session, tc.body)
				p := r.JSON(t)
				if r.Status != tc.status || p["code"] != tc.code {
					t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r.Body, tc.status, tc.code)
				}
				switch tc.code {
				case "cost_changed":
					if p["point_cost"] != float64(100) {
						t.Errorf("%s: the problem does not give the current cost: %s", tc.name, r.Body)
					}
				case "insufficient_points":
					if p["balance"] != float64(500) {
						t.Errorf("%s: the problem does not give the balance: %s", tc.name, r.Body)
					}
				}
			}
			if f.balance(alice) != 500 || f.balance(bob) != 5000 {
				t.Fatalf("refusals charged someone: %v %v", f.balance(alice), f.balance(bob))
			}

			// Session tokens only on portal routes, and never on ledger routes.
			if r := f.s.Do("GET", "/v1/portal/catalog", f.s.Token(apitest.AllScopes...), nil); r.Status != 401 {
				t.Fatalf("catalog with an access token: %d", r.Status)
			}
			if r := f.s.Do("POST", "/v1/ledger/balance/lookup", f.session, []byte(`{"customer_hash":"x"}`)); r.Status != 401 && r.Status != 403 {
				t.Fatalf("lookup with a session token: %d", r.Status)
			}
			ref := f.s.Do("POST", "/v1/portal/session/refresh", f.session, nil)
			tok, _ := ref.JSON(t)["session_token"].(string)
			if ref.Status != 200 || tok == "" {
				t.Fatalf("refresh: %d %s", ref.Status, ref.Body)
			}
			if r := f.s.Do("GET", "/v1/portal/catalog", tok, nil); r.Status != 200 {
				t.Fatalf("catalog with the renewed token: %d", r.Status)
			}
			if r := f.s.Do("POST", "/v1/portal/session/refresh", "not-a-token", nil); r.Status != 401 {
				t.Fatalf("refresh of garbage: %d", r.Status)
			}
		})
	}
}

// TestE2EPortalRedeemRaces: 50 customers racing for one unit get one receipt; 20 redemptions of one
// customer who can afford one get one.
func TestE2EPortalRedeemRaces(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			f := newPortal(t, b)
			sessions := make([]string, 50)
			for i := range sessions {
				c := fmt.Sprint("racer-", i)
				f.fund(c, 200)
				sessions[i] = f.sessionOf(c)
			}
			statuses := make([]int, 50)
			var wg sync.WaitGroup
			for i := range sessions {
				wg.Go(func() {
					statuses[i] = f.redeem(sessions[i], fmt.Sprintf(`{"customer_hash":"racer-%d","reward_id":"one","point_cost":100,"idempotency_key":"k"}`, i)).Status
				})
			}
			wg.Wait()
			won := 0
			for _, st := range statuses {
				switch st {
				case 201:
					won++
				case 409:
				default:
					t.Fatalf("racer answered %d", st)
				}
			}
			if won != 1 {
				t.Fatalf("%d receipts for one unit", won)
			}

			c := "carol"
			f.fund(c, 3000)
			sess := f.sessionOf(c)
			for i := range 20 {
				wg.Go(func() {
					statuses[i] = f.redeem(sess, fmt.Sprintf(`{"customer_hash":"carol","reward_id":"RWD-8842","point_cost":2500,"idempotency_key":"c%d"}`, i)).Status
				})
			}
			wg.Wait()
			won = 0
			for _, st := range statuses[:20] {
				if st == 201 {
					won++
				} else if st != 409 {
					t.Fatalf("redemption answered %d", st)
				}
			}
			if won != 1 || f.balance(c) != 500 {
				t.Fatalf("%d redemptions for a customer who can afford one; balance %v", won, f.balance(c))
			}
		})
	}
}

// TestE2EProcessRedeem: an integration redeems on a customer's behalf with the guide's body through
// transaction/process, under the same rules; an explicit redemption naming a reward pays its cost.
func TestE2EProcessRedeem(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			f := newPortal(t, b)
			guide, err := os.ReadFile("../testdata/genesys/guide-redeem-request.json")
			if err != nil {
				t.Fatal(err)
			}
			write := f.s.Token("ledger:write")
			r := f.s.Do("POST", "/v1/ledger/transaction/process", write, guide)
			if r.Status != 201 || r.JSON(t)["points_debited"] != float64(2500) {
				t.Fatalf("process redeem: %d %s", r.Status, r.Body)
			}
			if again := f.s.Do("POST", "/v1/ledger/transaction/process", write, guide); again.Status != 200 || !bytes.Equal(again.Body, r.Body) {
				t.Fatalf("replay: %d %s", again.Status, again.Body)
			}
			tampered := bytes.Replace(guide, []byte(`"point_cost": 2500`), []byte(`"point_cost": 25`), 1)
			tampered = bytes.Replace(tampered, []byte(`3a1f5c9e`), []byte(`3a1f5c9f`), 1)
			if r := f.s.Do("POST", "/v1/ledger/transaction/process", write, tampered); r.Status != 409 || r.JSON(t)["code"] != "cost_changed" {
				t.Fatalf("tampered cost: %d %s", r.Status, r.Body)
			}
			explicit := `{"idempotency_key":"x1","customer_hash":"c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21","kind":"redemption","reward_id":"one","amount":1,"reason":"agent"}`
			if r := f.s.Do("POST", "/v1/ledger/transaction/process", write, []byte(explicit)); r.Status != 409 {
				t.Fatalf("explicit redemption naming a reward at its own amount: %d %s", r.Status, r.Body)
			}
			explicit = `{"idempotency_key":"x2","customer_hash":"c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21","kind":"redemption","reward_id":"one","amount":100,"reason":"agent"}`
			if r := f.s.Do("POST", "/v1/ledger/transaction/process", write, []byte(explicit)); r.Status != 201 || r.JSON(t)["amount"] != float64(100) {
				t.Fatalf("explicit redemption naming a reward: %d %s", r.Status, r.Body)
			}
			if got := f.balance("c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21"); got != 400 {
				t.Fatalf("balance %v, want 3000-2500-100", got)
			}
		})
	}
}

// TestE2EPortalCouponStock: a coupon reward is in stock only while a code is free, and redeeming it
// shows the code on the receipt.
func TestE2EPortalCouponStock(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			f := newPortal(t, b)
			admin := f.s.Token(apitest.AllScopes...)
			if r := f.s.Do("PUT", "/v1/catalog/rewards/voucher", admin, []byte(`{"name":"Voucher","point_cost":10,"fulfillment_method":"coupon"}`)); r.Status != 200 {
				t.Fatalf("put: %d %s", r.Status, r.Body)
			}
			inStock := func() any {
				for _, x := range f.s.Do("GET", "/v1/portal/catalog", f.session, nil).JSON(t)["rewards"].([]any) {
					if rw := x.(map[string]any); rw["reward_id"] == "voucher" {
						return rw["in_stock"]
					}
				}
				t.Fatal("the voucher is not in the catalog")
				return nil
			}
			if got := inStock(); got != false {
				t.Fatalf("a coupon reward without codes: in_stock %v", got)
			}
			if r := f.s.Do("POST", "/v1/catalog/rewards/voucher/coupons", admin, []byte(`{"codes":["ONLY-1"]}`)); r.Status != 200 {
				t.Fatalf("upload: %d %s", r.Status, r.Body)
			}
			if got := inStock(); got != true {
				t.Fatalf("a coupon reward with a free code: in_stock %v", got)
			}
			r := f.redeem(f.session, `{"customer_hash":"c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21","reward_id":"voucher","point_cost":10,"idempotency_key":"v1"}`)
			if ful, _ := r.JSON(t)["fulfillment"].(map[string]any); r.Status != 201 || ful["coupon_code"] != "ONLY-1" || ful["status"] != "delivered" {
				t.Fatalf("coupon redemption: %d %s", r.Status, r.Body)
			}
			if got := inStock(); got != false {
				t.Fatalf("after the last code went: in_stock %v", got)
			}
			// An integration's explicit redemption of a coupon reward is answered its code too.
			f.s.Do("POST", "/v1/catalog/rewards/voucher/coupons", admin, []byte(`{"codes":["ONLY-2"]}`))
			ex := f.s.Post("/v1/ledger/transaction/process", []byte(`{"idempotency_key":"ex-v","customer_hash":"c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21","kind":"redemption","reward_id":"voucher","reason":"agent"}`))
			rcpt, _ := ex.JSON(t)["receipt"].(map[string]any)
			if ful, _ := rcpt["fulfillment"].(map[string]any); ex.Status != 201 || ful["coupon_code"] != "ONLY-2" {
				t.Fatalf("explicit coupon redemption: %d %s", ex.Status, ex.Body)
			}
		})
	}
}

// TestE2EPortalKeysCannotBeClaimed: an integration cannot take a portal redemption's idempotency key
// (or a fulfillment refund's) through an explicit transaction on the portal's channel.
func TestE2EPortalKeysCannotBeClaimed(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			f := newPortal(t, b)
			const alice = "c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21"
			hash := f.s.Hasher.Hash(alice)
			for _, ch := range []string{"portal", "PORTAL", "Portal", "fulfillment", "FULFILLMENT"} {
				body := fmt.Sprintf(`{"idempotency_key":"%s/fixedkey","channel":%q,"customer_hash":%q,"kind":"accrual","amount":1,"reason":"x"}`, hash[:32], ch, alice)
				if r := f.s.Post("/v1/ledger/transaction/process", []byte(body)); r.Status != 422 {
					t.Fatalf("explicit transaction on channel %s: %d %s, want 422", ch, r.Status, r.Body)
				}
			}
			r := f.redeem(f.session, `{"customer_hash":"`+alice+`","reward_id":"one","point_cost":100,"idempotency_key":"fixedkey"}`)
			if r.Status != 201 {
				t.Fatalf("the customer's redemption with that key: %d %s", r.Status, r.Body)
			}
		})
	}
}
