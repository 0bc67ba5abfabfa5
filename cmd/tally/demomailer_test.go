package main

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"
)

// TestServeDemoMailer: with --demo and no --mailer-url, an e-mail reward redeemed from the portal is
// delivered to the built-in demo mailer (signature checked) and its receipt says delivered.
func TestServeDemoMailer(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "tally.db")
	s := startServe(t, "--db", db, "--demo")
	id, secret := demoCredentials(t, s.out.String())
	tok := fetchToken(t, s.base, id, secret)
	lk := lookup(t, s.base, tok, demoCustomer)
	session, _ := lk["session_token"].(string)
	body := map[string]any{"customer_hash": demoCustomer, "reward_id": "RWD-8842", "point_cost": 2500, "fulfillment_method": "email", "idempotency_key": "demo-mail-1"}
	status, raw, err := postJSON(s.base, "/v1/portal/redeem", session, body)
	var rc struct {
		ReceiptID string `json:"receipt_id"`
	}
	if err != nil || status != http.StatusCreated || json.Unmarshal(raw, &rc) != nil {
		t.Fatalf("redeem: %d %s %v", status, raw, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		req, _ := http.NewRequest("GET", s.base+"/v1/portal/receipts/"+rc.ReceiptID, nil)
		req.Header.Set("Authorization", "Bearer "+session)
		st, b, err := send(req)
		var got struct {
			Fulfillment struct{ Status string } `json:"fulfillment"`
		}
		if err == nil && st == 200 && json.Unmarshal(b, &got) == nil && got.Fulfillment.Status == "delivered" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the receipt is not delivered within a minute: %d %s %v", st, b, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
