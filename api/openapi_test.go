package api_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/breaker"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/spool"
)

// The OpenAPI tests hold api/openapi.json to the server: every route of server.go is described, and every
// answer the server gives to real requests (over HTTP, on a real store) matches the document, status,
// headers and body, with no member the document does not name. Requests the server refuses as malformed
// or invalid must not conform to the document either, so that the document is not looser than the server.

// oaContract is the loaded document and a router over it.
type oaContract struct {
	doc    *openapi3.T
	router routers.Router

	mu        sync.Mutex
	exercised map[string]bool // "METHOD /path STATUS"
}

// oaMustLoad loads api/openapi.json and validates it as an OpenAPI 3.1 document.
func oaMustLoad(tb testing.TB) *oaContract {
	tb.Helper()
	raw, err := os.ReadFile("openapi.json")
	if err != nil {
		tb.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(raw)
	if err != nil {
		tb.Fatalf("openapi.json does not load: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() {
		tb.Fatalf("openapi.json is OpenAPI %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableExamplesValidation()); err != nil {
		tb.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		tb.Fatal(err)
	}
	return &oaContract{doc: doc, router: router, exercised: map[string]bool{}}
}

// oaExchange is one real request and the status it must get. Conforms says whether the request itself
// matches the document: requests the server refuses as malformed or invalid must not.
type oaExchange struct {
	name     string
	method   string
	path     string
	token    string   // bearer token, if any
	body     []byte   // sent as application/json unless header says otherwise
	header   []string // name, value pairs
	status   int
	conforms bool
}

// do sends ex to the server and checks the request and the answer against the document.
func (c *oaContract) do(t *testing.T, s *apitest.Server, ex oaExchange) apitest.Response {
	t.Helper()
	res := s.Do(ex.method, ex.path, ex.token, ex.body, ex.header...)
	if res.Status != ex.status {
		t.Errorf("%s: %s %s answered %d, want %d: %.500s", ex.name, ex.method, ex.path, res.Status, ex.status, res.Body)
	}
	c.check(t, s, ex, res)
	return res
}

// check validates a request and the answer it got against the document, and notes the status as seen.
func (c *oaContract) check(t *testing.T, s *apitest.Server, ex oaExchange, res apitest.Response) {
	t.Helper()
	reqErr, resErr := c.validate(s, ex, res)
	switch {
	case errors.Is(reqErr, oaErrNoRoute):
		t.Errorf("%s: %v", ex.name, reqErr)
		return
	case ex.conforms && reqErr != nil:
		t.Errorf("%s: the request does not match the document: %v", ex.name, reqErr)
	case !ex.conforms && reqErr == nil:
		t.Errorf("%s: the server refuses this request (%d) but the document accepts it", ex.name, res.Status)
	}
	if resErr != nil {
		t.Errorf("%s: %s %s answered %d, which does not match the document: %v\nbody: %.500s",
			ex.name, ex.method, ex.path, res.Status, resErr, res.Body)
	}
}

var oaErrNoRoute = errors.New("no operation of the document takes this request")

// validate validates the request of ex, then the answer res, against the document.
func (c *oaContract) validate(s *apitest.Server, ex oaExchange, res apitest.Response) (reqErr, resErr error) {
	ctx := context.Background()
	req, err := http.NewRequest(ex.method, s.URL+ex.path, bytes.NewReader(ex.body))
	if err != nil {
		return err, err
	}
	if ex.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if ex.token != "" {
		req.Header.Set("Authorization", "Bearer "+ex.token)
	}
	for i := 0; i+1 < len(ex.header); i += 2 {
		req.Header.Set(ex.header[i], ex.header[i+1])
	}
	route, params, err := c.router.FindRoute(req)
	if err != nil {
		err = fmt.Errorf("%w: %s %s: %v", oaErrNoRoute, ex.method, ex.path, err)
		return err, err
	}
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{
			// Authentication is tested elsewhere: here only the shape of requests and answers counts.
			AuthenticationFunc:  openapi3filter.NoopAuthenticationFunc,
			SkipSettingDefaults: true,
		},
	}
	reqErr = openapi3filter.ValidateRequest(ctx, in)
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 res.Status,
		Header:                 res.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true},
	}
	out.SetBodyBytes(res.Body)
	resErr = openapi3filter.ValidateResponse(ctx, out)
	if resErr == nil {
		c.mu.Lock()
		c.exercised[fmt.Sprintf("%s %s %d", route.Method, route.Path, res.Status)] = true
		c.mu.Unlock()
	}
	return reqErr, resErr
}

// TestOpenAPIDocument checks that the document is valid OpenAPI 3.1 and is what GET /openapi.json serves.
func TestOpenAPIDocument(t *testing.T) {
	c := oaMustLoad(t)
	s := apitest.Start(t, apitest.SQLite, apitest.Config{})
	res := s.Do("GET", "/openapi.json", "", nil)
	onDisk, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(res.Body, onDisk) {
		t.Error("GET /openapi.json does not serve api/openapi.json")
	}
	c.check(t, s, oaExchange{name: "openapi", method: "GET", path: "/openapi.json", conforms: true}, res)

	schemes := c.doc.Components.SecuritySchemes
	oauth := schemes["oauth2"]
	if oauth == nil || oauth.Value.Flows == nil || oauth.Value.Flows.ClientCredentials == nil {
		t.Fatal("no oauth2 client credentials scheme")
	}
	flow := oauth.Value.Flows.ClientCredentials
	if flow.TokenURL != "/oauth/token" {
		t.Errorf("tokenUrl %q, want /oauth/token", flow.TokenURL)
	}
	for _, scope := range tally.Scopes {
		if _, ok := flow.Scopes[scope]; !ok {
			t.Errorf("scope %q is not described", scope)
		}
	}
	if len(flow.Scopes) != len(tally.Scopes) {
		t.Errorf("the document describes scopes %v, the server knows %v", flow.Scopes, tally.Scopes)
	}
	if b := schemes["portalSession"]; b == nil || b.Value.Type != "http" || b.Value.Scheme != "bearer" {
		t.Error("no bearer scheme for portal session tokens")
	}
}

// oaRoutePattern matches the patterns registered in the route table: mux.Handle("GET /path", ...).
var oaRoutePattern = regexp.MustCompile(`mux\.Handle(?:Func)?\("([^"]*)"`)

// TestOpenAPIRoutes checks that the route table of server.go and the document describe the same
// operations, so that a new route cannot be added without its description.
func TestOpenAPIRoutes(t *testing.T) {
	c := oaMustLoad(t)
	src, err := os.ReadFile("server.go")
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	for _, m := range oaRoutePattern.FindAllSubmatch(src, -1) {
		routes = append(routes, string(m[1]))
	}
	if len(routes) < 10 {
		t.Fatalf("found only %d routes in server.go: has the route table moved? %v", len(routes), routes)
	}
	documented := map[string]bool{} // "METHOD /path"
	for path, item := range c.doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	covered := map[string]bool{}
	for _, r := range routes {
		method, path, ok := strings.Cut(r, " ")
		if !ok {
			t.Errorf("route %q names no method: an operation of the document needs one (and a catch-all would turn every 405 into its own answer)", r)
			continue
		}
		exact := strings.HasSuffix(path, "{$}") // "/{$}" is the path "/" alone, not a subtree
		path = strings.TrimSuffix(path, "{$}")
		op := method + " " + path
		if !documented[op] {
			t.Errorf("route %q is not described in openapi.json", r)
		}
		covered[op] = true
		if strings.HasSuffix(path, "/") && !exact { // a subtree: its files are described under path{asset}
			for d := range documented {
				if strings.HasPrefix(d, op) {
					covered[d] = true
				}
			}
		}
	}
	for op := range documented {
		if !covered[op] {
			t.Errorf("openapi.json describes %q, which no route of server.go serves", op)
		}
	}
}

// oaPathParam matches the parameters of a document path.
var oaPathParam = regexp.MustCompile(`\{[^}]+\}`)

// TestOpenAPIMethods checks that the server and the document agree on the methods of every path: the
// server answers the methods the document does not give a path with a 405 problem whose Allow header
// names the documented ones, and a path the document does not have with a 404 problem.
func TestOpenAPIMethods(t *testing.T) {
	c := oaMustLoad(t)
	s := apitest.Start(t, apitest.SQLite, apitest.Config{})
	token := s.Token(apitest.AllScopes...)
	problem := c.doc.Components.Schemas["Problem"].Value
	wantProblem := func(t *testing.T, res apitest.Response, status int, code tally.Code) {
		t.Helper()
		if res.Status != status {
			t.Fatalf("status %d, want %d: %s", res.Status, status, res.Body)
		}
		if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
			t.Errorf("Content-Type %q", ct)
		}
		var v any
		if err := json.Unmarshal(res.Body, &v); err != nil {
			t.Fatal(err)
		}
		if err := problem.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("the body is not a Problem: %v\n%s", err, res.Body)
		}
		if got := v.(map[string]any)["code"]; got != string(code) {
			t.Errorf("code %v, want %s", got, code)
		}
	}
	for path, item := range c.doc.Paths.Map() {
		concrete := oaPathParam.ReplaceAllString(path, "p1")
		var allow []string
		for method := range item.Operations() {
			allow = append(allow, method)
			if method == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
		slices.Sort(allow)
		for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete} {
			if item.GetOperation(method) != nil {
				continue
			}
			t.Run(method+" "+path, func(t *testing.T) {
				req, _ := http.NewRequest(method, s.URL+concrete, nil)
				if _, _, err := c.router.FindRoute(req); !errors.Is(err, routers.ErrMethodNotAllowed) {
					t.Errorf("the document router says %v, want method not allowed", err)
				}
				res := s.Do(method, concrete, token, nil)
				wantProblem(t, res, http.StatusMethodNotAllowed, "method_not_allowed")
				got := strings.Split(res.Header.Get("Allow"), ", ")
				slices.Sort(got)
				if !slices.Equal(got, allow) {
					t.Errorf("Allow %v, the document has %v", got, allow)
				}
			})
		}
	}
	for _, path := range []string{"/nope", "/v1/ledger/accounts", "/v1/ledger/accounts/p1", "/v1/catalog/rewards/p1/extra"} {
		t.Run("GET "+path, func(t *testing.T) {
			req, _ := http.NewRequest("GET", s.URL+path, nil)
			if _, _, err := c.router.FindRoute(req); !errors.Is(err, routers.ErrPathNotFound) {
				t.Errorf("the document router says %v, want path not found", err)
			}
			wantProblem(t, s.Do("GET", path, token, nil), http.StatusNotFound, tally.ENOTFOUND)
		})
	}
}

// TestOpenAPIConformance sends real requests for every endpoint and checks each request and answer.
func TestOpenAPIConformance(t *testing.T) {
	c := oaMustLoad(t)
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			s := apitest.Start(t, b, apitest.Config{})
			oaConformance(t, c, s)
			t.Run("lifecycle", func(t *testing.T) { oaLifecycle(t, c, s) })
		})
	}
	t.Run("faults", func(t *testing.T) { oaFaults(t, c) })

	if t.Failed() || strings.Contains(oaRunFilter(), "/") {
		return
	}
	// Every status the document lists must be one the server was seen to answer: the document may not
	// promise answers the server cannot give.
	for path, item := range c.doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status := range op.Responses.Map() {
				if key := method + " " + path + " " + status; !c.exercised[key] {
					t.Errorf("%s is documented but no test saw the server answer it", key)
				}
			}
		}
	}
}

func oaRunFilter() string {
	if f := flag.Lookup("test.run"); f != nil {
		return f.Value.String()
	}
	return ""
}

func oaConformance(t *testing.T, c *oaContract, s *apitest.Server) {
	all := s.Token(apitest.AllScopes...)
	read := s.Token(tally.ScopeLedgerRead)
	write := s.Token(tally.ScopeLedgerWrite)
	admin := s.Token(tally.ScopeAdmin)
	ok := func(name, method, path, token string, body []byte, status int, header ...string) oaExchange {
		return oaExchange{name: name, method: method, path: path, token: token, body: body, header: header, status: status, conforms: true}
	}
	bad := func(ex oaExchange) oaExchange { ex.conforms = false; return ex }
	big := []byte(`{"customer_hash":"` + strings.Repeat("x", 70<<10) + `"}`)

	t.Run("token", func(t *testing.T) {
		id, secret := s.Client(tally.ScopeLedgerRead, tally.ScopeLedgerWrite)
		basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
		wrong := "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":nope"))
		form := func(v url.Values) []byte { return []byte(v.Encode()) }
		formType := "application/x-www-form-urlencoded"
		grant := url.Values{"grant_type": {"client_credentials"}}
		for _, ex := range []oaExchange{
			ok("basic", "POST", "/oauth/token", "", form(grant), 200, "Content-Type", formType, "Authorization", basic),
			ok("form credentials", "POST", "/oauth/token", "", form(url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}, "scope": {"ledger:read"}}), 200, "Content-Type", formType),
			ok("wrong secret", "POST", "/oauth/token", "", form(grant), 401, "Content-Type", formType, "Authorization", wrong),
			ok("no client", "POST", "/oauth/token", "", form(grant), 401, "Content-Type", formType),
			ok("scope not granted", "POST", "/oauth/token", "", form(url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}), 400, "Content-Type", formType, "Authorization", basic),
			bad(ok("password grant", "POST", "/oauth/token", "", form(url.Values{"grant_type": {"password"}}), 400, "Content-Type", formType, "Authorization", basic)),
			bad(ok("JSON body", "POST", "/oauth/token", "", []byte(`{"grant_type":"client_credentials"}`), 400, "Authorization", basic)),
			bad(ok("no grant type", "POST", "/oauth/token", "", form(url.Values{"scope": {"ledger:read"}}), 400, "Content-Type", formType, "Authorization", basic)),
		} {
			c.do(t, s, ex)
		}
	})

	t.Run("jwks", func(t *testing.T) {
		res := c.do(t, s, ok("jwks", "GET", "/.well-known/jwks.json", "", nil, 200))
		if keys := res.JSON(t)["keys"].([]any); len(keys) == 0 {
			t.Error("the JWKS has no key")
		}
	})

	alice := "c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21"
	var aliceHash string
	t.Run("lookup", func(t *testing.T) {
		const path = "/v1/ledger/balance/lookup"
		lookup := []byte(`{"customer_hash":"` + alice + `","channel":"webchat","request_id":"r-1"}`)
		res := c.do(t, s, ok("unknown customer", "POST", path, read, lookup, 200, "X-Request-Id", "genesys:corr-1"))
		aliceHash = res.JSON(t)["customer_hash"].(string)
		if got := res.Header.Get("X-Request-Id"); got != "genesys:corr-1" {
			t.Errorf("X-Request-Id %q, want the caller's", got)
		}
		c.do(t, s, ok("by hash", "POST", path, read, []byte(`{"customer_hash":"`+aliceHash+`"}`), 200))
		for _, ex := range []oaExchange{
			ok("no token", "POST", path, "", lookup, 401),
			ok("invalid token", "POST", path, "not.a.token", lookup, 401),
			ok("wrong scope", "POST", path, admin, lookup, 403),
			ok("malformed Authorization", "POST", path, "", lookup, 400, "Authorization", "Bearer a b"),
			bad(ok("malformed JSON", "POST", path, read, []byte(`{"customer_hash":`), 400)),
			bad(ok("empty body", "POST", path, read, []byte(` `), 400)),
			bad(ok("too deep", "POST", path, read, []byte(strings.Repeat("[", 60)+strings.Repeat("]", 60)), 400)),
			bad(ok("wrong type", "POST", path, read, []byte(`{"customer_hash":5}`), 422)),
			bad(ok("not an object", "POST", path, read, []byte(`[]`), 422)),
			bad(ok("no customer", "POST", path, read, []byte(`{"channel":"webchat"}`), 422)),
			bad(ok("bad hash", "POST", path, read, []byte(`{"customer_hash":"th_XYZ"}`), 422)),
			bad(ok("too large", "POST", path, read, big, 413)),
		} {
			c.do(t, s, ex)
		}
	})

	var accrualTx, reversalTx string // transaction ids
	txID := func(res apitest.Response) string {
		id, _ := res.JSON(t)["transaction_id"].(float64)
		return strconv.FormatInt(int64(id), 10)
	}
	t.Run("process", func(t *testing.T) {
		const path = "/v1/ledger/transaction/process"
		guide := []byte(`{"event_id":"8b0f7a52-3c1e-4d8e-9a51-6f2d1c0b7e11","interaction_id":"4f6c2b9e","type":"WebChat","state":"closed","user_id":"` + alice + `","channel":"webchat","timestamp":"2026-11-20T14:03:22.481Z"}`)
		res := c.do(t, s, ok("guide event", "POST", path, write, guide, 201))
		accrualTx = txID(res)
		c.do(t, s, ok("guide event again", "POST", path, write, guide, 200))
		c.do(t, s, ok("guide event that earns nothing", "POST", path, write, []byte(`{"event_id":"e-voice","type":"Voice","state":"closed","user_id":"`+alice+`"}`), 200))
		c.do(t, s, ok("customer.end body", "POST", path, write, []byte(`{"eventTime":1763647402481,"conversationId":"4f6c2b9e-1a7d","participantId":"0b1c2d3e","sessionId":"91a2b3c4","disconnectType":"client","mediaType":"MESSAGE","messageType":"WEBMESSAGING","direction":"inbound","provider":"PureCloud Messaging","externalContactId":"`+alice+`","externalOrganizationId":null,"interactingDurationMs":412877,"divisionId":"5e6f7a8b","addressFrom":"web-visitor","addressTo":"Loyalty_Redemptions"}`), 201))
		c.do(t, s, ok("EventBridge envelope", "POST", path, write, []byte(`{"version":"0","id":"2d3f4a5b","detail-type":"v2.detail.events.conversation.{id}.customer.end","source":"aws.partner/genesys.com/cloud/6a7b8c9d/loyalty","account":"123456789012","time":"2026-11-20T14:03:22Z","region":"us-east-1","resources":[],"detail":{"topicName":"v2.detail.events.conversation.9e8d.customer.end","version":"2","eventBody":{"eventTime":1763647402481,"conversationId":"9e8d","participantId":"7c6b","mediaType":"CHAT","externalContactId":"`+alice+`"},"metadata":{"CorrelationId":"f1e2"},"timestamp":"2026-11-20T14:03:22.481Z"}}`), 201))

		redeem := []byte(`{"idempotency_key":"redeem-1","customer_hash":"` + aliceHash + `","kind":"redemption","amount":5,"reason":"mug","metadata":{"reward_id":"RWD-8842"}}`)
		redemptionTx := txID(c.do(t, s, ok("redemption", "POST", path, write, redeem, 201)))
		c.do(t, s, ok("redemption again", "POST", path, write, redeem, 200))
		c.do(t, s, ok("adjustment", "POST", path, all, []byte(`{"idempotency_key":"adj-1","channel":"backoffice","customer_hash":"`+alice+`","kind":"adjustment","amount":-1,"reason":"goodwill","actor":"ops@example.com","balance_version":null}`), 201))
		reversalTx = txID(c.do(t, s, ok("reversal", "POST", path, all, []byte(`{"idempotency_key":"rev-1","kind":"reversal","reverses_transaction_id":`+redemptionTx+`,"reason":"refund"}`), 201)))
		for _, ex := range []oaExchange{
			ok("no token", "POST", path, "", guide, 401),
			ok("wrong scope", "POST", path, read, guide, 403),
			ok("adjustment without admin", "POST", path, write, []byte(`{"idempotency_key":"adj-2","customer_hash":"`+alice+`","kind":"adjustment","amount":1,"reason":"x","actor":"y"}`), 403),
			ok("key reused", "POST", path, write, []byte(`{"idempotency_key":"redeem-1","customer_hash":"`+alice+`","kind":"redemption","amount":6}`), 409),
			ok("stale version", "POST", path, write, []byte(`{"idempotency_key":"redeem-2","customer_hash":"`+alice+`","kind":"redemption","amount":1,"balance_version":9999}`), 409),
			ok("reversed twice", "POST", path, all, []byte(`{"idempotency_key":"rev-2","kind":"reversal","reverses_transaction_id":`+redemptionTx+`,"reason":"again"}`), 409),
			ok("reversal of nothing", "POST", path, all, []byte(`{"idempotency_key":"rev-3","kind":"reversal","reverses_transaction_id":999999,"reason":"x"}`), 404),
			ok("insufficient points", "POST", path, write, []byte(`{"idempotency_key":"redeem-3","customer_hash":"`+alice+`","kind":"redemption","amount":1000000}`), 422),
			ok("earning event without customer", "POST", path, write, []byte(`{"event_id":"e-anon","type":"WebChat","state":"closed"}`), 422),
			bad(ok("malformed JSON", "POST", path, write, []byte(`{"event_id":`), 400)),
			bad(ok("unknown event shape", "POST", path, write, []byte(`{"hello":"world"}`), 422)),
			bad(ok("unknown kind", "POST", path, write, []byte(`{"idempotency_key":"k-x","customer_hash":"`+alice+`","kind":"gift","amount":1}`), 422)),
			bad(ok("zero amount", "POST", path, write, []byte(`{"idempotency_key":"k-y","customer_hash":"`+alice+`","kind":"accrual","amount":0}`), 422)),
			bad(ok("reversal naming a customer", "POST", path, all, []byte(`{"idempotency_key":"k-z","kind":"reversal","reverses_transaction_id":1,"reason":"x","customer_hash":"`+alice+`"}`), 422)),
			bad(ok("amount of the wrong type", "POST", path, write, []byte(`{"idempotency_key":"k-w","customer_hash":"`+alice+`","kind":"accrual","amount":"5"}`), 422)),
			bad(ok("explicit channel in the events' namespace", "POST", path, write, []byte(`{"idempotency_key":"8b0f7a52-3c1e-4d8e-9a51-6f2d1c0b7e11","channel":"event:webchat","customer_hash":"`+alice+`","kind":"accrual","amount":500}`), 422)),
			bad(ok("event channel too long", "POST", path, write, []byte(`{"event_id":"e-long","channel":"`+strings.Repeat("c", 49)+`","user_id":"`+alice+`"}`), 422)),
			bad(ok("empty event id", "POST", path, write, []byte(`{"event_id":" ","user_id":"`+alice+`"}`), 422)),
			bad(ok("too large", "POST", path, write, big, 413)),
		} {
			c.do(t, s, ex)
		}
	})

	t.Run("history", func(t *testing.T) {
		base := "/v1/ledger/accounts/" + url.PathEscape(alice) + "/history"
		res := c.do(t, s, ok("first page", "GET", base+"?limit=2", read, nil, 200))
		next, _ := res.JSON(t)["next_cursor"].(string)
		if next == "" {
			t.Fatal("no next_cursor on a partial page")
		}
		c.do(t, s, ok("next page", "GET", base+"?limit=2&cursor="+next, read, nil, 200))
		c.do(t, s, ok("by hash", "GET", "/v1/ledger/accounts/"+aliceHash+"/history", read, nil, 200))
		c.do(t, s, ok("unknown customer", "GET", "/v1/ledger/accounts/nobody/history", read, nil, 200))
		for _, ex := range []oaExchange{
			ok("no token", "GET", base, "", nil, 401),
			ok("wrong scope", "GET", base, write, nil, 403),
			ok("malformed Authorization", "GET", base, "", nil, 400, "Authorization", "Bearer ="),
			ok("malformed cursor", "GET", base+"?cursor=zz", read, nil, 422), // base64url, but not a cursor
			bad(ok("limit not a number", "GET", base+"?limit=ten", read, nil, 422)),
			bad(ok("limit too large", "GET", base+"?limit=501", read, nil, 422)),
			bad(ok("bad hash", "GET", "/v1/ledger/accounts/th_0/history", read, nil, 422)),
		} {
			c.do(t, s, ex)
		}
	})

	t.Run("lots", func(t *testing.T) { oaLots(t, c, s, ok, bad, big) })

	t.Run("transaction", func(t *testing.T) {
		c.do(t, s, ok("accrual", "GET", "/v1/ledger/transactions/"+accrualTx, read, nil, 200))
		c.do(t, s, ok("reversal", "GET", "/v1/ledger/transactions/"+reversalTx, read, nil, 200))
		for _, ex := range []oaExchange{
			ok("no token", "GET", "/v1/ledger/transactions/1", "", nil, 401),
			ok("wrong scope", "GET", "/v1/ledger/transactions/1", admin, nil, 403),
			ok("malformed Authorization", "GET", "/v1/ledger/transactions/1", "", nil, 400, "Authorization", "Bearer a,b"),
			ok("not found", "GET", "/v1/ledger/transactions/999999", read, nil, 404),
			bad(ok("not a number", "GET", "/v1/ledger/transactions/abc", read, nil, 422)),
			bad(ok("zero", "GET", "/v1/ledger/transactions/0", read, nil, 422)),
		} {
			c.do(t, s, ex)
		}
	})

	t.Run("status", func(t *testing.T) {
		path := "/v1/ledger/accounts/" + aliceHash + "/status"
		c.do(t, s, ok("freeze", "POST", path, admin, []byte(`{"status":"frozen"}`), 200))
		c.do(t, s, ok("write to a frozen account", "POST", "/v1/ledger/transaction/process", write, []byte(`{"idempotency_key":"frozen-1","customer_hash":"`+alice+`","kind":"accrual","amount":1}`), 403))
		c.do(t, s, ok("reactivate", "POST", path, admin, []byte(`{"status":"active"}`), 200))
		for _, ex := range []oaExchange{
			ok("no token", "POST", path, "", []byte(`{"status":"closed"}`), 401),
			ok("wrong scope", "POST", path, write, []byte(`{"status":"closed"}`), 403),
			ok("unknown customer", "POST", "/v1/ledger/accounts/nobody/status", admin, []byte(`{"status":"closed"}`), 404),
			bad(ok("malformed JSON", "POST", path, admin, []byte(`{`), 400)),
			bad(ok("unknown status", "POST", path, admin, []byte(`{"status":"asleep"}`), 422)),
			bad(ok("too large", "POST", path, admin, big, 413)),
		} {
			c.do(t, s, ex)
		}
	})

	t.Run("rewards", func(t *testing.T) {
		c.do(t, s, ok("empty catalog", "GET", "/v1/catalog/rewards", read, nil, 200))
		c.do(t, s, ok("put", "PUT", "/v1/catalog/rewards/RWD-8842", admin, []byte(`{"name":"Coffee mug","point_cost":2500,"inventory":10,"min_tier":"silver","fulfillment_method":"email"}`), 200))
		c.do(t, s, ok("put unlimited webhook reward", "PUT", "/v1/catalog/rewards/RWD-1", admin, []byte(`{"reward_id":"RWD-1","name":"Voucher","point_cost":100,"inventory":null,"fulfillment_method":"webhook","webhook_url":"https://example.com/fulfil","active":false}`), 200))
		c.do(t, s, ok("catalog", "GET", "/v1/catalog/rewards", read, nil, 200))
		c.do(t, s, ok("one reward", "GET", "/v1/catalog/rewards/RWD-8842", read, nil, 200))
		c.do(t, s, ok("no such reward", "GET", "/v1/catalog/rewards/RWD-404", read, nil, 404))
		c.do(t, s, ok("reward id not text", "GET", "/v1/catalog/rewards/RWD%00", read, nil, 422))
		c.do(t, s, ok("one reward without token", "GET", "/v1/catalog/rewards/RWD-8842", "", nil, 401))
		c.do(t, s, ok("one reward without scope", "GET", "/v1/catalog/rewards/RWD-8842", admin, nil, 403))
		c.do(t, s, ok("one reward, malformed Authorization", "GET", "/v1/catalog/rewards/RWD-8842", "", nil, 400, "Authorization", "Bearer a b"))
		for _, ex := range []oaExchange{
			ok("no token", "GET", "/v1/catalog/rewards", "", nil, 401),
			ok("wrong scope", "GET", "/v1/catalog/rewards", admin, nil, 403),
			ok("malformed Authorization", "GET", "/v1/catalog/rewards", "", nil, 400, "Authorization", "Bearer a b"),
			ok("put without token", "PUT", "/v1/catalog/rewards/RWD-2", "", []byte(`{"name":"x","point_cost":1,"fulfillment_method":"email"}`), 401),
			ok("put without admin", "PUT", "/v1/catalog/rewards/RWD-2", write, []byte(`{"name":"x","point_cost":1,"fulfillment_method":"email"}`), 403),
			bad(ok("put malformed", "PUT", "/v1/catalog/rewards/RWD-2", admin, []byte(`{"name":`), 400)),
			bad(ok("put without cost", "PUT", "/v1/catalog/rewards/RWD-2", admin, []byte(`{"name":"x","fulfillment_method":"email"}`), 422)),
			// The document cannot tie a body member to the path: it says so in words.
			ok("put other id", "PUT", "/v1/catalog/rewards/RWD-2", admin, []byte(`{"reward_id":"RWD-3","name":"x","point_cost":1,"fulfillment_method":"email"}`), 422),
			bad(ok("put webhook without URL", "PUT", "/v1/catalog/rewards/RWD-2", admin, []byte(`{"name":"x","point_cost":1,"fulfillment_method":"webhook"}`), 422)),
			ok("put name with NUL", "PUT", "/v1/catalog/rewards/RWD-2", admin, []byte(`{"name":"x\u0000","point_cost":1,"fulfillment_method":"email"}`), 422),
			ok("put repeated member", "PUT", "/v1/catalog/rewards/RWD-2", admin, []byte(`{"name":"x","point_cost":1,"point_cost":2,"fulfillment_method":"email"}`), 422),
			bad(ok("put too large", "PUT", "/v1/catalog/rewards/RWD-2", admin, big, 413)),
		} {
			c.do(t, s, ex)
		}
	})

	t.Run("catalog administration", func(t *testing.T) {
		c.do(t, s, ok("create", "POST", "/v1/catalog/rewards", admin, []byte(`{"reward_id":"GIFT-10","name":"Gift card","point_cost":1000,"inventory":5,"fulfillment_method":"coupon"}`), 201))
		reward := "/v1/catalog/rewards/GIFT-10"
		c.do(t, s, ok("patch", "PATCH", reward, admin, []byte(`{"name":"Gift card 10","description":"Ten euros"}`), 200))
		c.do(t, s, ok("deactivate", "PATCH", reward, admin, []byte(`{"active":false}`), 200))
		c.do(t, s, ok("unlimited by patch", "PATCH", reward, admin, []byte(`{"inventory":null,"active":true}`), 200))
		c.do(t, s, ok("set stock", "POST", reward+"/inventory", admin, []byte(`{"set":10}`), 200))
		c.do(t, s, ok("add stock", "POST", reward+"/inventory", admin, []byte(`{"add":-3}`), 200))
		c.do(t, s, ok("coupons", "POST", reward+"/coupons", admin, []byte(`{"codes":["GC-1","GC-2","GC-1"]}`), 200))
		c.do(t, s, ok("coupons again", "POST", reward+"/coupons", admin, []byte(`{"codes":["GC-2","GC-3"]}`), 200))
		c.do(t, s, ok("lift the limit", "POST", reward+"/inventory", admin, []byte(`{"unlimited":true}`), 200))
		oaRedemption(t, s, "rcpt-oa-dead", tally.FulfillmentDead)
		oaRedemption(t, s, "rcpt-oa-pending", tally.FulfillmentPending)
		page := c.do(t, s, ok("redemptions", "GET", "/v1/catalog/redemptions?limit=1", admin, nil, 200)).JSON(t)
		next, _ := page["next_cursor"].(string)
		if next == "" {
			t.Fatalf("a full page has no next_cursor: %v", page)
		}
		c.do(t, s, ok("next page", "GET", "/v1/catalog/redemptions?limit=1&cursor="+next, admin, nil, 200))
		dead := c.do(t, s, ok("dead letters", "GET", "/v1/catalog/redemptions?status=dead&reward_id=GIFT-10", admin, nil, 200)).JSON(t)
		if rs, _ := dead["redemptions"].([]any); len(rs) != 1 {
			t.Fatalf("dead letters: %v", dead)
		}
		c.do(t, s, ok("retry", "POST", "/v1/catalog/redemptions/rcpt-oa-dead/retry", admin, nil, 200))
		c.do(t, s, ok("PUT manual", "PUT", "/v1/catalog/rewards/MANUAL-1", admin, []byte(`{"name":"Mug","point_cost":10,"fulfillment_method":"manual"}`), 200))
		for _, ex := range []oaExchange{
			ok("create again", "POST", "/v1/catalog/rewards", admin, []byte(`{"reward_id":"GIFT-10","name":"Other","point_cost":1,"fulfillment_method":"manual"}`), 409),
			ok("create without token", "POST", "/v1/catalog/rewards", "", []byte(`{"reward_id":"X","name":"x","point_cost":1,"fulfillment_method":"email"}`), 401),
			ok("create without admin", "POST", "/v1/catalog/rewards", write, []byte(`{"reward_id":"X","name":"x","point_cost":1,"fulfillment_method":"email"}`), 403),
			bad(ok("create malformed", "POST", "/v1/catalog/rewards", admin, []byte(`{"reward_id":`), 400)),
			bad(ok("create without id", "POST", "/v1/catalog/rewards", admin, []byte(`{"name":"x","point_cost":1,"fulfillment_method":"email"}`), 422)),
			bad(ok("create without cost", "POST", "/v1/catalog/rewards", admin, []byte(`{"reward_id":"X","name":"x","fulfillment_method":"email"}`), 422)),
			bad(ok("create too large", "POST", "/v1/catalog/rewards", admin, big, 413)),
			ok("patch without token", "PATCH", reward, "", []byte(`{"active":false}`), 401),
			ok("patch without admin", "PATCH", reward, write, []byte(`{"active":false}`), 403),
			ok("patch unknown reward", "PATCH", "/v1/catalog/rewards/NOPE", admin, []byte(`{"active":false}`), 404),
			ok("patch other id", "PATCH", reward, admin, []byte(`{"reward_id":"OTHER","active":true}`), 422),
			bad(ok("patch malformed", "PATCH", reward, admin, []byte(`{"active":`), 400)),
			bad(ok("patch null name", "PATCH", reward, admin, []byte(`{"name":null}`), 422)),
			bad(ok("patch zero cost", "PATCH", reward, admin, []byte(`{"point_cost":0}`), 422)),
			bad(ok("patch unknown member", "PATCH", reward, admin, []byte(`{"colour":"red"}`), 422)),
			bad(ok("patch of nothing", "PATCH", reward, admin, []byte(`{}`), 422)),
			bad(ok("patch cost of the wrong type", "PATCH", reward, admin, []byte(`{"point_cost":"5"}`), 422)),
			bad(ok("patch too large", "PATCH", reward, admin, big, 413)),
			ok("stock without token", "POST", reward+"/inventory", "", []byte(`{"set":1}`), 401),
			ok("stock without admin", "POST", reward+"/inventory", write, []byte(`{"set":1}`), 403),
			ok("stock of an unknown reward", "POST", "/v1/catalog/rewards/NOPE/inventory", admin, []byte(`{"set":1}`), 404),
			ok("add to unlimited stock", "POST", reward+"/inventory", admin, []byte(`{"add":1}`), 409),
			bad(ok("stock malformed", "POST", reward+"/inventory", admin, []byte(`{`), 400)),
			bad(ok("set and add", "POST", reward+"/inventory", admin, []byte(`{"set":1,"add":1}`), 422)),
			bad(ok("no change", "POST", reward+"/inventory", admin, []byte(`{}`), 422)),
			bad(ok("negative stock", "POST", reward+"/inventory", admin, []byte(`{"set":-1}`), 422)),
			bad(ok("unlimited false", "POST", reward+"/inventory", admin, []byte(`{"unlimited":false}`), 422)),
			bad(ok("stock too large", "POST", reward+"/inventory", admin, big, 413)),
			ok("coupons without token", "POST", reward+"/coupons", "", []byte(`{"codes":["X"]}`), 401),
			ok("coupons without admin", "POST", reward+"/coupons", write, []byte(`{"codes":["X"]}`), 403),
			ok("coupons of an unknown reward", "POST", "/v1/catalog/rewards/NOPE/coupons", admin, []byte(`{"codes":["X"]}`), 404),
			ok("coupons of a manual reward", "POST", "/v1/catalog/rewards/MANUAL-1/coupons", admin, []byte(`{"codes":["X"]}`), 409),
			bad(ok("coupons malformed", "POST", reward+"/coupons", admin, []byte(`{"codes":[`), 400)),
			bad(ok("no codes", "POST", reward+"/coupons", admin, []byte(`{"codes":[]}`), 422)),
			bad(ok("padded code", "POST", reward+"/coupons", admin, []byte(`{"codes":[" X"]}`), 422)),
			bad(ok("coupons too large", "POST", reward+"/coupons", admin, []byte(`{"codes":["`+strings.Repeat("x", 5<<20)+`"]}`), 413)),
			ok("redemptions without token", "GET", "/v1/catalog/redemptions", "", nil, 401),
			ok("redemptions without admin", "GET", "/v1/catalog/redemptions", read, nil, 403),
			ok("redemptions, malformed Authorization", "GET", "/v1/catalog/redemptions", "", nil, 400, "Authorization", "Bearer a b"),
			ok("malformed cursor", "GET", "/v1/catalog/redemptions?cursor=zz", admin, nil, 422),
			bad(ok("unknown status", "GET", "/v1/catalog/redemptions?status=lost", admin, nil, 422)),
			bad(ok("limit too large", "GET", "/v1/catalog/redemptions?limit=501", admin, nil, 422)),
			ok("retry without token", "POST", "/v1/catalog/redemptions/rcpt-oa-dead/retry", "", nil, 401),
			ok("retry without admin", "POST", "/v1/catalog/redemptions/rcpt-oa-dead/retry", write, nil, 403),
			ok("retry, malformed Authorization", "POST", "/v1/catalog/redemptions/rcpt-oa-dead/retry", "", nil, 400, "Authorization", "Bearer a b"),
			ok("retry of a pending redemption", "POST", "/v1/catalog/redemptions/rcpt-oa-dead/retry", admin, nil, 409),
			ok("retry of nothing", "POST", "/v1/catalog/redemptions/rcpt-none/retry", admin, nil, 404),
			ok("retry of a receipt id not text", "POST", "/v1/catalog/redemptions/rcpt%00/retry", admin, nil, 422),
		} {
			c.do(t, s, ex)
		}
	})

	t.Run("programme", func(t *testing.T) {
		const rules = "/v1/admin/rules"
		def := []byte(`{"name":"oa-voice","filter":"$.type = 'Voice'","points":"5 + handle_time_seconds / 60","caps":{"day":100},"priority":3,"stackable":true}`)
		c.do(t, s, ok("create rule", "POST", rules, admin, def, 201))
		c.do(t, s, ok("list rules", "GET", rules, admin, nil, 200))
		c.do(t, s, ok("edit rule", "PUT", rules+"/oa-voice", admin, []byte(`{"filter":"$.type = 'Voice'","points":7,"expected_version":1}`), 200))
		c.do(t, s, ok("rule history", "GET", rules+"/oa-voice", admin, nil, 200))
		c.do(t, s, ok("test an event", "POST", rules+"/test", admin, []byte(`{"event_id":"oa-t1","type":"Voice","handle_time_seconds":600,"user_id":"`+alice+`"}`), 200))
		c.do(t, s, ok("deactivate rule", "DELETE", rules+"/oa-voice", admin, nil, 200))
		c.do(t, s, ok("customer tier", "GET", "/v1/admin/customers/"+alice+"/tier", admin, nil, 200))
		c.do(t, s, ok("tier review", "POST", "/v1/admin/tiers/review", admin, nil, 200))
		c.do(t, s, ok("tier review of a given period", "POST", "/v1/admin/tiers/review", admin, []byte(`{"period_end":"2026-01-01T00:00:00Z"}`), 200))
		for _, ex := range []oaExchange{
			ok("rules without token", "GET", rules, "", nil, 401),
			ok("rules without admin", "GET", rules, write, nil, 403),
			ok("rules, malformed Authorization", "GET", rules, "", nil, 400, "Authorization", "Bearer a b"),
			ok("create without token", "POST", rules, "", def, 401),
			ok("create without admin", "POST", rules, write, def, 403),
			ok("create an existing rule", "POST", rules, admin, def, 409),
			bad(ok("create malformed", "POST", rules, admin, []byte(`{`), 400)),
			ok("create with a bad filter", "POST", rules, admin, []byte(`{"name":"x","filter":"$.a =","points":1}`), 422),
			ok("create with a float expression", "POST", rules, admin, []byte(`{"name":"x","filter":"$.a = 1","points":"1.5 * 2"}`), 422),
			ok("create named test", "POST", rules, admin, []byte(`{"name":"test","filter":"$.a = 1","points":1}`), 422),
			ok("test without token", "POST", rules+"/test", "", []byte(`{"event_id":"x"}`), 401),
			ok("test without admin", "POST", rules+"/test", write, []byte(`{"event_id":"x"}`), 403),
			bad(ok("test malformed", "POST", rules+"/test", admin, []byte(`{`), 400)),
			bad(ok("test of no event", "POST", rules+"/test", admin, []byte(`{"foo":1}`), 422)),
			ok("history without token", "GET", rules+"/oa-voice", "", nil, 401),
			ok("history without admin", "GET", rules+"/oa-voice", write, nil, 403),
			ok("history, malformed Authorization", "GET", rules+"/oa-voice", "", nil, 400, "Authorization", "Bearer a b"),
			ok("history of nothing", "GET", rules+"/nope", admin, nil, 404),
			ok("edit without token", "PUT", rules+"/oa-voice", "", def, 401),
			ok("edit without admin", "PUT", rules+"/oa-voice", write, def, 403),
			ok("edit of nothing", "PUT", rules+"/nope", admin, []byte(`{"filter":"$.a = 1","points":1}`), 404),
			ok("edit of a stale version", "PUT", rules+"/oa-voice", admin, []byte(`{"filter":"$.a = 1","points":1,"expected_version":1}`), 409),
			bad(ok("edit malformed", "PUT", rules+"/oa-voice", admin, []byte(`{`), 400)),
			bad(ok("edit without points", "PUT", rules+"/oa-voice", admin, []byte(`{"filter":"$.a = 1"}`), 422)),
			ok("deactivate without token", "DELETE", rules+"/oa-voice", "", nil, 401),
			ok("deactivate without admin", "DELETE", rules+"/oa-voice", write, nil, 403),
			ok("deactivate, malformed Authorization", "DELETE", rules+"/oa-voice", "", nil, 400, "Authorization", "Bearer a b"),
			ok("deactivate an inactive rule", "DELETE", rules+"/oa-voice", admin, nil, 409),
			ok("deactivate nothing", "DELETE", rules+"/nope", admin, nil, 404),
			ok("tier without token", "GET", "/v1/admin/customers/"+alice+"/tier", "", nil, 401),
			ok("tier without admin", "GET", "/v1/admin/customers/"+alice+"/tier", read, nil, 403),
			ok("tier, malformed Authorization", "GET", "/v1/admin/customers/"+alice+"/tier", "", nil, 400, "Authorization", "Bearer a b"),
			bad(ok("tier of a bad hash", "GET", "/v1/admin/customers/th_XYZ/tier", admin, nil, 422)),
			ok("review without token", "POST", "/v1/admin/tiers/review", "", nil, 401),
			ok("review without admin", "POST", "/v1/admin/tiers/review", write, nil, 403),
			bad(ok("review malformed", "POST", "/v1/admin/tiers/review", admin, []byte(`{`), 400)),
			ok("review of a period not ended", "POST", "/v1/admin/tiers/review", admin, []byte(`{"period_end":"2999-01-01T00:00:00Z"}`), 422),
		} {
			c.do(t, s, ex)
		}
	})

	t.Run("reports", func(t *testing.T) {
		const reports = "/v1/admin/reports/"
		for _, ex := range []oaExchange{
			ok("outstanding", "GET", reports+"outstanding", admin, nil, 200),
			ok("outstanding in money", "GET", reports+"outstanding?point_value=0.01&currency=EUR", admin, nil, 200),
			ok("rollforward", "GET", reports+"rollforward?period=quarter&point_value=0.01&currency=EUR", admin, nil, 200),
			ok("rollforward CSV", "GET", reports+"rollforward?format=csv", admin, nil, 200),
			ok("breakage", "GET", reports+"breakage?point_value=0.01&currency=EUR", admin, nil, 200),
			ok("breakage CSV by Accept", "GET", reports+"breakage", admin, nil, 200, "Accept", "text/csv"),
			ok("report without token", "GET", reports+"outstanding", "", nil, 401),
			ok("report without admin", "GET", reports+"outstanding", read, nil, 403),
			ok("report, malformed Authorization", "GET", reports+"outstanding", "", nil, 400, "Authorization", "Bearer a b"),
			bad(ok("unknown report", "GET", reports+"liability", admin, nil, 404)),
			bad(ok("unknown period", "GET", reports+"rollforward?period=week", admin, nil, 422)),
			bad(ok("unknown format", "GET", reports+"rollforward?format=xml", admin, nil, 422)),
			bad(ok("not a date", "GET", reports+"rollforward?from=1%2F2%2F2026", admin, nil, 422)),
		} {
			c.do(t, s, ex)
		}
	})

	t.Run("portal", func(t *testing.T) {
		lookup := c.do(t, s, ok("lookup", "POST", "/v1/ledger/balance/lookup", read, []byte(`{"customer_hash":"`+alice+`"}`), 200)).JSON(t)
		session := lookup["session_token"].(string)
		me := c.do(t, s, ok("me", "GET", "/v1/portal/me", session, nil, 200)).JSON(t)
		if me["balance"] != lookup["balance"] {
			t.Errorf("portal balance %v, lookup %v", me["balance"], lookup["balance"])
		}
		c.do(t, s, ok("me without token", "GET", "/v1/portal/me", "", nil, 401))
		c.do(t, s, ok("me with an access token", "GET", "/v1/portal/me", all, nil, 401))
		c.do(t, s, ok("me with a malformed header", "GET", "/v1/portal/me", "", nil, 400, "Authorization", "Bearer a b"))
		for _, ex := range []oaExchange{
			ok("refresh", "POST", "/v1/portal/session/refresh", session, nil, 200),
			ok("refresh without token", "POST", "/v1/portal/session/refresh", "", nil, 401),
			ok("refresh with an access token", "POST", "/v1/portal/session/refresh", all, nil, 401),
			ok("refresh with a malformed header", "POST", "/v1/portal/session/refresh", "", nil, 400, "Authorization", "Bearer a b"),
			ok("verify", "POST", "/v1/portal/session/verify", session, []byte(`{"customer_hash":"`+alice+`"}`), 200),
			ok("verify another customer", "POST", "/v1/portal/session/verify", session, []byte(`{"customer_hash":"someone-else"}`), 403),
			bad(ok("verify without a customer", "POST", "/v1/portal/session/verify", session, []byte(`{}`), 422)),
			ok("verify without token", "POST", "/v1/portal/session/verify", "", []byte(`{"customer_hash":"x"}`), 401),
			ok("verify with a malformed header", "POST", "/v1/portal/session/verify", "", []byte(`{"customer_hash":"x"}`), 400, "Authorization", "Bearer a b"),
			ok("catalog", "GET", "/v1/portal/catalog?tier=gold&balance=1", session, nil, 200),
			ok("catalog without token", "GET", "/v1/portal/catalog", "", nil, 401),
			ok("catalog with a malformed header", "GET", "/v1/portal/catalog", "", nil, 400, "Authorization", "Bearer a b"),
		} {
			c.do(t, s, ex)
		}
		c.do(t, s, ok("put a reward to redeem", "PUT", "/v1/catalog/rewards/RWD-P", admin, []byte(`{"name":"Pin","point_cost":3,"inventory":1,"fulfillment_method":"manual"}`), 200))
		c.do(t, s, ok("put a cheap reward", "PUT", "/v1/catalog/rewards/RWD-R", admin, []byte(`{"name":"Sticker","point_cost":1,"fulfillment_method":"manual"}`), 200))
		c.do(t, s, ok("put a dear reward", "PUT", "/v1/catalog/rewards/RWD-Q", admin, []byte(`{"name":"Bike","point_cost":500,"fulfillment_method":"manual"}`), 200))
		c.do(t, s, ok("fund", "POST", "/v1/ledger/transaction/process", all, []byte(`{"idempotency_key":"fund-portal","customer_hash":"`+aliceHash+`","kind":"accrual","amount":10,"reason":"portal"}`), 201))
		redeem := func(reward string, cost int, key string) []byte {
			return []byte(fmt.Sprintf(`{"customer_hash":%q,"reward_id":%q,"point_cost":%d,"fulfillment_method":"manual","idempotency_key":%q}`, alice, reward, cost, key))
		}
		for _, ex := range []oaExchange{
			ok("redeem", "POST", "/v1/portal/redeem", session, redeem("RWD-P", 3, "p1"), 201),
			ok("redeem replay", "POST", "/v1/portal/redeem", session, redeem("RWD-P", 3, "p1"), 200),
			ok("redeem out of stock", "POST", "/v1/portal/redeem", session, redeem("RWD-P", 3, "p2"), 409),
			ok("redeem changed cost", "POST", "/v1/portal/redeem", session, redeem("RWD-8842", 1, "p3"), 409),
			ok("redeem above the tier", "POST", "/v1/portal/redeem", session, redeem("RWD-8842", 2500, "p4"), 403),
			ok("redeem unaffordable", "POST", "/v1/portal/redeem", session, redeem("RWD-Q", 500, "p9"), 409),
			ok("redeem inactive", "POST", "/v1/portal/redeem", session, redeem("RWD-1", 100, "p5"), 404),
			ok("redeem for another customer", "POST", "/v1/portal/redeem", session, []byte(`{"customer_hash":"someone-else","reward_id":"RWD-P","point_cost":3,"idempotency_key":"p6"}`), 403),
			bad(ok("redeem without cost", "POST", "/v1/portal/redeem", session, []byte(`{"customer_hash":"x","reward_id":"RWD-P","idempotency_key":"p7"}`), 422)),
			bad(ok("redeem too large", "POST", "/v1/portal/redeem", session, big, 413)),
			ok("redeem without token", "POST", "/v1/portal/redeem", "", redeem("RWD-P", 3, "p8"), 401),
			ok("redeem with a malformed header", "POST", "/v1/portal/redeem", "", redeem("RWD-P", 3, "p8"), 400, "Authorization", "Bearer a b"),
			// An integration redeems with the same body through transaction/process.
			ok("process redeem", "POST", "/v1/ledger/transaction/process", all, redeem("RWD-Q", 1, "q1"), 409),
			ok("process redeem", "POST", "/v1/ledger/transaction/process", all, redeem("RWD-R", 1, "q2"), 201),
			ok("process redeem replay", "POST", "/v1/ledger/transaction/process", all, redeem("RWD-R", 1, "q2"), 200),
		} {
			c.do(t, s, ex)
		}
		rcp := c.do(t, s, ok("redeem for a receipt", "POST", "/v1/portal/redeem", session, redeem("RWD-R", 1, "p10"), 201)).JSON(t)["receipt_id"].(string)
		other := c.do(t, s, ok("lookup of another customer", "POST", "/v1/ledger/balance/lookup", read, []byte(`{"customer_hash":"someone-else"}`), 200)).JSON(t)["session_token"].(string)
		for _, ex := range []oaExchange{
			ok("receipt", "GET", "/v1/portal/receipts/"+rcp, session, nil, 200),
			ok("receipt of another customer", "GET", "/v1/portal/receipts/"+rcp, other, nil, 404),
			ok("no such receipt", "GET", "/v1/portal/receipts/rcp_000000000000000000000000", session, nil, 404),
			ok("receipt without token", "GET", "/v1/portal/receipts/"+rcp, "", nil, 401),
			ok("receipt with an access token", "GET", "/v1/portal/receipts/"+rcp, all, nil, 401),
			ok("receipt with a malformed header", "GET", "/v1/portal/receipts/"+rcp, "", nil, 400, "Authorization", "Bearer a b"),
		} {
			c.do(t, s, ex)
		}
		c.do(t, s, ok("page", "GET", "/portal/", "", nil, 200))
		c.do(t, s, ok("file", "GET", "/portal/index.html", "", nil, 200))
		c.do(t, s, ok("no such file", "GET", "/portal/nope.js", "", nil, 404))
		c.do(t, s, ok("portal page at /", "GET", "/", "", nil, 200))
		bundle := c.do(t, s, ok("widget", "GET", "/widget/v2.1.0/bundle.min.js", "", nil, 200))
		c.do(t, s, ok("widget, revalidated", "GET", "/widget/v2.1.0/bundle.min.js", "", nil, 304, "If-None-Match", bundle.Header.Get("ETag")))
		c.do(t, s, ok("widget, latest", "GET", "/widget/latest/bundle.min.js", "", nil, 200))
		c.do(t, s, ok("widget, no such version", "GET", "/widget/v9.9.9/bundle.min.js", "", nil, 404))
	})

	t.Run("operations", func(t *testing.T) {
		c.do(t, s, ok("health", "GET", "/healthz", "", nil, 200))
		c.do(t, s, ok("ready", "GET", "/readyz", "", nil, 200))
		c.do(t, s, ok("metrics", "GET", "/metrics", "", nil, 200))
		c.do(t, s, ok("openapi", "GET", "/openapi.json", "", nil, 200))
	})
}

// oaRedemption records a redemption of GIFT-10 in the given state, as the ledger's redeem decision and
// the fulfillment worker would leave it.
func oaRedemption(t *testing.T, s *apitest.Server, receiptID, status string) {
	t.Helper()
	ctx := context.Background()
	customer := s.Hasher.Hash("redeemer-" + receiptID)
	if _, err := s.Ledger.Write(ctx, ledger.Request{Kind: tally.KindAccrual, Account: customer, Key: "seed-" + receiptID, Amount: 1000}); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Ledger.Write(ctx, ledger.Request{Kind: tally.KindRedemption, Account: customer, Key: receiptID, Amount: 1000})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	err = s.Store.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		return tx.InsertRedemptions(ctx, []tally.Redemption{{ReceiptID: receiptID, TxSeq: rc.Transaction.Seq, AccountID: customer,
			RewardID: "GIFT-10", Points: 1000, Method: tally.MethodWebhook, Status: status, Attempts: 8, NextAttemptAt: now,
			LastError: "503 from the receiver", CreatedAt: now, UpdatedAt: now}})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// oaFaultyStore fails or holds the store calls the API makes, as the test asks.
type oaFaultyStore struct {
	tally.Store
	mode    atomic.Int32
	entered chan struct{} // oaModeHold: a call has started to wait
	release chan struct{} // oaModeHold: let the waiting calls go
}

const (
	oaModeOK int32 = iota
	oaModeUnavailable
	oaModeInternal
	oaModeHold
)

func (f *oaFaultyStore) fault(ctx context.Context) error {
	switch f.mode.Load() {
	case oaModeUnavailable:
		return tally.Unavailable(errors.New("injected"), "the store")
	case oaModeInternal:
		return errors.New("injected internal fault")
	case oaModeHold:
		f.entered <- struct{}{}
		select {
		case <-f.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (f *oaFaultyStore) Update(ctx context.Context, fn func(context.Context, tally.WriteTx) error) error {
	if err := f.fault(ctx); err != nil {
		return err
	}
	return f.Store.Update(ctx, fn)
}

func (f *oaFaultyStore) Account(ctx context.Context, id string) (tally.Account, error) {
	if err := f.fault(ctx); err != nil {
		return tally.Account{}, err
	}
	return f.Store.Account(ctx, id)
}

func (f *oaFaultyStore) Lot(ctx context.Context, seq int64) (tally.Lot, error) {
	if err := f.fault(ctx); err != nil {
		return tally.Lot{}, err
	}
	return f.Store.Lot(ctx, seq)
}

func (f *oaFaultyStore) LapsedLots(ctx context.Context, now time.Time, after string, limit int) ([]tally.LapsedLots, error) {
	if err := f.fault(ctx); err != nil {
		return nil, err
	}
	return f.Store.LapsedLots(ctx, now, after, limit)
}

func (f *oaFaultyStore) Transaction(ctx context.Context, seq int64) (tally.Transaction, error) {
	if err := f.fault(ctx); err != nil {
		return tally.Transaction{}, err
	}
	return f.Store.Transaction(ctx, seq)
}

func (f *oaFaultyStore) History(ctx context.Context, id string, before int64, limit int) ([]tally.Transaction, error) {
	if err := f.fault(ctx); err != nil {
		return nil, err
	}
	return f.Store.History(ctx, id, before, limit)
}

func (f *oaFaultyStore) Rewards(ctx context.Context) ([]tally.Reward, error) {
	if err := f.fault(ctx); err != nil {
		return nil, err
	}
	return f.Store.Rewards(ctx)
}

func (f *oaFaultyStore) Redemption(ctx context.Context, id string) (tally.Redemption, error) {
	if err := f.fault(ctx); err != nil {
		return tally.Redemption{}, err
	}
	return f.Store.Redemption(ctx, id)
}

func (f *oaFaultyStore) PutReward(ctx context.Context, r tally.Reward) error {
	if err := f.fault(ctx); err != nil {
		return err
	}
	return f.Store.PutReward(ctx, r)
}

func (f *oaFaultyStore) CreateReward(ctx context.Context, r tally.Reward) error {
	if err := f.fault(ctx); err != nil {
		return err
	}
	return f.Store.CreateReward(ctx, r)
}

func (f *oaFaultyStore) UpdateReward(ctx context.Context, id string, fn func(*tally.Reward) error) (tally.Reward, error) {
	if err := f.fault(ctx); err != nil {
		return tally.Reward{}, err
	}
	return f.Store.UpdateReward(ctx, id, fn)
}

func (f *oaFaultyStore) SetInventory(ctx context.Context, id string, n *int64) (tally.Reward, error) {
	if err := f.fault(ctx); err != nil {
		return tally.Reward{}, err
	}
	return f.Store.SetInventory(ctx, id, n)
}

func (f *oaFaultyStore) AddCoupons(ctx context.Context, id string, codes []string) (tally.CouponUpload, error) {
	if err := f.fault(ctx); err != nil {
		return tally.CouponUpload{}, err
	}
	return f.Store.AddCoupons(ctx, id, codes)
}

func (f *oaFaultyStore) Redemptions(ctx context.Context, filter tally.RedemptionFilter) ([]tally.Redemption, error) {
	if err := f.fault(ctx); err != nil {
		return nil, err
	}
	return f.Store.Redemptions(ctx, filter)
}

func (f *oaFaultyStore) RetryRedemption(ctx context.Context, id string, now time.Time) (tally.Redemption, error) {
	if err := f.fault(ctx); err != nil {
		return tally.Redemption{}, err
	}
	return f.Store.RetryRedemption(ctx, id, now)
}

func (f *oaFaultyStore) Report(ctx context.Context, fn func(context.Context, tally.ReportTx) error) error {
	if err := f.fault(ctx); err != nil {
		return err
	}
	return f.Store.Report(ctx, fn)
}

func (f *oaFaultyStore) Ping(ctx context.Context) error {
	if err := f.fault(ctx); err != nil {
		return err
	}
	return f.Store.Ping(ctx)
}

// oaFaultyCredentials fails the client look-ups of the token endpoint when told to.
type oaFaultyCredentials struct {
	tally.CredentialStore
	mode atomic.Int32 // oaModeOK, oaModeUnavailable or oaModeInternal
}

func (f *oaFaultyCredentials) Client(ctx context.Context, id string) (tally.Client, error) {
	switch f.mode.Load() {
	case oaModeUnavailable:
		return tally.Client{}, tally.Unavailable(errors.New("injected"), "the credential store")
	case oaModeInternal:
		return tally.Client{}, errors.New("injected internal fault")
	}
	return f.CredentialStore.Client(ctx, id)
}

// oaFaults provokes the answers of a failing or saturated store: 503, 500, 429 and stale balances.
func oaFaults(t *testing.T, c *oaContract) {
	store := &oaFaultyStore{entered: make(chan struct{}), release: make(chan struct{})}
	plain := apitest.Start(t, apitest.SQLite, apitest.Config{}) // only for its real, migrated store
	creds := &oaFaultyCredentials{CredentialStore: plain.Creds}
	s := apitest.StartOn(t, plain.Store, creds, apitest.Config{
		// One admission slot, so that a held request makes the others 429; a lookup deadline long enough
		// that the held lookup keeps its slot while they are sent.
		Options: api.Options{MaxInFlight: 1, AdmissionWait: 20 * time.Millisecond, LookupDeadline: time.Minute,
			WriteDeadline: time.Second},
		Breaker:   breaker.Config{Failures: 1 << 30}, // the breaker is tested elsewhere: keep it closed
		WrapStore: func(inner tally.Store) tally.Store { store.Store = inner; return store },
	})
	all := s.Token(apitest.AllScopes...)
	id, secret := s.Client(tally.ScopeLedgerRead)
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(id+":"+secret))
	ok := func(name, method, path, token string, body []byte, status int, header ...string) oaExchange {
		return oaExchange{name: name, method: method, path: path, token: token, body: body, header: header, status: status, conforms: true}
	}
	bob := "bob-contact-id"
	c.do(t, s, ok("earn", "POST", "/v1/ledger/transaction/process", all, []byte(`{"event_id":"f-1","type":"WebChat","state":"closed","user_id":"`+bob+`"}`), 201))
	// bob's balance is remembered for stale answers; carol, who has no account, has none to fall back on.
	session := c.do(t, s, ok("lookup", "POST", "/v1/ledger/balance/lookup", all, []byte(`{"customer_hash":"`+bob+`"}`), 200)).JSON(t)["session_token"].(string)
	carol := c.do(t, s, ok("lookup", "POST", "/v1/ledger/balance/lookup", all, []byte(`{"customer_hash":"carol"}`), 200)).JSON(t)["session_token"].(string)

	t.Run("unavailable", func(t *testing.T) {
		store.mode.Store(oaModeUnavailable)
		defer store.mode.Store(oaModeOK)
		res := c.do(t, s, ok("stale lookup", "POST", "/v1/ledger/balance/lookup", all, []byte(`{"customer_hash":"`+bob+`"}`), 200))
		if res.JSON(t)["stale"] != true {
			t.Errorf("lookup with the store down is not stale: %s", res.Body)
		}
		res = c.do(t, s, ok("stale portal", "GET", "/v1/portal/me", session, nil, 200))
		if res.JSON(t)["stale"] != true {
			t.Errorf("portal with the store down is not stale: %s", res.Body)
		}
		for _, ex := range []oaExchange{
			ok("lookup of an uncached customer", "POST", "/v1/ledger/balance/lookup", all, []byte(`{"customer_hash":"carol"}`), 503),
			ok("process", "POST", "/v1/ledger/transaction/process", all, []byte(`{"event_id":"f-2","type":"WebChat","state":"closed","user_id":"`+bob+`"}`), 503),
			ok("history", "GET", "/v1/ledger/accounts/"+bob+"/history", all, nil, 503),
			ok("status", "POST", "/v1/ledger/accounts/"+bob+"/status", all, []byte(`{"status":"frozen"}`), 503),
			ok("transaction", "GET", "/v1/ledger/transactions/1", all, nil, 503),
			ok("rewards", "GET", "/v1/catalog/rewards", all, nil, 503),
			ok("reward", "GET", "/v1/catalog/rewards/R1", all, nil, 503),
			ok("put reward", "PUT", "/v1/catalog/rewards/R1", all, []byte(`{"name":"x","point_cost":1,"fulfillment_method":"email"}`), 503),
			ok("create reward", "POST", "/v1/catalog/rewards", all, []byte(`{"reward_id":"R1","name":"x","point_cost":1,"fulfillment_method":"email"}`), 503),
			ok("patch reward", "PATCH", "/v1/catalog/rewards/R1", all, []byte(`{"active":false}`), 503),
			ok("stock", "POST", "/v1/catalog/rewards/R1/inventory", all, []byte(`{"set":1}`), 503),
			ok("coupons", "POST", "/v1/catalog/rewards/R1/coupons", all, []byte(`{"codes":["X"]}`), 503),
			ok("redemptions", "GET", "/v1/catalog/redemptions", all, nil, 503),
			ok("retry", "POST", "/v1/catalog/redemptions/R1/retry", all, nil, 503),
			ok("tier review", "POST", "/v1/admin/tiers/review", all, nil, 503),
			ok("report", "GET", "/v1/admin/reports/outstanding", all, nil, 503),
			ok("adjustment", "POST", "/v1/admin/adjustments", all, []byte(`{"idempotency_key":"fa-503","customer_hash":"`+bob+`","amount":1,"reason":"r","actor":"a"}`), 503),
			ok("reversal", "POST", "/v1/admin/reversals", all, []byte(`{"idempotency_key":"fr-503","transaction_id":1,"reason":"r","actor":"a"}`), 503),
			ok("clawback", "POST", "/v1/admin/clawbacks", all, []byte(`{"idempotency_key":"fc-503","transaction_id":1,"reason":"r","actor":"a"}`), 503),
			ok("activate", "POST", "/v1/admin/transactions/1/activate", all, nil, 503),
			ok("expiry run", "POST", "/v1/admin/expiry/run", all, nil, 503),
			ok("ready", "GET", "/readyz", "", nil, 503),
			ok("portal without a remembered balance", "GET", "/v1/portal/me", carol, nil, 503),
			ok("catalog", "GET", "/v1/portal/catalog", carol, nil, 503),
			ok("redeem", "POST", "/v1/portal/redeem", carol, []byte(`{"customer_hash":"carol","reward_id":"R1","point_cost":1,"idempotency_key":"u1"}`), 503),
			ok("receipt", "GET", "/v1/portal/receipts/rcp_000000000000000000000000", carol, nil, 503),
		} {
			res := c.do(t, s, ex)
			if ra := res.Header.Get("Retry-After"); res.Status == 503 && ra == "" {
				t.Errorf("%s: 503 without Retry-After", ex.name)
			}
		}
		creds.mode.Store(oaModeUnavailable)
		defer creds.mode.Store(oaModeOK)
		c.do(t, s, ok("token", "POST", "/oauth/token", "", []byte("grant_type=client_credentials"), 503,
			"Content-Type", "application/x-www-form-urlencoded", "Authorization", basic))
	})

	t.Run("lifecycle", func(t *testing.T) { oaLifecycleFaults(t, c, s, store, all) })
	t.Run("spooled", func(t *testing.T) {
		// A server with an accrual spool over the same faulty store: accruals are queued, 202.
		sp, err := spool.OpenFile(filepath.Join(t.TempDir(), "tally.spool"), spool.FileOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer sp.Close()
		spooled := apitest.StartOn(t, plain.Store, plain.Creds, apitest.Config{
			Breaker: breaker.Config{Failures: 1 << 30}, Spool: sp, SpoolInterval: time.Hour,
			WrapStore: func(tally.Store) tally.Store { return store },
		})
		tok := spooled.Token(apitest.AllScopes...)
		store.mode.Store(oaModeUnavailable)
		defer store.mode.Store(oaModeOK)
		c.do(t, spooled, ok("queued event", "POST", "/v1/ledger/transaction/process", tok, []byte(`{"event_id":"f-q1","type":"WebChat","state":"closed","user_id":"`+bob+`"}`), 202))
		c.do(t, spooled, ok("queued accrual", "POST", "/v1/ledger/transaction/process", tok,
			[]byte(`{"idempotency_key":"q-1","customer_hash":"`+bob+`","kind":"accrual","amount":5,"reason":"queued"}`), 202))
	})

	t.Run("internal", func(t *testing.T) {
		store.mode.Store(oaModeInternal)
		defer store.mode.Store(oaModeOK)
		creds.mode.Store(oaModeInternal)
		defer creds.mode.Store(oaModeOK)
		for _, ex := range []oaExchange{
			ok("lookup", "POST", "/v1/ledger/balance/lookup", all, []byte(`{"customer_hash":"carol"}`), 500),
			ok("process", "POST", "/v1/ledger/transaction/process", all, []byte(`{"event_id":"f-3","type":"WebChat","state":"closed","user_id":"`+bob+`"}`), 500),
			ok("history", "GET", "/v1/ledger/accounts/"+bob+"/history", all, nil, 500),
			ok("status", "POST", "/v1/ledger/accounts/"+bob+"/status", all, []byte(`{"status":"frozen"}`), 500),
			ok("transaction", "GET", "/v1/ledger/transactions/1", all, nil, 500),
			ok("rewards", "GET", "/v1/catalog/rewards", all, nil, 500),
			ok("reward", "GET", "/v1/catalog/rewards/R1", all, nil, 500),
			ok("put reward", "PUT", "/v1/catalog/rewards/R1", all, []byte(`{"name":"x","point_cost":1,"fulfillment_method":"email"}`), 500),
			ok("create reward", "POST", "/v1/catalog/rewards", all, []byte(`{"reward_id":"R1","name":"x","point_cost":1,"fulfillment_method":"email"}`), 500),
			ok("patch reward", "PATCH", "/v1/catalog/rewards/R1", all, []byte(`{"active":false}`), 500),
			ok("stock", "POST", "/v1/catalog/rewards/R1/inventory", all, []byte(`{"set":1}`), 500),
			ok("coupons", "POST", "/v1/catalog/rewards/R1/coupons", all, []byte(`{"codes":["X"]}`), 500),
			ok("redemptions", "GET", "/v1/catalog/redemptions", all, nil, 500),
			ok("retry", "POST", "/v1/catalog/redemptions/R1/retry", all, nil, 500),
			ok("report", "GET", "/v1/admin/reports/rollforward", all, nil, 500),
			ok("adjustment", "POST", "/v1/admin/adjustments", all, []byte(`{"idempotency_key":"fa-500","customer_hash":"`+bob+`","amount":1,"reason":"r","actor":"a"}`), 500),
			ok("reversal", "POST", "/v1/admin/reversals", all, []byte(`{"idempotency_key":"fr-500","transaction_id":1,"reason":"r","actor":"a"}`), 500),
			ok("clawback", "POST", "/v1/admin/clawbacks", all, []byte(`{"idempotency_key":"fc-500","transaction_id":1,"reason":"r","actor":"a"}`), 500),
			ok("activate", "POST", "/v1/admin/transactions/1/activate", all, nil, 500),
			ok("expiry run", "POST", "/v1/admin/expiry/run", all, nil, 500),
			ok("portal", "GET", "/v1/portal/me", carol, nil, 500),
			ok("catalog", "GET", "/v1/portal/catalog", carol, nil, 500),
			ok("redeem", "POST", "/v1/portal/redeem", carol, []byte(`{"customer_hash":"carol","reward_id":"R1","point_cost":1,"idempotency_key":"i1"}`), 500),
			ok("receipt", "GET", "/v1/portal/receipts/rcp_000000000000000000000000", carol, nil, 500),
			ok("token", "POST", "/oauth/token", "", []byte("grant_type=client_credentials"), 500,
				"Content-Type", "application/x-www-form-urlencoded", "Authorization", basic),
		} {
			res := c.do(t, s, ex)
			if bytes.Contains(res.Body, []byte("injected")) {
				t.Errorf("%s: the answer leaks the internal error: %s", ex.name, res.Body)
			}
		}
	})

	t.Run("overloaded", func(t *testing.T) {
		store.mode.Store(oaModeHold)
		heldEx := ok("held lookup", "POST", "/v1/ledger/balance/lookup", all, []byte(`{"customer_hash":"`+bob+`"}`), 200)
		held := make(chan apitest.Response, 1)
		go func() { // not s.Do, which may call t.Fatal: that must not happen off the test's goroutine
			req, _ := http.NewRequest(heldEx.method, s.URL+heldEx.path, bytes.NewReader(heldEx.body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+heldEx.token)
			var res apitest.Response
			if r, err := http.DefaultClient.Do(req); err == nil {
				res.Status, res.Header = r.StatusCode, r.Header
				res.Body, _ = io.ReadAll(r.Body)
				r.Body.Close()
			}
			held <- res
		}()
		<-store.entered // the only admission slot is taken
		released := false
		defer func() {
			if !released { // a failed check must not leave the held request, and the server's Close, waiting
				close(store.release)
			}
		}()
		store.mode.Store(oaModeOK)
		for _, ex := range []oaExchange{
			ok("token", "POST", "/oauth/token", "", []byte("grant_type=client_credentials"), 429,
				"Content-Type", "application/x-www-form-urlencoded", "Authorization", basic),
			ok("lookup", "POST", "/v1/ledger/balance/lookup", all, []byte(`{"customer_hash":"`+bob+`"}`), 429),
			ok("process", "POST", "/v1/ledger/transaction/process", all, []byte(`{"event_id":"f-4","user_id":"`+bob+`"}`), 429),
			ok("history", "GET", "/v1/ledger/accounts/"+bob+"/history", all, nil, 429),
			ok("status", "POST", "/v1/ledger/accounts/"+bob+"/status", all, []byte(`{"status":"active"}`), 429),
			ok("transaction", "GET", "/v1/ledger/transactions/1", all, nil, 429),
			ok("rewards", "GET", "/v1/catalog/rewards", all, nil, 429),
			ok("reward", "GET", "/v1/catalog/rewards/R1", all, nil, 429),
			ok("catalog", "GET", "/v1/portal/catalog", session, nil, 429),
			ok("redeem", "POST", "/v1/portal/redeem", session, []byte(`{"customer_hash":"`+bob+`","reward_id":"R1","point_cost":1,"idempotency_key":"o1"}`), 429),
			ok("refresh", "POST", "/v1/portal/session/refresh", session, nil, 429),
			ok("verify", "POST", "/v1/portal/session/verify", session, []byte(`{"customer_hash":"`+bob+`"}`), 429),
			ok("receipt", "GET", "/v1/portal/receipts/rcp_000000000000000000000000", session, nil, 429),
			ok("put reward", "PUT", "/v1/catalog/rewards/R1", all, []byte(`{"name":"x","point_cost":1,"fulfillment_method":"email"}`), 429),
			ok("create reward", "POST", "/v1/catalog/rewards", all, []byte(`{"reward_id":"R1","name":"x","point_cost":1,"fulfillment_method":"email"}`), 429),
			ok("patch reward", "PATCH", "/v1/catalog/rewards/R1", all, []byte(`{"active":false}`), 429),
			ok("stock", "POST", "/v1/catalog/rewards/R1/inventory", all, []byte(`{"set":1}`), 429),
			ok("coupons", "POST", "/v1/catalog/rewards/R1/coupons", all, []byte(`{"codes":["X"]}`), 429),
			ok("redemptions", "GET", "/v1/catalog/redemptions", all, nil, 429),
			ok("retry", "POST", "/v1/catalog/redemptions/R1/retry", all, nil, 429),
			ok("rules", "GET", "/v1/admin/rules", all, nil, 429),
			ok("create rule", "POST", "/v1/admin/rules", all, []byte(`{"name":"x","filter":"$.a = 1","points":1}`), 429),
			ok("test rules", "POST", "/v1/admin/rules/test", all, []byte(`{"event_id":"x"}`), 429),
			ok("rule", "GET", "/v1/admin/rules/x", all, nil, 429),
			ok("put rule", "PUT", "/v1/admin/rules/x", all, []byte(`{"filter":"$.a = 1","points":1}`), 429),
			ok("deactivate rule", "DELETE", "/v1/admin/rules/x", all, nil, 429),
			ok("customer tier", "GET", "/v1/admin/customers/bob/tier", all, nil, 429),
			ok("tier review", "POST", "/v1/admin/tiers/review", all, nil, 429),
			ok("report", "GET", "/v1/admin/reports/breakage", all, nil, 429),
			ok("adjustment", "POST", "/v1/admin/adjustments", all, []byte(`{"idempotency_key":"fa-429","customer_hash":"`+bob+`","amount":1,"reason":"r","actor":"a"}`), 429),
			ok("reversal", "POST", "/v1/admin/reversals", all, []byte(`{"idempotency_key":"fr-429","transaction_id":1,"reason":"r","actor":"a"}`), 429),
			ok("clawback", "POST", "/v1/admin/clawbacks", all, []byte(`{"idempotency_key":"fc-429","transaction_id":1,"reason":"r","actor":"a"}`), 429),
			ok("activate", "POST", "/v1/admin/transactions/1/activate", all, nil, 429),
			ok("expiry run", "POST", "/v1/admin/expiry/run", all, nil, 429),
			ok("portal", "GET", "/v1/portal/me", session, nil, 429),
			ok("health is not admitted", "GET", "/healthz", "", nil, 200),
		} {
			res := c.do(t, s, ex)
			if res.Status == 429 && res.Header.Get("Retry-After") == "" {
				t.Errorf("%s: 429 without Retry-After", ex.name)
			}
		}
		close(store.release)
		released = true
		res := <-held
		if res.Status != heldEx.status {
			t.Errorf("%s: answered %d, want %d: %s", heldEx.name, res.Status, heldEx.status, res.Body)
		}
		c.check(t, s, heldEx, res)
	})
}

// TestOpenAPIHasTeeth checks that the document rejects answers the server must not give: an undocumented
// member, status, header value or media type.
func TestOpenAPIHasTeeth(t *testing.T) {
	c := oaMustLoad(t)
	s := apitest.Start(t, apitest.SQLite, apitest.Config{})
	read := s.Token(tally.ScopeLedgerRead)
	ex := oaExchange{name: "lookup", method: "POST", path: "/v1/ledger/balance/lookup", token: read,
		body: []byte(`{"customer_hash":"dave"}`), status: 200, conforms: true}
	good := c.do(t, s, ex)
	noAuth := ex
	noAuth.token, noAuth.status = "", 401
	challenge := c.do(t, s, noAuth)
	notFound := oaExchange{name: "missing", method: "GET", path: "/v1/ledger/transactions/424242", token: read, status: 404, conforms: true}
	problem := c.do(t, s, notFound)

	withMember := func(body []byte, k string, v any) []byte {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		m[k] = v
		b, _ := json.Marshal(m)
		return b
	}
	without := func(body []byte, k string) []byte {
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		delete(m, k)
		b, _ := json.Marshal(m)
		return b
	}
	headerWithout := func(h http.Header, k string) http.Header {
		h = h.Clone()
		h.Del(k)
		return h
	}
	headerWith := func(h http.Header, k, v string) http.Header {
		h = h.Clone()
		h.Set(k, v)
		return h
	}
	for _, tc := range []struct {
		name string
		ex   oaExchange
		res  apitest.Response
	}{
		{"undocumented member", ex, apitest.Response{Status: 200, Header: good.Header, Body: withMember(good.Body, "points_expiring", 3)}},
		{"missing member", ex, apitest.Response{Status: 200, Header: good.Header, Body: without(good.Body, "tier")}},
		{"member of the wrong type", ex, apitest.Response{Status: 200, Header: good.Header, Body: withMember(good.Body, "balance", "12")}},
		{"undocumented status", ex, apitest.Response{Status: 418, Header: good.Header, Body: good.Body}},
		{"undocumented media type", ex, apitest.Response{Status: 200, Header: headerWith(good.Header, "Content-Type", "text/plain"), Body: good.Body}},
		{"no request id", ex, apitest.Response{Status: 200, Header: headerWithout(good.Header, "X-Request-Id"), Body: good.Body}},
		{"challenge without WWW-Authenticate", noAuth, apitest.Response{Status: 401, Header: headerWithout(challenge.Header, "WWW-Authenticate"), Body: challenge.Body}},
		{"problem without code", notFound, apitest.Response{Status: 404, Header: problem.Header, Body: without(problem.Body, "code")}},
		{"problem of another status", notFound, apitest.Response{Status: 404, Header: problem.Header, Body: withMember(problem.Body, "status", 409)}},
		{"problem with a stack trace", notFound, apitest.Response{Status: 404, Header: problem.Header, Body: withMember(problem.Body, "stack", "main.go:1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.validate(s, tc.ex, tc.res); err == nil {
				t.Errorf("the document accepts an answer with %s", tc.name)
			}
		})
	}
}
