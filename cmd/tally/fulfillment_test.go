package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally/fulfillment"
)

// TestServeFulfillment: serve runs a worker that delivers a portal redemption to the reward's webhook,
// signed with the secret `tally webhook-secret` prints for that receiver.
func TestServeFulfillment(t *testing.T) {
	db := tempDB(t)
	type delivery struct {
		header http.Header
		body   []byte
	}
	got := make(chan delivery, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		got <- delivery{r.Header.Clone(), body}
	}))
	defer hook.Close()

	s := startServe(t, "--db", db)
	id, secret := createClient(t, db, "ledger:read,ledger:write,admin")
	token := fetchToken(t, s.base, id, secret)
	reward := `{"name":"Gift card","point_cost":100,"fulfillment_method":"webhook","webhook_url":"` + hook.URL + `/hooks/tally"}`
	req, _ := http.NewRequest("PUT", s.base+"/v1/catalog/rewards/RWD-GIFT", strings.NewReader(reward))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	if status, body, err := send(req); err != nil || status != 200 {
		t.Fatalf("put reward: %d %s %v", status, body, err)
	}
	if status, body, err := postJSON(s.base, "/v1/ledger/transaction/process", token, accrualRequest("earn-1", "erin", 150)); err != nil || status != 201 {
		t.Fatalf("accrue: %d %s %v", status, body, err)
	}
	session := lookup(t, s.base, token, "erin")["session_token"].(string)
	status, body, err := postJSON(s.base, "/v1/portal/redeem", session, map[string]any{
		"customer_hash": "erin", "reward_id": "RWD-GIFT", "point_cost": 100, "fulfillment_method": "webhook", "idempotency_key": "r-1"})
	if err != nil || status != 201 {
		t.Fatalf("redeem: %d %s %v", status, body, err)
	}
	var receipt struct {
		ReceiptID string `json:"receipt_id"`
	}
	json.Unmarshal(body, &receipt)

	var d delivery
	select {
	case d = <-got:
	case <-time.After(time.Minute):
		t.Fatal("no delivery within a minute")
	}
	hookSecret := strings.TrimSpace(mustCLI(t, "webhook-secret", "--db", db, "--url", hook.URL+"/hooks/tally"))
	if err := fulfillment.Verify(hookSecret, d.header, d.body, time.Now(), fulfillment.DefaultTolerance); err != nil {
		t.Fatalf("the delivery does not verify with the printed secret: %v", err)
	}
	if d.header.Get(fulfillment.HeaderDelivery) != receipt.ReceiptID || !bytes.Contains(d.body, []byte(`"receipt_id":"`+receipt.ReceiptID+`"`)) {
		t.Fatalf("delivery %v %s is not of receipt %s", d.header, d.body, receipt.ReceiptID)
	}

	// The receipt shows it delivered, once the worker has recorded it.
	for deadline := time.Now().Add(time.Minute); ; {
		req, _ := http.NewRequest("GET", s.base+"/v1/portal/receipts/"+receipt.ReceiptID, nil)
		req.Header.Set("Authorization", "Bearer "+session)
		status, body, err := send(req)
		if err != nil || status != 200 {
			t.Fatalf("receipt: %d %s %v", status, body, err)
		}
		if bytes.Contains(body, []byte(`"status":"delivered"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receipt still not delivered: %s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	req, _ = http.NewRequest("GET", s.base+"/metrics", nil)
	if _, body, err := send(req); err != nil || !bytes.Contains(body, []byte(`tally_fulfillment_events_total{event="delivered"} 1`)) {
		t.Fatalf("metrics do not count the delivery (%v):\n%s", err, body)
	}
}

func TestWebhookSecretFlags(t *testing.T) {
	for _, args := range [][]string{
		{"webhook-secret", "--db", tempDB(t)},
		{"webhook-secret", "--db", tempDB(t), "--url", "not a url"},
		{"webhook-secret", "--db", tempDB(t), "--url", "ftp://partner.example/"},
	} {
		if _, err := cli(t, args...); err == nil {
			t.Errorf("tally %s: no error", strings.Join(args, " "))
		}
	}
	if _, err := parseServe([]string{"--fulfillment-attempts", "0"}, io.Discard); err == nil {
		t.Error("--fulfillment-attempts 0 was accepted")
	}
	if _, err := parseServe([]string{"--mailer-url", "mailer.local/send"}, io.Discard); err == nil {
		t.Error("a mailer URL without a scheme was accepted")
	}
}
