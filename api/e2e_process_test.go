package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/ledger"
)

// The helpers below are shared by the e2e_*_test.go files: each test runs against a fresh server on every
// backend and talks HTTP to it.

// e2eEach runs test against a fresh server on each backend, in parallel, and afterwards checks that the
// ledger the test wrote still verifies.
func e2eEach(t *testing.T, test func(t *testing.T, srv *apitest.Server)) {
	t.Helper()
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			srv := apitest.Start(t, b, apitest.Config{})
			test(t, srv)
			e2eVerify(t, srv)
		})
	}
}

// e2eVerify fails the test when the ledger's hash chains, postings or balances do not add up.
func e2eVerify(t testing.TB, srv *apitest.Server) {
	t.Helper()
	if _, err := ledger.Verify(context.Background(), srv.Store.Audit(), ledger.VerifyOptions{Key: apitest.Key}); err != nil {
		t.Fatalf("ledger does not verify: %v", err)
	}
}

// e2eRequest builds a request to the server; header holds name, value pairs.
func e2eRequest(t testing.TB, srv *apitest.Server, method, path, token string, body io.Reader, header ...string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return req
}

// e2eSend sends a request and reads the whole answer. It calls nothing on a testing.TB, so that
// goroutines may use it.
func e2eSend(client *http.Client, req *http.Request) (apitest.Response, error) {
	res, err := client.Do(req)
	if err != nil {
		return apitest.Response{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return apitest.Response{}, err
	}
	return apitest.Response{Status: res.StatusCode, Header: res.Header, Body: b}, nil
}

// e2eDo sends a request with an optional bearer token and body.
func e2eDo(t testing.TB, srv *apitest.Server, method, path, token string, body []byte, header ...string) apitest.Response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	res, err := e2eSend(http.DefaultClient, e2eRequest(t, srv, method, path, token, rd, header...))
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return res
}

// e2eStatus fails the test unless the answer has the status.
func e2eStatus(t testing.TB, res apitest.Response, want int) {
	t.Helper()
	if res.Status != want {
		t.Fatalf("status %d, want %d; body %s", res.Status, want, res.Body)
	}
}

// e2eProblem fails the test unless the answer is an RFC 9457 problem with the status and code, carrying
// the request id it was answered under.
func e2eProblem(t testing.TB, res apitest.Response, status int, code tally.Code) map[string]any {
	t.Helper()
	e2eStatus(t, res, status)
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json; body %s", ct, res.Body)
	}
	p := res.JSON(t)
	for _, k := range []string{"type", "title", "code", "request_id"} {
		if s, _ := p[k].(string); s == "" {
			t.Errorf("problem has no %q: %s", k, res.Body)
		}
	}
	if p["status"] != float64(status) {
		t.Errorf("problem status %v, want %d", p["status"], status)
	}
	if p["code"] != string(code) {
		t.Errorf("problem code %v, want %s; body %s", p["code"], code, res.Body)
	}
	if id := res.Header.Get("X-Request-Id"); p["request_id"] != id {
		t.Errorf("problem request_id %v, X-Request-Id %q", p["request_id"], id)
	}
	return p
}

// e2eSample reads a Genesys sample body (copies of shared/genesys/samples kept in testdata).
func e2eSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "genesys", name))
	if err != nil {
		t.Fatalf("Genesys sample: %v", err)
	}
	return b
}

// e2eJSON encodes v, failing the test if it cannot.
func e2eJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// e2eWritten is the answer of transaction/process.
type e2eWritten struct {
	Status         string `json:"status"`
	EventID        string `json:"event_id"`
	IdempotencyKey string `json:"idempotency_key"`
	Channel        string `json:"channel"`
	TransactionID  int64  `json:"transaction_id"`
	Kind           string `json:"kind"`
	CustomerHash   string `json:"customer_hash"`
	Amount         int64  `json:"amount"`
	Balance        *int64 `json:"balance"`
	BalanceVersion *int64 `json:"balance_version"`
	Reason         string `json:"reason"`
	Hash           string `json:"hash"`
}

func e2eDecodeWrite(t testing.TB, res apitest.Response) e2eWritten {
	t.Helper()
	var w e2eWritten
	if err := json.Unmarshal(res.Body, &w); err != nil {
		t.Fatalf("body %s: %v", res.Body, err)
	}
	return w
}

// e2eWrite posts an explicit transaction and expects the status.
func e2eWrite(t testing.TB, srv *apitest.Server, token string, tr map[string]any, want int) e2eWritten {
	t.Helper()
	res := e2eDo(t, srv, "POST", "/v1/ledger/transaction/process", token, e2eJSON(t, tr))
	e2eStatus(t, res, want)
	return e2eDecodeWrite(t, res)
}

// e2eAccrue credits a customer through the API.
func e2eAccrue(t testing.TB, srv *apitest.Server, customer, key string, amount int64) e2eWritten {
	t.Helper()
	return e2eWrite(t, srv, srv.Token(tally.ScopeLedgerWrite), map[string]any{
		"idempotency_key": key, "customer_hash": customer, "kind": "accrual", "amount": amount, "reason": "test"}, http.StatusCreated)
}

// e2eBalance reads a customer's account from the store, by raw identifier.
func e2eBalance(t testing.TB, srv *apitest.Server, customer string) tally.Account {
	t.Helper()
	a, err := srv.Store.Account(context.Background(), srv.Hasher.Hash(customer))
	if err != nil {
		t.Fatalf("account of %q: %v", customer, err)
	}
	return a
}

func e2eCount(t testing.TB, srv *apitest.Server) int64 {
	t.Helper()
	n, err := srv.Store.Audit().CountTransactions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

const e2eProcessPath = "/v1/ledger/transaction/process"

func TestE2EProcessGuideWebhookReplays(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		body := e2eSample(t, "guide-webhook-event.json")
		token := srv.Token(tally.ScopeLedgerWrite)
		first := e2eDo(t, srv, "POST", e2eProcessPath, token, body)
		e2eStatus(t, first, http.StatusCreated)
		w := e2eDecodeWrite(t, first)
		if w.Status != "applied" || w.Kind != "accrual" || w.Amount != 10 || *w.Balance != 10 || *w.BalanceVersion != 1 {
			t.Fatalf("first delivery: %s", first.Body)
		}
		if w.EventID != "8b0f7a52-3c1e-4d8e-9a51-6f2d1c0b7e11" || w.Channel != "webchat" || w.IdempotencyKey != "" {
			t.Errorf("first delivery names the event wrongly: %s", first.Body)
		}
		if want := "th_" + srv.Hasher.Hash("c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21"); w.CustomerHash != want {
			t.Errorf("customer_hash %q, want %q", w.CustomerHash, want)
		}
		second := e2eDo(t, srv, "POST", e2eProcessPath, token, body)
		e2eStatus(t, second, http.StatusOK)
		if !bytes.Equal(first.Body, second.Body) {
			t.Errorf("replay differs:\n%s\n%s", first.Body, second.Body)
		}
		if a := e2eBalance(t, srv, "c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21"); a.Balance != 10 || a.BalanceVersion != 1 {
			t.Errorf("balance %d version %d after a replay, want 10 and 1", a.Balance, a.BalanceVersion)
		}
	})
}

func TestE2EProcessConcurrentDeliveries(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		body := []byte(`{"event_id":"concurrent-1","type":"WebChat","state":"closed","user_id":"cust-concurrent","channel":"webchat"}`)
		token := srv.Token(tally.ScopeLedgerWrite)
		const n = 20
		var wg sync.WaitGroup
		results := make([]apitest.Response, n)
		errs := make([]error, n)
		for i := range n {
			req := e2eRequest(t, srv, "POST", e2eProcessPath, token, bytes.NewReader(body))
			wg.Go(func() { results[i], errs[i] = e2eSend(http.DefaultClient, req) })
		}
		wg.Wait()
		created := 0
		for i, res := range results {
			if errs[i] != nil {
				t.Fatalf("delivery %d: %v", i, errs[i])
			}
			switch res.Status {
			case http.StatusCreated:
				created++
			case http.StatusOK:
			default:
				t.Fatalf("delivery %d: status %d: %s", i, res.Status, res.Body)
			}
			if !bytes.Equal(res.Body, results[0].Body) {
				t.Errorf("delivery %d answered differently:\n%s\n%s", i, res.Body, results[0].Body)
			}
		}
		if created != 1 {
			t.Errorf("%d deliveries answered 201, want exactly 1", created)
		}
		if a := e2eBalance(t, srv, "cust-concurrent"); a.Balance != 10 || a.BalanceVersion != 1 {
			t.Errorf("balance %d version %d, want 10 credited once", a.Balance, a.BalanceVersion)
		}
	})
}

func TestE2EProcessConcurrentRetriesOfOneKey(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		// 100 concurrent writes of one key, half asking for 10 points and half for 11. One is applied;
		// every copy of it answers 201 or 200 with the same body, every copy of the other request 409.
		token := srv.Token(tally.ScopeLedgerWrite)
		const n = 100
		bodies := [2][]byte{}
		for a := range bodies {
			bodies[a] = e2eJSON(t, map[string]any{"idempotency_key": "retried", "customer_hash": "cust-retries",
				"kind": "accrual", "amount": 10 + a, "reason": "retry"})
		}
		var wg sync.WaitGroup
		results := make([]apitest.Response, n)
		errs := make([]error, n)
		for i := range n {
			req := e2eRequest(t, srv, "POST", e2eProcessPath, token, bytes.NewReader(bodies[i%2]))
			wg.Go(func() { results[i], errs[i] = e2eSend(http.DefaultClient, req) })
		}
		wg.Wait()
		applied := -1
		for i, res := range results {
			if errs[i] != nil {
				t.Fatalf("request %d: %v", i, errs[i])
			}
			if res.Status == http.StatusCreated {
				if applied >= 0 {
					t.Fatalf("requests %d and %d both answered 201", applied, i)
				}
				applied = i
			}
		}
		if applied < 0 {
			t.Fatalf("no request answered 201; first answer %d %s", results[0].Status, results[0].Body)
		}
		for i, res := range results {
			if i%2 == applied%2 {
				if i != applied && (res.Status != http.StatusOK || !bytes.Equal(res.Body, results[applied].Body)) {
					t.Errorf("retry %d of the applied request: %d %s, want 200 %s", i, res.Status, res.Body, results[applied].Body)
				}
				continue
			}
			e2eProblem(t, res, http.StatusConflict, tally.EIDEMPOTENCY)
		}
		if a := e2eBalance(t, srv, "cust-retries"); a.Balance != int64(10+applied%2) || a.BalanceVersion != 1 {
			t.Errorf("balance %d version %d, want %d credited once", a.Balance, a.BalanceVersion, 10+applied%2)
		}
	})
}

func TestE2EProcessGenesysShapesCountOnce(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		token := srv.Token(tally.ScopeLedgerWrite)
		workflow := e2eDo(t, srv, "POST", e2eProcessPath, token, e2eSample(t, "customer-end-event-body.json"))
		e2eStatus(t, workflow, http.StatusCreated)
		bridge := e2eDo(t, srv, "POST", e2eProcessPath, token, e2eSample(t, "eventbridge-customer-end.json"))
		e2eStatus(t, bridge, http.StatusOK)
		if !bytes.Equal(workflow.Body, bridge.Body) {
			t.Errorf("one event, two answers:\n%s\n%s", workflow.Body, bridge.Body)
		}
		w := e2eDecodeWrite(t, workflow)
		if w.Channel != "genesys" || !strings.HasPrefix(w.EventID, "customer.end/4f6c2b9e-") {
			t.Errorf("event named %q on channel %q", w.EventID, w.Channel)
		}
		if a := e2eBalance(t, srv, "c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21"); a.Balance != 10 || a.BalanceVersion != 1 {
			t.Errorf("balance %d version %d, want one credit of 10", a.Balance, a.BalanceVersion)
		}
	})
}

func TestE2EProcessEventsThatEarnNothing(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		token := srv.Token(tally.ScopeLedgerWrite)

		open := []byte(`{"event_id":"open-1","type":"WebChat","state":"open","user_id":"cust-open"}`)
		first := e2eDo(t, srv, "POST", e2eProcessPath, token, open)
		e2eStatus(t, first, http.StatusOK)
		if w := e2eDecodeWrite(t, first); w.Status != "ignored" || w.EventID != "open-1" || w.TransactionID != 0 {
			t.Errorf("non-matching event: %s", first.Body)
		}
		again := e2eDo(t, srv, "POST", e2eProcessPath, token, open)
		e2eStatus(t, again, http.StatusOK)
		if !bytes.Equal(first.Body, again.Body) {
			t.Errorf("replay of an ignored event differs:\n%s\n%s", first.Body, again.Body)
		}
		if _, err := srv.Store.Account(context.Background(), srv.Hasher.Hash("cust-open")); tally.ErrorCode(err) != tally.ENOTFOUND {
			t.Errorf("an ignored event made an account: %v", err)
		}

		for _, tc := range []struct{ name, body string }{
			{"matching event without customer", `{"event_id":"anon-1","type":"WebChat","state":"closed"}`},
			{"Genesys event without externalContactId", `{"conversationId":"c-1","participantId":"p-1","mediaType":"MESSAGE","messageType":"WEBMESSAGING"}`},
			{"unknown shape", `{"hello":"world"}`},
			{"array", `[1,2,3]`},
			{"null", `null`},
			{"event_id not a string", `{"event_id":7,"type":"WebChat","state":"closed","user_id":"u"}`},
			{"EventBridge detail not an object", `{"detail":"x"}`},
			{"customer th_ not hex", `{"event_id":"bad-hash","type":"WebChat","state":"closed","customer_hash":"th_xyz"}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, token, []byte(tc.body)), http.StatusUnprocessableEntity, tally.EINVALID)
			})
		}
		if n := e2eCount(t, srv); n != 0 {
			t.Errorf("%d transactions written by events that earn nothing", n)
		}
	})
}

func TestE2EProcessExplicitTransactions(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		write := srv.Token(tally.ScopeLedgerWrite)
		admin := srv.Token(tally.ScopeLedgerWrite, tally.ScopeAdmin)
		const cust = "cust-explicit"

		// An accrual, then its replay, then the key reused for another amount.
		accrual := map[string]any{"idempotency_key": "acc-1", "customer_hash": cust, "kind": "accrual", "amount": 100, "reason": "welcome"}
		first := e2eDo(t, srv, "POST", e2eProcessPath, write, e2eJSON(t, accrual))
		e2eStatus(t, first, http.StatusCreated)
		w := e2eDecodeWrite(t, first)
		if w.Status != "applied" || w.IdempotencyKey != "acc-1" || w.Channel != "api" || w.Amount != 100 || *w.Balance != 100 || w.Hash == "" {
			t.Fatalf("accrual: %s", first.Body)
		}
		replay := e2eDo(t, srv, "POST", e2eProcessPath, write, e2eJSON(t, accrual))
		e2eStatus(t, replay, http.StatusOK)
		if !bytes.Equal(first.Body, replay.Body) {
			t.Errorf("replay differs:\n%s\n%s", first.Body, replay.Body)
		}
		accrual["amount"] = 101
		e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, write, e2eJSON(t, accrual)), http.StatusConflict, tally.EIDEMPOTENCY)

		// A redemption beyond the balance is refused, and its retry is refused the same way even once the
		// balance would cover it.
		redeem := map[string]any{"idempotency_key": "red-1", "customer_hash": cust, "kind": "redemption", "amount": 150, "reason": "RWD-1"}
		refused := e2eDo(t, srv, "POST", e2eProcessPath, write, e2eJSON(t, redeem))
		e2eProblem(t, refused, http.StatusUnprocessableEntity, tally.EINSUFFICIENT)
		e2eAccrue(t, srv, cust, "acc-2", 100)
		retried := e2eDo(t, srv, "POST", e2eProcessPath, write, e2eJSON(t, redeem))
		p := e2eProblem(t, retried, http.StatusUnprocessableEntity, tally.EINSUFFICIENT)
		if p["detail"] != refused.JSON(t)["detail"] {
			t.Errorf("retry detail %q, first %q", p["detail"], refused.JSON(t)["detail"])
		}
		redeem["idempotency_key"] = "red-2"
		if w := e2eWrite(t, srv, write, redeem, http.StatusCreated); *w.Balance != 50 || w.Kind != "redemption" {
			t.Errorf("redemption with a new key: %+v", w)
		}

		// Invalid amounts and kinds write nothing.
		before := e2eCount(t, srv)
		for _, tc := range []struct {
			name string
			body string
		}{
			{"zero", `{"idempotency_key":"v-1","customer_hash":"c","kind":"accrual","amount":0,"reason":"r"}`},
			{"negative", `{"idempotency_key":"v-2","customer_hash":"c","kind":"accrual","amount":-5,"reason":"r"}`},
			{"2^60", `{"idempotency_key":"v-3","customer_hash":"c","kind":"accrual","amount":1152921504606846976,"reason":"r"}`},
			{"beyond int64", `{"idempotency_key":"v-4","customer_hash":"c","kind":"accrual","amount":9223372036854775808,"reason":"r"}`},
			{"fraction", `{"idempotency_key":"v-5","customer_hash":"c","kind":"accrual","amount":10.5,"reason":"r"}`},
			{"string", `{"idempotency_key":"v-6","customer_hash":"c","kind":"accrual","amount":"10","reason":"r"}`},
			{"exponent", `{"idempotency_key":"v-7","customer_hash":"c","kind":"accrual","amount":1e3,"reason":"r"}`},
			{"unknown kind", `{"idempotency_key":"v-8","customer_hash":"c","kind":"gift","amount":10,"reason":"r"}`},
			{"no kind", `{"idempotency_key":"v-9","customer_hash":"c","amount":10,"reason":"r"}`},
			{"no customer", `{"idempotency_key":"v-10","kind":"accrual","amount":10,"reason":"r"}`},
			{"empty key", `{"idempotency_key":"","customer_hash":"c","kind":"accrual","amount":10,"reason":"r"}`},
			{"metadata not an object", `{"idempotency_key":"v-11","customer_hash":"c","kind":"accrual","amount":10,"metadata":[1]}`},
			{"reversal naming a customer", `{"idempotency_key":"v-12","customer_hash":"c","kind":"reversal","reverses_transaction_id":1,"reason":"r"}`},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, admin, []byte(tc.body)), http.StatusUnprocessableEntity, tally.EINVALID)
			})
		}
		if n := e2eCount(t, srv); n != before {
			t.Errorf("invalid requests wrote %d transactions", n-before)
		}
	})
}

func TestE2EProcessAdminKinds(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		write := srv.Token(tally.ScopeLedgerWrite)
		admin := srv.Token(tally.ScopeLedgerWrite, tally.ScopeAdmin)
		const cust = "cust-admin"
		acc := e2eAccrue(t, srv, cust, "acc-1", 40)
		e2eAccrue(t, srv, cust, "acc-2", 20)

		// Adjustments need the admin scope.
		adjust := map[string]any{"idempotency_key": "adj-1", "customer_hash": cust, "kind": "adjustment", "amount": -15, "reason": "goodwill correction"}
		res := e2eDo(t, srv, "POST", e2eProcessPath, write, e2eJSON(t, adjust))
		e2eProblem(t, res, http.StatusForbidden, tally.EFORBIDDEN)
		if h := res.Header.Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_scope"`) || !strings.Contains(h, `scope="admin"`) {
			t.Errorf("WWW-Authenticate %q", h)
		}
		adj := e2eWrite(t, srv, admin, adjust, http.StatusCreated)
		if adj.Kind != "adjustment" || adj.Amount != -15 || *adj.Balance != 45 {
			t.Errorf("adjustment: %+v", adj)
		}
		tx := e2eDo(t, srv, "GET", fmt.Sprintf("/v1/ledger/transactions/%d", adj.TransactionID), srv.Token(tally.ScopeLedgerRead), nil)
		e2eStatus(t, tx, http.StatusOK)
		if actor, _ := tx.JSON(t)["actor"].(string); !strings.HasPrefix(actor, "client:tly_") {
			t.Errorf("adjustment actor %q, want the client", actor)
		}

		// A reversal takes its customer and amount from the reversed transaction, once.
		reverse := map[string]any{"idempotency_key": "rev-1", "kind": "reversal", "reverses_transaction_id": acc.TransactionID, "reason": "duplicate"}
		e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, write, e2eJSON(t, reverse)), http.StatusForbidden, tally.EFORBIDDEN)
		rev := e2eDo(t, srv, "POST", e2eProcessPath, admin, e2eJSON(t, reverse))
		e2eStatus(t, rev, http.StatusCreated)
		if w := e2eDecodeWrite(t, rev); w.Kind != "reversal" || w.Amount != 40 || *w.Balance != 5 || w.CustomerHash != acc.CustomerHash {
			t.Errorf("reversal: %s", rev.Body)
		}
		again := e2eDo(t, srv, "POST", e2eProcessPath, admin, e2eJSON(t, reverse))
		e2eStatus(t, again, http.StatusOK)
		if !bytes.Equal(rev.Body, again.Body) {
			t.Errorf("reversal replay differs")
		}
		reverse["idempotency_key"] = "rev-2"
		e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, admin, e2eJSON(t, reverse)), http.StatusConflict, tally.EALREADY)
		reverse["idempotency_key"], reverse["reverses_transaction_id"] = "rev-3", 999999
		e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, admin, e2eJSON(t, reverse)), http.StatusNotFound, tally.ENOTFOUND)
	})
}

func TestE2EProcessBalanceVersion(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		write := srv.Token(tally.ScopeLedgerWrite)
		const cust = "cust-version"
		w := e2eAccrue(t, srv, cust, "acc-1", 30)
		redeem := map[string]any{"idempotency_key": "red-1", "customer_hash": cust, "kind": "redemption", "amount": 10, "reason": "r", "balance_version": 0}
		e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, write, e2eJSON(t, redeem)), http.StatusConflict, tally.EVERSION)
		// A version conflict is not remembered: the caller re-reads and retries with the same key.
		redeem["balance_version"] = *w.BalanceVersion
		if got := e2eWrite(t, srv, write, redeem, http.StatusCreated); *got.Balance != 20 || *got.BalanceVersion != 2 {
			t.Errorf("retry with a fresh version: %+v", got)
		}
	})
}

func TestE2EProcessFrozenAccount(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		write := srv.Token(tally.ScopeLedgerWrite)
		adminOnly := srv.Token(tally.ScopeAdmin)
		admin := srv.Token(tally.ScopeLedgerWrite, tally.ScopeAdmin)
		const cust = "cust-frozen"
		w := e2eAccrue(t, srv, cust, "acc-1", 50)
		status := "/v1/ledger/accounts/" + w.CustomerHash + "/status"

		e2eProblem(t, e2eDo(t, srv, "POST", status, write, []byte(`{"status":"frozen"}`)), http.StatusForbidden, tally.EFORBIDDEN)
		res := e2eDo(t, srv, "POST", status, adminOnly, []byte(`{"status":"frozen"}`))
		e2eStatus(t, res, http.StatusOK)
		if m := res.JSON(t); m["status"] != "frozen" || m["balance"] != float64(50) || m["customer_hash"] != w.CustomerHash {
			t.Errorf("status answer %s", res.Body)
		}
		redeem := map[string]any{"idempotency_key": "red-1", "customer_hash": cust, "kind": "redemption", "amount": 10, "reason": "r"}
		e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, write, e2eJSON(t, redeem)), http.StatusForbidden, tally.EFROZEN)
		e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, write, e2eJSON(t, map[string]any{
			"idempotency_key": "acc-2", "customer_hash": cust, "kind": "accrual", "amount": 5, "reason": "r"})), http.StatusForbidden, tally.EFROZEN)
		// An administrator may still adjust a frozen account.
		e2eWrite(t, srv, admin, map[string]any{"idempotency_key": "adj-1", "customer_hash": cust, "kind": "adjustment", "amount": 5, "reason": "fix"}, http.StatusCreated)

		e2eStatus(t, e2eDo(t, srv, "POST", status, adminOnly, []byte(`{"status":"active"}`)), http.StatusOK)
		// The refusal is remembered under its key; a new key goes through.
		e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, write, e2eJSON(t, redeem)), http.StatusForbidden, tally.EFROZEN)
		redeem["idempotency_key"] = "red-2"
		if got := e2eWrite(t, srv, write, redeem, http.StatusCreated); *got.Balance != 45 {
			t.Errorf("redemption after unfreezing: %+v", got)
		}

		for _, tc := range []struct {
			name, path, body string
			status           int
			code             tally.Code
		}{
			{"unknown status", status, `{"status":"asleep"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"unknown account", "/v1/ledger/accounts/nobody/status", `{"status":"frozen"}`, http.StatusNotFound, tally.ENOTFOUND},
			{"bad hash", "/v1/ledger/accounts/th_zz/status", `{"status":"frozen"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"malformed body", status, `{"status":`, http.StatusBadRequest, "malformed_request"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e2eProblem(t, e2eDo(t, srv, "POST", tc.path, adminOnly, []byte(tc.body)), tc.status, tc.code)
			})
		}
	})
}

// recordingConn keeps what a client wrote on the wire.
type recordingConn struct {
	net.Conn
	mu  *sync.Mutex
	out *bytes.Buffer
}

func (c recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	c.out.Write(p)
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func TestE2EProcessBodies(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		write := srv.Token(tally.ScopeLedgerWrite)

		for _, tc := range []struct {
			name string
			body []byte
		}{
			{"malformed JSON", []byte(`{"idempotency_key":`)},
			{"trailing garbage", []byte(`{"idempotency_key":"k"} x`)},
			{"two values", []byte(`{} {}`)},
			{"empty", []byte{}},
			{"blank", []byte(" \n\t ")},
			{"nested 60 deep", []byte(`{"idempotency_key":"deep","metadata":` + strings.Repeat("[", 59) + strings.Repeat("]", 59) + `}`)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, write, tc.body), http.StatusBadRequest, "malformed_request")
			})
		}
		t.Run("no body", func(t *testing.T) {
			e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, write, nil), http.StatusBadRequest, "malformed_request")
		})
		t.Run("nested 50 deep", func(t *testing.T) {
			// metadata must be an object: a 50-deep body is read, then refused by the ledger's rules.
			body := `{"idempotency_key":"deep","customer_hash":"c","kind":"accrual","amount":1,"metadata":` + strings.Repeat("[", 49) + strings.Repeat("]", 49) + `}`
			e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, write, []byte(body)), http.StatusUnprocessableEntity, tally.EINVALID)
		})
		t.Run("X-Request-Id is kept", func(t *testing.T) {
			res := e2eDo(t, srv, "POST", e2eProcessPath, write, []byte(`{`), "X-Request-Id", "genesys-corr-42")
			if p := e2eProblem(t, res, http.StatusBadRequest, "malformed_request"); p["request_id"] != "genesys-corr-42" {
				t.Errorf("request_id %v", p["request_id"])
			}
		})

		// A body of exactly the limit is read; one byte more is refused and writes nothing.
		const limit = 64 << 10
		padded := func(key string, size int) []byte {
			b := fmt.Appendf(nil, `{"idempotency_key":%q,"customer_hash":"cust-big","kind":"accrual","amount":1,"reason":"big"}`, key)
			return append(b, bytes.Repeat([]byte(" "), size-len(b))...)
		}
		t.Run("body at the limit", func(t *testing.T) {
			e2eStatus(t, e2eDo(t, srv, "POST", e2eProcessPath, write, padded("at-limit", limit)), http.StatusCreated)
		})
		t.Run("body over the limit", func(t *testing.T) {
			before := e2eCount(t, srv)
			e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, write, padded("over-limit", limit+1)), http.StatusRequestEntityTooLarge, tally.ETOOLARGE)
			big := append([]byte(`{"idempotency_key":"way-over","customer_hash":"c","kind":"accrual","amount":1,"reason":"`), bytes.Repeat([]byte("x"), 1<<20)...)
			e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, write, append(big, `"}`...)), http.StatusRequestEntityTooLarge, tally.ETOOLARGE)
			if n := e2eCount(t, srv); n != before {
				t.Errorf("an oversized body wrote %d transactions", n-before)
			}
			if _, err := srv.Store.Outcome(context.Background(), "api", "over-limit"); tally.ErrorCode(err) != tally.ENOTFOUND {
				t.Errorf("an oversized body left an outcome: %v", err)
			}
		})

		// A body of unknown length is sent chunked, as Genesys may send it.
		t.Run("chunked", func(t *testing.T) {
			var mu sync.Mutex
			var wire bytes.Buffer
			client := &http.Client{Transport: &http.Transport{
				DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
					c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return recordingConn{Conn: c, mu: &mu, out: &wire}, nil
				},
			}}
			defer client.CloseIdleConnections()
			send := func(body []byte) apitest.Response {
				pr, pw := io.Pipe()
				go func() {
					// Two writes, so that the body goes in more than one chunk.
					half := len(body) / 2
					pw.Write(body[:half])
					pw.Write(body[half:])
					pw.Close()
				}()
				req := e2eRequest(t, srv, "POST", e2eProcessPath, write, pr)
				if req.ContentLength != 0 && req.ContentLength != -1 {
					t.Fatalf("ContentLength %d: the body's length is known", req.ContentLength)
				}
				res, err := e2eSend(client, req)
				if err != nil {
					t.Fatal(err)
				}
				return res
			}
			res := send(e2eJSON(t, map[string]any{"idempotency_key": "chunked-1", "customer_hash": "cust-chunked", "kind": "accrual", "amount": 7, "reason": "r"}))
			e2eStatus(t, res, http.StatusCreated)
			mu.Lock()
			sent := wire.String()
			mu.Unlock()
			head, _, _ := strings.Cut(sent, "\r\n\r\n")
			r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(sent)))
			if err != nil {
				t.Fatalf("reading back the request sent: %v", err)
			}
			if r.ContentLength != -1 || len(r.TransferEncoding) != 1 || r.TransferEncoding[0] != "chunked" {
				t.Fatalf("request was not chunked: ContentLength %d, Transfer-Encoding %v\n%s", r.ContentLength, r.TransferEncoding, head)
			}
			if a := e2eBalance(t, srv, "cust-chunked"); a.Balance != 7 {
				t.Errorf("balance %d after a chunked accrual, want 7", a.Balance)
			}
			over := send(padded("chunked-over", limit+1))
			e2eProblem(t, over, http.StatusRequestEntityTooLarge, tally.ETOOLARGE)
			if _, err := srv.Store.Outcome(context.Background(), "api", "chunked-over"); tally.ErrorCode(err) != tally.ENOTFOUND {
				t.Errorf("an oversized chunked body left an outcome: %v", err)
			}
		})
	})
}

func TestE2EProcessEventsAndTransactionsDoNotShareKeys(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		token := srv.Token(tally.ScopeLedgerWrite)
		// An explicit transaction on the "api" channel, then an event on a channel named "api" with the
		// same id: they are two different writes, and both apply.
		e2eAccrue(t, srv, "shared-key-customer", "k-1", 7)
		ev := e2eDo(t, srv, "POST", e2eProcessPath, token,
			[]byte(`{"event_id":"k-1","type":"WebChat","state":"closed","user_id":"shared-key-customer","channel":"api"}`))
		e2eStatus(t, ev, http.StatusCreated)
		if w := e2eDecodeWrite(t, ev); w.Channel != "api" || w.EventID != "k-1" {
			t.Errorf("event answer names channel %q, event %q", w.Channel, w.EventID)
		}
		if a := e2eBalance(t, srv, "shared-key-customer"); a.Balance != 17 {
			t.Errorf("balance %d, want 7 + 10", a.Balance)
		}
		e2eVerify(t, srv)
	})
}

func TestE2EProcessExplicitTransactionsCannotTakeEventKeys(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		token := srv.Token(tally.ScopeLedgerWrite, tally.ScopeAdmin)
		const customer = "c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21" // the samples' customer
		genesysKey := "customer.end/4f6c2b9e-1a7d-4c3b-8e2f-9d0a5b6c7e8f/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
		guideKey := "8b0f7a52-3c1e-4d8e-9a51-6f2d1c0b7e11"
		// Channels as JSON string literals, so that escapes reach the server as sent.
		for _, ch := range []string{`"event:genesys"`, `"EVENT:genesys"`, `" event:genesys"`, `"event:genesys "`,
			`"event\u003agenesys"`, `"event%3Agenesys"`, `"event\uff1agenesys"`, `"\u0435vent:genesys"`,
			`"event:webchat"`, `"Event:WebChat"`} {
			for _, key := range []string{genesysKey, guideKey} {
				for _, kind := range []string{`"kind":"accrual","amount":500`, `"kind":"adjustment","amount":500,"reason":"x","actor":"y"`} {
					body := `{"idempotency_key":"` + key + `","channel":` + ch + `,"customer_hash":"` + customer + `",` + kind + `}`
					e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, token, []byte(body)), http.StatusUnprocessableEntity, tally.EINVALID)
				}
			}
		}
		if n := e2eCount(t, srv); n != 0 {
			t.Fatalf("%d transactions written by refused requests", n)
		}
		// The real events are then credited, each once.
		e2eStatus(t, e2eDo(t, srv, "POST", e2eProcessPath, token, e2eSample(t, "customer-end-event-body.json")), http.StatusCreated)
		e2eStatus(t, e2eDo(t, srv, "POST", e2eProcessPath, token, e2eSample(t, "guide-webhook-event.json")), http.StatusCreated)
		e2eStatus(t, e2eDo(t, srv, "POST", e2eProcessPath, token, e2eSample(t, "eventbridge-customer-end.json")), http.StatusOK)
		if a := e2eBalance(t, srv, customer); a.Balance != 20 || a.BalanceVersion != 2 {
			t.Errorf("balance %d version %d, want the two events' 10 points each", a.Balance, a.BalanceVersion)
		}
		// An explicit transaction on the plain channel "genesys" with the event's key is another write.
		w := e2eWrite(t, srv, token, map[string]any{"idempotency_key": genesysKey, "channel": "genesys",
			"customer_hash": customer, "kind": "accrual", "amount": 1}, http.StatusCreated)
		if w.Channel != "genesys" || w.Amount != 1 {
			t.Errorf("explicit write answered %+v", w)
		}
	})
}

func TestE2EProcessUnknownFieldsRefused(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		token := srv.Token(tally.ScopeLedgerWrite)
		// A misspelt balance_version must not silently drop the version check.
		res := e2eDo(t, srv, "POST", e2eProcessPath, token, []byte(`{"idempotency_key":"typo","customer_hash":"c","kind":"accrual","amount":5,"balance_verison":3}`))
		p := e2eProblem(t, res, http.StatusUnprocessableEntity, tally.EINVALID)
		if !strings.Contains(fmt.Sprint(p["detail"]), "balance_verison") {
			t.Errorf("detail %v does not name the field", p["detail"])
		}
		if n := e2eCount(t, srv); n != 0 {
			t.Errorf("%d transactions after a refused write", n)
		}
	})
}

// TestE2EProcessWebhookEventsCannotTakeGenesysKeys: a webhook event (the guide's shape) naming the
// channel Genesys Cloud's own bodies use, in any spelling, is refused, so it can never take a
// conversation's key; and one webhook event in several spellings of its channel is credited once.
func TestE2EProcessWebhookEventsCannotTakeGenesysKeys(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		token := srv.Token(tally.ScopeLedgerWrite)
		const victim = "c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21" // the samples' customer
		genesysKey := "customer.end/4f6c2b9e-1a7d-4c3b-8e2f-9d0a5b6c7e8f/0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
		for _, ch := range []string{`"genesys"`, `"GENESYS"`, `" Genesys "`, `"genesys\t"`} {
			for _, typ := range []string{"WebChat", "Other"} { // one that earns, one that would be remembered as ignored
				body := `{"event_id":"` + genesysKey + `","type":"` + typ + `","state":"closed","user_id":"attacker","channel":` + ch + `}`
				e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, token, []byte(body)), http.StatusUnprocessableEntity, tally.EINVALID)
			}
		}
		e2eStatus(t, e2eDo(t, srv, "POST", e2eProcessPath, token, e2eSample(t, "customer-end-event-body.json")), http.StatusCreated)
		e2eStatus(t, e2eDo(t, srv, "POST", e2eProcessPath, token, e2eSample(t, "eventbridge-customer-end.json")), http.StatusOK)
		if a := e2eBalance(t, srv, victim); a.Balance != 10 {
			t.Fatalf("the real Genesys event credited %d, want 10", a.Balance)
		}
		for i, ch := range []string{"webchat", "WebChat", "WEBCHAT", " webchat "} {
			body := `{"event_id":"ev-spelled","type":"WebChat","state":"closed","user_id":"speller","channel":"` + ch + `"}`
			want := http.StatusOK
			if i == 0 {
				want = http.StatusCreated
			}
			e2eStatus(t, e2eDo(t, srv, "POST", e2eProcessPath, token, []byte(body)), want)
		}
		if a := e2eBalance(t, srv, "speller"); a.Balance != 10 {
			t.Fatalf("one event in four spellings of its channel credited %d, want 10", a.Balance)
		}
	})
}
