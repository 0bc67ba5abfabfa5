package api_test

import (
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
)

// TestLapsedPointsNotSpendable: points whose lot expired are gone at their expiry time, through the
// HTTP API, before any expiry job ran: the lookup, the portal and the write answers leave them out
// (the lookup shows them as a next_expiry in the past), and a redemption that needs them is refused;
// the job then posts them once.
func TestLapsedPointsNotSpendable(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			start := time.Date(2026, 1, 15, 10, 0, 0, 0, time.UTC)
			clk := &spoolClock{now: start}
			s := apitest.Start(t, b, apitest.Config{Clock: clk.Now,
				Lots: tally.LotPolicy{Expiry: tally.ExpiryPolicy{Policy: tally.ExpireAfterDays, Days: 30}}})
			write, read := s.Token(tally.ScopeLedgerWrite), s.Token(tally.ScopeLedgerRead)
			const who = "lapse-customer"
			process := func(body string, status int) map[string]any {
				t.Helper()
				res := s.Do("POST", "/v1/ledger/transaction/process", write, []byte(body))
				if res.Status != status {
					t.Fatalf("%s: %d %s, want %d", body, res.Status, res.Body, status)
				}
				return res.JSON(t)
			}
			process(`{"idempotency_key":"old","customer_hash":"`+who+`","kind":"accrual","amount":100}`, 201)
			process(`{"idempotency_key":"late","customer_hash":"`+who+`","kind":"accrual","amount":40,"expires_at":"2026-06-01T00:00:00Z"}`, 201)

			clk.Set(start.Add(30*24*time.Hour + 30*time.Second)) // the first lot lapsed 30 s ago
			lookup := e2eLookup(t, s, []byte(`{"customer_hash":"`+who+`"}`))
			if lookup.Balance != 40 {
				t.Fatalf("lookup balance = %d, want 40 (the 100 lapsed points left out)", lookup.Balance)
			}
			res := s.Do("POST", e2eLookupPath, read, []byte(`{"customer_hash":"`+who+`"}`))
			if next, _ := res.JSON(t)["next_expiry"].(map[string]any); next == nil || next["points"] != 100.0 || next["at"] != "2026-02-14T10:00:00Z" {
				t.Fatalf("next_expiry = %v, want the 100 lapsed points at their expiry time", res.JSON(t)["next_expiry"])
			}
			me := s.Do("GET", "/v1/portal/me", lookup.SessionToken, nil)
			if me.Status != 200 || me.JSON(t)["balance"] != 40.0 {
				t.Fatalf("portal me = %d %s, want balance 40", me.Status, me.Body)
			}
			process(`{"idempotency_key":"r1","customer_hash":"`+who+`","kind":"redemption","amount":41}`, 422)
			if m := process(`{"idempotency_key":"a1","customer_hash":"`+who+`","kind":"accrual","amount":5}`, 201); m["balance"] != 45.0 {
				t.Fatalf("accrual answer balance = %v, want 45", m["balance"])
			}
			if m := process(`{"idempotency_key":"r2","customer_hash":"`+who+`","kind":"redemption","amount":45}`, 201); m["balance"] != 0.0 {
				t.Fatalf("redemption answer balance = %v, want 0", m["balance"])
			}
			rep := s.Do("POST", "/v1/admin/expiry/run", s.Token(tally.ScopeAdmin), nil)
			if m := rep.JSON(t); rep.Status != 200 || m["transactions"] != 1.0 || m["points"] != 100.0 {
				t.Fatalf("expiry run = %d %s, want one expiry of 100 points", rep.Status, rep.Body)
			}
			if again := s.Do("POST", "/v1/admin/expiry/run", s.Token(tally.ScopeAdmin), nil); again.JSON(t)["transactions"] != 0.0 {
				t.Fatalf("second expiry run = %s, want nothing posted", again.Body)
			}
			if got := e2eLookup(t, s, []byte(`{"customer_hash":"`+who+`"}`)); got.Balance != 0 {
				t.Fatalf("balance after the job = %d, want 0", got.Balance)
			}
		})
	}
}
