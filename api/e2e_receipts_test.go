package api_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/fulfillment"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/sqlite"
)

// TestE2EPortalReceipt: a receipt shows its owner the fulfillment's status as it moves on, and answers
// anyone else exactly as a receipt that does not exist.
func TestE2EPortalReceipt(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			f := newPortal(t, b)
			const alice, mallory = "c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21", "mallory-contact"
			hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
			defer hook.Close()
			put := fmt.Sprintf(`{"name":"Gift card","point_cost":400,"fulfillment_method":"webhook","webhook_url":%q}`, hook.URL+"/hook")
			if r := f.s.Do("PUT", "/v1/catalog/rewards/RWD-GIFT", f.s.Token(apitest.AllScopes...), []byte(put)); r.Status != 200 {
				t.Fatalf("put reward: %d %s", r.Status, r.Body)
			}
			redeemed := f.redeem(f.session, fmt.Sprintf(`{"customer_hash":%q,"reward_id":"RWD-GIFT","point_cost":400,"fulfillment_method":"webhook","idempotency_key":"gift-1"}`, alice))
			if redeemed.Status != 201 {
				t.Fatalf("redeem: %d %s", redeemed.Status, redeemed.Body)
			}
			id := redeemed.JSON(t)["receipt_id"].(string)

			receipt := func(session, id string) (int, map[string]any) {
				t.Helper()
				r := f.s.Do("GET", "/v1/portal/receipts/"+id, session, nil)
				return r.Status, r.JSON(t)
			}
			status, rc := receipt(f.session, id)
			ful, _ := rc["fulfillment"].(map[string]any)
			if status != 200 || rc["receipt_id"] != id || rc["points_debited"] != float64(400) || rc["balance_after"] != float64(2600) ||
				ful["method"] != "webhook" || ful["status"] != "pending" {
				t.Fatalf("receipt before delivery: %d %v", status, rc)
			}

			// Delivered by a worker, as serve runs one.
			signer, err := fulfillment.NewSigner(apitest.Key.WebhookKey())
			if err != nil {
				t.Fatal(err)
			}
			w := fulfillment.New(fulfillment.Options{Jobs: f.s.Store.(tally.FulfillmentStore), Catalog: f.s.Store, Ledger: f.s.Ledger, Signer: signer})
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if n, err := w.RunOnce(ctx); n != 1 || err != nil {
				t.Fatalf("worker: %d jobs, %v", n, err)
			}
			if status, rc = receipt(f.session, id); status != 200 || rc["fulfillment"].(map[string]any)["status"] != "delivered" {
				t.Fatalf("receipt after delivery: %d %v", status, rc)
			}

			// Anyone else: the same 404 as for a receipt that does not exist.
			other := f.sessionOf(mallory)
			status, foreign := receipt(other, id)
			_, absent := receipt(other, "rcp_000000000000000000000000")
			if status != 404 || foreign["code"] != absent["code"] || foreign["title"] != absent["title"] {
				t.Fatalf("another customer's receipt: %d %v (absent: %v)", status, foreign, absent)
			}
			if r := f.s.Do("GET", "/v1/portal/receipts/"+id, f.s.Token(apitest.AllScopes...), nil); r.Status != 401 {
				t.Fatalf("with an access token instead of a session: %d %s", r.Status, r.Body)
			}

			// A coupon's code is on its receipt.
			if r := f.s.Do("PUT", "/v1/catalog/rewards/RWD-CODE", f.s.Token(apitest.AllScopes...), []byte(`{"name":"Voucher","point_cost":10,"fulfillment_method":"coupon"}`)); r.Status != 200 {
				t.Fatalf("put coupon reward: %d %s", r.Status, r.Body)
			}
			execSQL(t, f.s.Store, `INSERT INTO reward_coupons (reward_id, code, created_at) VALUES ('RWD-CODE', 'WELCOME-1', `+map[bool]string{true: "0", false: "now()"}[b == apitest.SQLite]+`)`)
			coupon := f.redeem(f.session, fmt.Sprintf(`{"customer_hash":%q,"reward_id":"RWD-CODE","point_cost":10,"idempotency_key":"code-1"}`, alice))
			if coupon.Status != 201 {
				t.Fatalf("redeem coupon: %d %s", coupon.Status, coupon.Body)
			}
			status, rc = receipt(f.session, coupon.JSON(t)["receipt_id"].(string))
			if ful := rc["fulfillment"].(map[string]any); status != 200 || ful["coupon_code"] != "WELCOME-1" || ful["status"] != "delivered" {
				t.Fatalf("coupon receipt: %d %v", status, rc)
			}
		})
	}
}

// execSQL runs SQL on the store's database directly (here: what uploading coupon codes will do).
func execSQL(t *testing.T, s tally.Store, query string) {
	t.Helper()
	var err error
	switch db := s.(type) {
	case *sqlite.DB:
		_, err = db.SQL().Exec(query)
	case *postgres.DB:
		_, err = db.Pool().Exec(context.Background(), query)
	default:
		t.Fatalf("no SQL for %T", s)
	}
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}
