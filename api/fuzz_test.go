package api_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/api/apitest"
)

// The fuzz targets of the API send fuzzed bodies through the whole server (routing, admission,
// authentication, decoding, the ledger, a real SQLite store) in process, without sockets. Every answer
// must be one the API defines: never a 5xx (bad input is the caller's fault, and SQLite does not go
// away), a JSON body, and for a refusal a problem+json whose status and code agree with the status line.

// fuzzServer is a server on a fresh SQLite store, with a token of every scope and a session of a
// customer who holds points, for the seeds of a fuzz target.
type fuzzServer struct {
	srv     *apitest.Server
	token   string
	session string
}

func newFuzzServer(f *testing.F) *fuzzServer {
	f.Helper()
	srv := apitest.Start(f, apitest.SQLite, apitest.Config{})
	fs := &fuzzServer{srv: srv, token: srv.Token(apitest.AllScopes...)}
	if res := srv.Post("/v1/ledger/transaction/process", []byte(`{"idempotency_key":"seed-1","channel":"api","customer_hash":"c-fuzz","kind":"accrual","amount":100000,"reason":"seed"}`)); res.Status != 201 {
		f.Fatalf("seed accrual: %d %s", res.Status, res.Body)
	}
	if res := srv.Do("PUT", "/v1/catalog/rewards/RWD-1", fs.token, []byte(`{"name":"Gift","point_cost":100,"fulfillment_method":"email","active":true}`)); res.Status >= 300 {
		f.Fatalf("seed reward: %d %s", res.Status, res.Body)
	}
	res := srv.Post("/v1/ledger/balance/lookup", []byte(`{"customer_hash":"c-fuzz","channel":"webchat","request_id":"r"}`))
	fs.session, _ = res.JSON(f)["session_token"].(string)
	if fs.session == "" {
		f.Fatalf("no session from the lookup: %s", res.Body)
	}
	return fs
}

// serve sends one request in process and checks its answer.
func (fs *fuzzServer) serve(t *testing.T, method, path, token string, body []byte) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	fs.srv.HTTP.Config.Handler.ServeHTTP(rec, req)
	checkAnswer(t, method+" "+path, body, rec)
	return rec
}

// checkAnswer asserts what every answer of the API is.
func checkAnswer(t *testing.T, what string, body []byte, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("%s with body %q: %d %s", what, body, rec.Code, rec.Body)
	}
	if rec.Code == http.StatusNoContent || rec.Code == http.StatusNotModified {
		return
	}
	var v map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("%s with body %q: %d, the answer is not a JSON object: %q", what, body, rec.Code, rec.Body)
	}
	if !utf8.Valid(rec.Body.Bytes()) {
		t.Fatalf("%s with body %q: the answer is not UTF-8", what, body)
	}
	if rec.Code >= 400 {
		if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
			t.Fatalf("%s with body %q: %d with Content-Type %q", what, body, rec.Code, ct)
		}
		if v["status"] != float64(rec.Code) || v["code"] == nil || v["code"] == string(tally.EINTERNAL) {
			t.Fatalf("%s with body %q: problem %s does not agree with status %d", what, body, rec.Body, rec.Code)
		}
		if rec.Code == http.StatusTooManyRequests || rec.Code == http.StatusServiceUnavailable {
			if rec.Header().Get("Retry-After") == "" {
				t.Fatalf("%s: %d without Retry-After", what, rec.Code)
			}
		}
	}
}

// FuzzProcessRequest fuzzes POST /v1/ledger/transaction/process: explicit transactions of every kind,
// redemptions and the three event shapes share this decoder.
func FuzzProcessRequest(f *testing.F) {
	fs := newFuzzServer(f)
	for _, s := range []string{
		`{"idempotency_key":"k1","channel":"api","customer_hash":"c-1","kind":"accrual","amount":10,"reason":"r"}`,
		`{"idempotency_key":"k2","channel":"api","customer_hash":"c-fuzz","kind":"redemption","amount":10,"reason":"r"}`,
		`{"idempotency_key":"k3","channel":"api","customer_hash":"c-fuzz","kind":"redemption","reward_id":"RWD-1","reason":"r"}`,
		`{"idempotency_key":"k4","channel":"api","customer_hash":"c-1","kind":"adjustment","amount":-5,"reason":"r","actor":"ops","balance_version":1}`,
		`{"idempotency_key":"k5","channel":"api","kind":"reversal","reverses_transaction_id":1,"reason":"r","metadata":{"a":[1,2]}}`,
		`{"event_id":"e1","interaction_id":"i","type":"WebChat","state":"closed","user_id":"c-1","channel":"webchat","timestamp":"2026-11-20T14:03:22.481Z"}`,
		`{"conversationId":"c0a1","participants":[{"purpose":"customer","externalContactId":"c-2"}],"mediaType":"MESSAGE","messageType":"webmessaging","disconnectType":"client"}`,
		`{"detail-type":"v2.detail.events.conversation.{id}.customer.end","detail":{"topicName":"v2.detail.events.conversation.x.customer.end","eventBody":{"conversationId":"x","externalContactId":"c-3","mediaType":"VOICE"}}}`,
		`{"idempotency_key":"k6","amount":1e400}`, `{"idempotency_key":"k7","reason":"\u0000"}`, `[]`, `null`, ``,
		`{"idempotency_key":"k8","customer_hash":"c","customer_hash":"d"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fs.serve(t, "POST", "/v1/ledger/transaction/process", fs.token, body)
	})
}

// FuzzLookupRequest fuzzes POST /v1/ledger/balance/lookup.
func FuzzLookupRequest(f *testing.F) {
	fs := newFuzzServer(f)
	for _, s := range []string{
		`{"customer_hash":"c-fuzz","channel":"webchat","request_id":"r"}`,
		`{"customer_hash":"","channel":"webchat"}`, `{"customer_hash":"x","customer_hash":"y"}`,
		`{"customer_hash":"\ud800"}`, `{"customer_hash":1}`, `{}`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := fs.serve(t, "POST", "/v1/ledger/balance/lookup", fs.token, body)
		if rec.Code == 200 {
			var v struct{ Balance *int64 }
			if json.Unmarshal(rec.Body.Bytes(), &v) != nil || v.Balance == nil || *v.Balance < 0 {
				t.Fatalf("a lookup answered 200 without a balance: %s", rec.Body)
			}
		}
	})
}

// FuzzPortalRedeemRequest fuzzes POST /v1/portal/redeem with a real session. A redemption may succeed
// (the customer has points): it must then be for the session's customer.
func FuzzPortalRedeemRequest(f *testing.F) {
	fs := newFuzzServer(f)
	for _, s := range []string{
		`{"customer_hash":"c-fuzz","reward_id":"RWD-1","point_cost":100,"fulfillment_method":"email","idempotency_key":"r1"}`,
		`{"reward_id":"RWD-1","idempotency_key":"r2"}`,
		`{"customer_hash":"c-other","reward_id":"RWD-1","point_cost":100,"idempotency_key":"r3"}`,
		`{"reward_id":"RWD-1","point_cost":-1,"idempotency_key":"r4"}`, `{"reward_id":"RWD-9"}`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := fs.serve(t, "POST", "/v1/portal/redeem", fs.session, body)
		if rec.Code < 300 {
			var v struct {
				CustomerHash string `json:"customer_hash"`
			}
			if json.Unmarshal(body, &v) == nil && v.CustomerHash != "" && v.CustomerHash != "c-fuzz" {
				t.Fatalf("a redemption for customer %q on c-fuzz's session answered %d", v.CustomerHash, rec.Code)
			}
		}
	})
}

// FuzzPortalSessionRequest fuzzes the session endpoints' bodies and the session token they read.
func FuzzPortalSessionRequest(f *testing.F) {
	fs := newFuzzServer(f)
	f.Add(false, "", []byte(`{}`))
	f.Add(true, "", []byte(`{"customer_hash":"c-fuzz"}`))
	f.Add(true, "", []byte(`{"customer_hash":"c-other"}`))
	f.Add(false, "x", []byte(``))
	f.Add(true, ".", []byte(`{"customer_hash":1}`))
	f.Fuzz(func(t *testing.T, verify bool, tokenSuffix string, body []byte) {
		path := "/v1/portal/session/refresh"
		if verify {
			path = "/v1/portal/session/verify"
		}
		token := fs.session + tokenSuffix
		if strings.ContainsAny(token, "\r\n\x00") || !isHeaderSafe(token) {
			return // not a header value a client can send
		}
		rec := fs.serve(t, "POST", path, token, body)
		if tokenSuffix != "" && rec.Code < 300 {
			t.Fatalf("a session token with %q appended was accepted: %d %s", tokenSuffix, rec.Code, rec.Body)
		}
	})
}

// FuzzCatalogAdminRequest fuzzes the catalog administration bodies (create, replace, patch, inventory,
// coupons).
func FuzzCatalogAdminRequest(f *testing.F) {
	fs := newFuzzServer(f)
	f.Add(uint8(0), "RWD-2", []byte(`{"reward_id":"RWD-2","name":"Mug","point_cost":50,"fulfillment_method":"coupon","active":true,"inventory":null}`))
	f.Add(uint8(1), "RWD-3", []byte(`{"name":"Cap","point_cost":50,"fulfillment_method":"webhook","webhook_url":"https://h.example/x","min_tier":"gold"}`))
	f.Add(uint8(2), "RWD-1", []byte(`{"point_cost":75,"inventory":5,"active":false}`))
	f.Add(uint8(3), "RWD-1", []byte(`{"add":3}`))
	f.Add(uint8(3), "RWD-1", []byte(`{"set":-1,"unlimited":true}`))
	f.Add(uint8(4), "RWD-1", []byte(`{"codes":["A-1","A-2"]}`))
	f.Add(uint8(2), "RWD-1", []byte(`{"name":null,"image_url":"javascript:alert(1)"}`))
	f.Fuzz(func(t *testing.T, op uint8, id string, body []byte) {
		if !isPathSegment(id) {
			return
		}
		base := "/v1/catalog/rewards/" + id
		routes := [...]struct{ method, path string }{
			{"POST", "/v1/catalog/rewards"}, {"PUT", base}, {"PATCH", base}, {"POST", base + "/inventory"}, {"POST", base + "/coupons"},
		}
		r := routes[int(op)%len(routes)]
		fs.serve(t, r.method, r.path, fs.token, body)
	})
}

// isPathSegment reports whether s can be one path segment of a request target as a client sends it.
func isPathSegment(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 200 {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("/?#%\\", c) >= 0 {
			return false
		}
	}
	return true
}

// isHeaderSafe reports whether s is a header value net/http sends as is.
func isHeaderSafe(s string) bool {
	for _, c := range []byte(s) {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// FuzzRulesAdminRequest fuzzes the earning rules' administration bodies (create, replace, test against
// an event, tier review).
func FuzzRulesAdminRequest(f *testing.F) {
	fs := newFuzzServer(f)
	f.Add(uint8(0), "call", []byte(`{"name":"call","filter":"$.type = 'Voice'","points":"handle_time_seconds / 60","priority":5}`))
	f.Add(uint8(0), "survey", []byte(`{"name":"survey","filter":"exists($.survey_score)","points":4,"stackable":true,"caps":{"day":10}}`))
	f.Add(uint8(1), "call", []byte(`{"filter":"$.type = 'Voice'","points":100,"expected_version":1}`))
	f.Add(uint8(1), "x", []byte(`{"filter":"(((","points":"1/0"}`))
	f.Add(uint8(2), "", []byte(`{"customer_hash":"c-fuzz","event":{"event_id":"e","type":"Voice","handle_time_seconds":600}}`))
	f.Add(uint8(3), "", []byte(`{"period_end":"2026-12-31T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, op uint8, name string, body []byte) {
		if !isPathSegment(name) {
			name = "fuzzed"
		}
		routes := [...]struct{ method, path string }{
			{"POST", "/v1/admin/rules"}, {"PUT", "/v1/admin/rules/" + name}, {"POST", "/v1/admin/rules/test"}, {"POST", "/v1/admin/tiers/review"},
		}
		r := routes[int(op)%len(routes)]
		fs.serve(t, r.method, r.path, fs.token, body)
	})
}

// FuzzForwardingHeaders fuzzes X-Forwarded-For and Forwarded as a trusted proxy sends them (httptest's
// peer, 192.0.2.1, is trusted), on the routes that read the client address: the token endpoint (its
// lockout) and the portal session routes (their rate), with each header mode. Whatever the headers,
// the answer is one the API defines (a wrong secret is 401, then 429 once locked out; a session route's
// answer is checkAnswer's): a malformed header is the peer's request, never a 5xx.
func FuzzForwardingHeaders(f *testing.F) {
	trusted := []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")}
	servers := map[bool]*apitest.Server{}
	for _, forwarded := range []bool{false, true} {
		opts := api.Options{TrustedProxies: trusted, PortalRate: 1e6}
		if forwarded {
			opts.ForwardedHeader = api.HeaderForwarded
		}
		servers[forwarded] = apitest.Start(f, apitest.SQLite, apitest.Config{Options: opts})
	}
	f.Add(false, false, "203.0.113.7", "")
	f.Add(false, true, "192.0.2.99, 203.0.113.7, 192.0.2.2", "for=203.0.113.7")
	f.Add(true, false, "[2001:db8::1]:80", `for="[2001:db8::1]:4711";proto=https, for=192.0.2.3`)
	f.Add(true, true, "garbage,,", `for="unterminated, for=_hidden;by=unknown`)
	f.Add(true, false, "::ffff:192.0.2.1%eth0", "FOR=1.2.3.4;for=5.6.7.8")
	f.Fuzz(func(t *testing.T, forwarded, token bool, xffValue, forwardedValue string) {
		if !isHeaderSafe(xffValue) || !isHeaderSafe(forwardedValue) {
			return // not a header value a client can send
		}
		path, body := "/v1/portal/session/verify", `{"customer_hash":"c-fuzz"}`
		if token {
			path, body = "/oauth/token", "grant_type=client_credentials&client_id=tly_fuzz&client_secret=x"
		}
		req := httptest.NewRequest("POST", path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("X-Forwarded-For", xffValue)
		req.Header.Set("Forwarded", forwardedValue)
		rec := httptest.NewRecorder()
		servers[forwarded].HTTP.Config.Handler.ServeHTTP(rec, req)
		what := path + " with X-Forwarded-For " + strconv.Quote(xffValue) + " and Forwarded " + strconv.Quote(forwardedValue)
		if token && rec.Code != http.StatusTooManyRequests {
			// The token endpoint answers OAuth's own JSON errors (RFC 6749), not problems; its lockouts are
			// problems. A wrong secret is 401, whoever the headers say sent it.
			if rec.Code != http.StatusUnauthorized {
				t.Fatalf("%s: %d %s, want 401 or 429", what, rec.Code, rec.Body)
			}
			return
		}
		checkAnswer(t, what, []byte(body), rec)
	})
}
