package genesys

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
)

// execute runs an action as Genesys would: render the URL, headers and body with the context, send the
// request to the real server, and translate its answer. It returns the HTTP status and the outputs.
func execute(t *testing.T, a *DataAction, vc velocityContext) (int, map[string]any) {
	t.Helper()
	render := func(s string) string {
		t.Helper()
		out, err := renderVelocity(s, vc)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		return out
	}
	req, err := http.NewRequest(a.Config.Request.RequestType, render(a.Config.Request.RequestURLTemplate),
		strings.NewReader(render(a.Config.Request.RequestTemplate)))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range a.Config.Request.Headers {
		req.Header.Set(k, render(v))
	}
	client := &http.Client{Timeout: time.Duration(max(a.Config.TimeoutSeconds, 10)) * time.Second}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", a.Name, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode/100 != 2 {
		t.Fatalf("%s: HTTP %d %s (Genesys would take the failure path)", a.Name, res.StatusCode, body)
	}
	out, err := translate(a.Config.Response, body)
	if err != nil {
		t.Fatalf("%s: %v", a.Name, err)
	}
	if a.Contract != nil {
		schema := map[string]any{}
		b, _ := json.Marshal(a.Contract.Output.SuccessSchema)
		json.Unmarshal(b, &schema)
		var inst any
		b, _ = json.Marshal(out)
		json.Unmarshal(b, &inst)
		if err := compileSchema(t, a.Name, schema).Validate(inst); err != nil {
			t.Fatalf("%s: the outputs %s do not match the output contract: %v", a.Name, b, err)
		}
	}
	return res.StatusCode, out
}

// token runs the exported custom auth action with a credential and returns ${authResponse.token}.
func token(t *testing.T, c Config, id, secret string) string {
	t.Helper()
	_, out := execute(t, customAuthAction(c), velocityContext{"credentials": {"clientId": id, "clientSecret": secret}})
	tok, _ := out["token"].(string)
	if tok == "" {
		t.Fatalf("the auth action gave no token: %v", out)
	}
	return tok
}

func num(t *testing.T, out map[string]any, k string) int64 {
	t.Helper()
	n, err := out[k].(json.Number).Int64()
	if err != nil {
		t.Fatalf("%s = %v is not an integer", k, out[k])
	}
	return n
}

// TestDataActionsAgainstTally proves the exported actions against a real Tally over HTTP: the custom
// auth action gets the tokens, and each action's rendered request is accepted and its answer translated
// into outputs matching its contract.
func TestDataActionsAgainstTally(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			s := apitest.Start(t, b, apitest.Config{})
			c := Config{BaseURL: s.URL}.Defaults()
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
			acts := map[string]*DataAction{}
			for _, a := range Actions(c) {
				acts[a.Name] = a
			}
			id, secret := s.Client(tally.ScopeLedgerRead, tally.ScopeLedgerWrite)
			adminID, adminSecret := s.Client(tally.ScopeLedgerRead, tally.ScopeLedgerWrite, tally.ScopeAdmin)
			ledger := velocityContext{"authResponse": {"token": token(t, c, id, secret)}}
			admin := velocityContext{"authResponse": {"token": token(t, c, adminID, adminSecret)}}
			with := func(vc velocityContext, in map[string]any) velocityContext {
				raw, _ := json.Marshal(in)
				in["rawRequest"] = string(raw)
				return velocityContext{"authResponse": vc["authResponse"], "input": in}
			}
			// A customer id with characters the templates must escape.
			customer := `cust-"O'Brien"\1`
			if r := s.Do("PUT", "/v1/catalog/rewards/RWD-8842", s.Token(apitest.AllScopes...),
				[]byte(`{"name":"Coffee voucher","point_cost":2500,"fulfillment_method":"manual"}`)); r.Status != 200 && r.Status != 201 {
				t.Fatalf("PUT reward: %d %s", r.Status, r.Body)
			}

			// The conversation ends: the workflow forwards the event, twice (a redelivery credits once).
			event := map[string]any{"conversationId": "4f6c2b9e-1a7d-4c3b-8e2f-9d0a5b6c7e8f", "participantId": "0b1c2d3e",
				"eventTime": int64(1763647402481), "mediaType": "MESSAGE", "messageType": "WEBMESSAGING",
				"disconnectType": "client", "interactingDurationMs": int64(412877), "customerId": customer}
			st, out := execute(t, acts["Tally - Process Conversation End"], with(ledger, event))
			if st != 201 || out["status"] != "applied" || num(t, out, "amount") <= 0 || num(t, out, "transactionId") <= 0 {
				t.Fatalf("process: %d %v", st, out)
			}
			earned := num(t, out, "amount")
			st, again := execute(t, acts["Tally - Process Conversation End"], with(ledger, event))
			if st != 200 || num(t, again, "transactionId") != num(t, out, "transactionId") {
				t.Fatalf("redelivery: %d %v, want 200 and the same transaction", st, again)
			}

			// An agent's goodwill adjustment and a reinstatement, with the admin integration's token.
			st, out = execute(t, acts["Tally - Goodwill Adjustment"], with(admin, map[string]any{"idempotencyKey": "gw-1",
				"customerId": customer, "amount": int64(3000), "reason": "delayed order", "agent": "agent-7"}))
			if st != 201 || out["kind"] != "adjustment" || num(t, out, "balance") != earned+3000 {
				t.Fatalf("goodwill: %d %v", st, out)
			}
			st, out = execute(t, acts["Tally - Reinstate Expired Points"], with(admin, map[string]any{"idempotencyKey": "re-1",
				"customerId": customer, "points": int64(50), "reference": "CASE-12", "agent": "agent-7"}))
			if st != 201 || num(t, out, "amount") != 50 || num(t, out, "balance") != earned+3050 {
				t.Fatalf("reinstate: %d %v", st, out)
			}
			tx := s.Do("GET", "/v1/ledger/transactions/"+out["transactionId"].(json.Number).String(), s.Token(apitest.AllScopes...), nil)
			if !strings.Contains(string(tx.Body), "reinstate expired points: CASE-12") {
				t.Errorf("the reinstatement's reason is not recorded: %s", tx.Body)
			}
			// The flow's token cannot make adjustments: that is why they live in the admin integration.
			if r := s.Do("POST", "/v1/ledger/transaction/process", ledger["authResponse"]["token"].(string),
				[]byte(`{"idempotency_key":"gw-2","customer_hash":"x","kind":"adjustment","amount":1,"reason":"r","actor":"a"}`)); r.Status != 403 {
				t.Errorf("an adjustment with the flow's token answered %d, want 403", r.Status)
			}

			// The flow looks the balance up and reads the catalog.
			st, out = execute(t, acts["Tally - Balance Lookup"], with(ledger, map[string]any{"customerId": customer,
				"channel": "webmessaging", "requestId": "4f6c2b9e"}))
			if st != 200 || num(t, out, "balance") != earned+3050 || out["tier"] == "" || out["sessionToken"] == "" || out["stale"] != false {
				t.Fatalf("lookup: %d %v", st, out)
			}
			// The session token is the widget's: it opens the portal.
			if r := s.Do("GET", "/v1/portal/me", out["sessionToken"].(string), nil); r.Status != 200 {
				t.Errorf("GET /v1/portal/me with the lookup's session token: %d %s", r.Status, r.Body)
			}
			st, out = execute(t, acts["Tally - Reward Catalog"], with(ledger, map[string]any{}))
			ids, _ := out["rewardIds"].([]any)
			costs, _ := out["pointCosts"].([]any)
			if st != 200 || len(ids) != 1 || ids[0] != "RWD-8842" || costs[0].(json.Number).String() != "2500" {
				t.Fatalf("catalog: %d %v", st, out)
			}

			// An agent redeems the reward for the customer.
			st, out = execute(t, acts["Tally - Redeem Reward"], with(ledger, map[string]any{"customerId": customer,
				"rewardId": "RWD-8842", "pointCost": int64(2500), "fulfillmentMethod": "manual", "idempotencyKey": "rd-1"}))
			if st != 201 || num(t, out, "pointsDebited") != 2500 || num(t, out, "balanceAfter") != earned+550 ||
				!strings.HasPrefix(out["receiptId"].(string), "rcp_") || out["fulfillmentMethod"] != "manual" {
				t.Fatalf("redeem: %d %v", st, out)
			}
		})
	}
}
