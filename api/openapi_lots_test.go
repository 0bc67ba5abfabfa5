package api_test

import (
	"strconv"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
)

// oaLots exercises the points lifecycle routes and the balance fields they add.
func oaLots(t *testing.T, c *oaContract, s *apitest.Server, ok func(name, method, path, token string, body []byte, status int, header ...string) oaExchange, bad func(oaExchange) oaExchange, big []byte) {
	read, write, admin := s.Token(tally.ScopeLedgerRead), s.Token(tally.ScopeLedgerWrite), s.Token(tally.ScopeAdmin)
	const dora = "dora-contact-id"
	process := func(name, body string, status int) string {
		res := c.do(t, s, ok(name, "POST", "/v1/ledger/transaction/process", write, []byte(body), status))
		id, _ := res.JSON(t)["transaction_id"].(float64)
		return strconv.FormatInt(int64(id), 10)
	}
	held := process("pending accrual", `{"idempotency_key":"lot-1","customer_hash":"`+dora+`","kind":"accrual","amount":100,"pending_until":"2099-01-01T00:00:00Z"}`, 201)
	second := process("second pending accrual", `{"idempotency_key":"lot-2","customer_hash":"`+dora+`","kind":"accrual","amount":50,"pending_until":"2099-01-01T00:00:00Z"}`, 201)
	process("expiring accrual", `{"idempotency_key":"lot-3","customer_hash":"`+dora+`","kind":"accrual","amount":30,"expires_at":"2099-06-01T00:00:00Z"}`, 201)
	res := c.do(t, s, ok("lookup with pending points", "POST", "/v1/ledger/balance/lookup", read, []byte(`{"customer_hash":"`+dora+`"}`), 200))
	if m := res.JSON(t); m["balance"] != 30.0 || m["pending_points"] != 150.0 || m["next_expiry"] == nil {
		t.Errorf("lookup = %s, want 30 spendable, 150 pending and a next expiry", res.Body)
	}

	activate := "/v1/admin/transactions/" + second + "/activate"
	c.do(t, s, ok("activate", "POST", activate, admin, nil, 200))
	c.do(t, s, ok("activate again", "POST", activate, admin, nil, 200))
	for _, ex := range []oaExchange{
		ok("activate nothing", "POST", "/v1/admin/transactions/999999/activate", admin, nil, 404),
		ok("activate without token", "POST", activate, "", nil, 401),
		ok("activate without admin", "POST", activate, write, nil, 403),
		ok("activate, malformed Authorization", "POST", activate, "", nil, 400, "Authorization", "Bearer a b"),
		bad(ok("activate not a number", "POST", "/v1/admin/transactions/abc/activate", admin, nil, 422)),
	} {
		c.do(t, s, ex)
	}

	redemption := process("redemption", `{"idempotency_key":"lot-r","customer_hash":"`+dora+`","kind":"redemption","amount":10}`, 201)
	const adj = "/v1/admin/adjustments"
	credit := []byte(`{"idempotency_key":"adj-lot-1","customer_hash":"` + dora + `","amount":25,"reason":"reinstated expired points","actor":"agent-7","expires_at":"2099-12-31T00:00:00Z"}`)
	c.do(t, s, ok("credit", "POST", adj, admin, credit, 201))
	c.do(t, s, ok("credit again", "POST", adj, admin, credit, 200))
	c.do(t, s, ok("debit", "POST", adj, admin, []byte(`{"idempotency_key":"adj-lot-2","customer_hash":"`+dora+`","amount":-85,"reason":"correction","actor":"agent-7"}`), 201))
	for _, ex := range []oaExchange{
		ok("debit beyond the balance", "POST", adj, admin, []byte(`{"idempotency_key":"adj-lot-3","customer_hash":"`+dora+`","amount":-1000,"reason":"x","actor":"y"}`), 422),
		ok("key reused", "POST", adj, admin, []byte(`{"idempotency_key":"adj-lot-1","customer_hash":"`+dora+`","amount":26,"reason":"x","actor":"y"}`), 409),
		ok("debit of a customer without account", "POST", adj, admin, []byte(`{"idempotency_key":"adj-lot-4","customer_hash":"nobody-at-all","amount":-1,"reason":"x","actor":"y"}`), 404),
		ok("adjustment without token", "POST", adj, "", credit, 401),
		ok("adjustment without admin", "POST", adj, write, credit, 403),
		bad(ok("adjustment without actor", "POST", adj, admin, []byte(`{"idempotency_key":"adj-lot-5","customer_hash":"`+dora+`","amount":1,"reason":"x"}`), 422)),
		bad(ok("zero adjustment", "POST", adj, admin, []byte(`{"idempotency_key":"adj-lot-6","customer_hash":"`+dora+`","amount":0,"reason":"x","actor":"y"}`), 422)),
		bad(ok("adjustment, malformed JSON", "POST", adj, admin, []byte(`{`), 400)),
		bad(ok("adjustment too large", "POST", adj, admin, big, 413)),
	} {
		c.do(t, s, ex)
	}

	const claw = "/v1/admin/clawbacks"
	clawback := []byte(`{"idempotency_key":"cb-1","transaction_id":` + held + `,"reason":"order returned","actor":"agent-7"}`)
	res = c.do(t, s, ok("clawback of pending points", "POST", claw, admin, clawback, 201))
	if m := res.JSON(t); m["kind"] != "reversal" || m["pending_points"] != nil {
		t.Errorf("clawback = %s, want a reversal leaving nothing pending", res.Body)
	}
	c.do(t, s, ok("clawback again", "POST", claw, admin, clawback, 200))
	for _, ex := range []oaExchange{
		// 50 earned, 40 of them spent, 10 spendable left: within the balance, the clawback cannot take 50.
		ok("clawback of spent points", "POST", claw, admin, []byte(`{"idempotency_key":"cb-2","transaction_id":`+second+`,"reason":"x","actor":"y"}`), 422),
		ok("clawback of a redemption", "POST", claw, admin, []byte(`{"idempotency_key":"cb-3","transaction_id":`+redemption+`,"reason":"x","actor":"y"}`), 422),
		ok("clawback of nothing", "POST", claw, admin, []byte(`{"idempotency_key":"cb-4","transaction_id":999999,"reason":"x","actor":"y"}`), 404),
		ok("clawback key reused", "POST", claw, admin, []byte(`{"idempotency_key":"cb-1","transaction_id":`+second+`,"reason":"x","actor":"y"}`), 409),
		ok("clawback without token", "POST", claw, "", clawback, 401),
		ok("clawback without admin", "POST", claw, write, clawback, 403),
		bad(ok("clawback without reason", "POST", claw, admin, []byte(`{"idempotency_key":"cb-5","transaction_id":1,"actor":"y"}`), 422)),
		bad(ok("clawback, malformed JSON", "POST", claw, admin, []byte(`{"idempotency_key":`), 400)),
		bad(ok("clawback too large", "POST", claw, admin, big, 413)),
	} {
		c.do(t, s, ex)
	}

	const rev = "/v1/admin/reversals"
	reversal := []byte(`{"idempotency_key":"rv-1","transaction_id":` + redemption + `,"reason":"refund","actor":"agent-7"}`)
	c.do(t, s, ok("reversal", "POST", rev, admin, reversal, 201))
	c.do(t, s, ok("reversal again", "POST", rev, admin, reversal, 200))
	for _, ex := range []oaExchange{
		ok("reversed twice", "POST", rev, admin, []byte(`{"idempotency_key":"rv-2","transaction_id":`+redemption+`,"reason":"x","actor":"y"}`), 409),
		ok("reversal of nothing", "POST", rev, admin, []byte(`{"idempotency_key":"rv-3","transaction_id":999999,"reason":"x","actor":"y"}`), 404),
		ok("reversal without token", "POST", rev, "", reversal, 401),
		ok("reversal without admin", "POST", rev, write, reversal, 403),
		bad(ok("reversal of transaction 0", "POST", rev, admin, []byte(`{"idempotency_key":"rv-4","transaction_id":0,"reason":"x","actor":"y"}`), 422)),
		bad(ok("reversal, malformed JSON", "POST", rev, admin, []byte(`[`), 400)),
		bad(ok("reversal too large", "POST", rev, admin, big, 413)),
	} {
		c.do(t, s, ex)
	}

	const run = "/v1/admin/expiry/run"
	c.do(t, s, ok("expiry run", "POST", run, admin, nil, 200))
	for _, ex := range []oaExchange{
		ok("expiry run without token", "POST", run, "", nil, 401),
		ok("expiry run without admin", "POST", run, write, nil, 403),
		ok("expiry run, malformed Authorization", "POST", run, "", nil, 400, "Authorization", "Bearer a b"),
	} {
		c.do(t, s, ex)
	}
}
