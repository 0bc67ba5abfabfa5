package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/api/apitest"
)

// corsHeaders are the headers that open an answer to a script of another origin.
var corsHeaders = []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers",
	"Access-Control-Allow-Credentials", "Access-Control-Expose-Headers", "Access-Control-Max-Age"}

func noCORS(t *testing.T, res apitest.Response) {
	t.Helper()
	for _, h := range corsHeaders {
		if v := res.Header.Get(h); v != "" {
			t.Errorf("%s: %s, want none", h, v)
		}
	}
}

func varies(res apitest.Response, on string) bool {
	for _, v := range res.Header.Values("Vary") {
		for _, f := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), on) {
				return true
			}
		}
	}
	return false
}

// TestCORS checks the CORS rules over HTTP: the portal routes and the widget's script answer the origins
// of --cors-origins, echoing the exact origin, and nothing else is opened.
func TestCORS(t *testing.T) {
	const allowed, other = "https://shop.example.com", "https://evil.example.net"
	s := apitest.Start(t, apitest.SQLite, apitest.Config{Options: api.Options{CORSOrigins: []string{allowed, "http://127.0.0.1:8000"}}})
	lookup := e2eLookup(t, s, []byte(`{"customer_hash":"cors-customer","channel":"webchat","request_id":"r1"}`))
	session := lookup.SessionToken
	preflight := func(path, origin, method string) apitest.Response {
		return s.Do("OPTIONS", path, "", nil, "Origin", origin, "Access-Control-Request-Method", method, "Access-Control-Request-Headers", "authorization,content-type")
	}

	t.Run("preflight from an allowed origin", func(t *testing.T) {
		for _, path := range []string{"/v1/portal/me", "/v1/portal/catalog", "/v1/portal/redeem", "/v1/portal/session/refresh", "/widget/v2.1.0/bundle.min.js"} {
			res := preflight(path, allowed, "POST")
			if res.Status != http.StatusNoContent {
				t.Fatalf("%s: preflight %d %s", path, res.Status, res.Body)
			}
			want := map[string]string{
				"Access-Control-Allow-Origin":  allowed,
				"Access-Control-Allow-Methods": "GET, POST",
				"Access-Control-Allow-Headers": "Authorization, Content-Type",
				"Access-Control-Max-Age":       "600",
			}
			for h, v := range want {
				if got := res.Header.Get(h); got != v {
					t.Errorf("%s: %s %q, want %q", path, h, got, v)
				}
			}
			if res.Header.Get("Access-Control-Allow-Credentials") != "" {
				t.Errorf("%s: credentials mode is on", path)
			}
			if !varies(res, "Origin") {
				t.Errorf("%s: no Vary: Origin", path)
			}
		}
	})

	t.Run("preflight from another origin", func(t *testing.T) {
		res := preflight("/v1/portal/redeem", other, "POST")
		if res.Status == http.StatusNoContent || res.Status == http.StatusOK {
			t.Errorf("preflight of an origin not listed answered %d", res.Status)
		}
		noCORS(t, res)
		// An origin is compared exactly: another scheme, port or a suffix is another origin.
		for _, o := range []string{"http://shop.example.com", "https://shop.example.com:8443", "https://shop.example.com.evil.net", "null", "HTTPS://SHOP.EXAMPLE.COM/"} {
			noCORS(t, preflight("/v1/portal/redeem", o, "POST"))
		}
	})

	t.Run("requests from an allowed origin", func(t *testing.T) {
		res := s.Do("GET", "/v1/portal/me", session, nil, "Origin", allowed)
		if res.Status != 200 {
			t.Fatalf("me: %d %s", res.Status, res.Body)
		}
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != allowed {
			t.Errorf("Access-Control-Allow-Origin %q", got)
		}
		if got := res.Header.Get("Access-Control-Expose-Headers"); !strings.Contains(got, "Retry-After") {
			t.Errorf("Retry-After is not exposed: %q", got)
		}
		if !varies(res, "Origin") {
			t.Error("no Vary: Origin")
		}
		// Errors are readable too: the widget must see a 401 to renew its session.
		res = s.Do("GET", "/v1/portal/me", "", nil, "Origin", allowed)
		if res.Status != 401 || res.Header.Get("Access-Control-Allow-Origin") != allowed {
			t.Errorf("401 without a session: %d, Access-Control-Allow-Origin %q", res.Status, res.Header.Get("Access-Control-Allow-Origin"))
		}
		res = s.Do("GET", "/widget/latest/bundle.min.js", "", nil, "Origin", allowed)
		if res.Status != 200 || res.Header.Get("Access-Control-Allow-Origin") != allowed {
			t.Errorf("the widget's script: %d, Access-Control-Allow-Origin %q", res.Status, res.Header.Get("Access-Control-Allow-Origin"))
		}
	})

	t.Run("requests from another origin", func(t *testing.T) {
		res := s.Do("GET", "/v1/portal/me", session, nil, "Origin", other)
		noCORS(t, res)
		if !varies(res, "Origin") {
			t.Error("no Vary: Origin: a cache could give an allowed origin's answer to this one")
		}
	})

	t.Run("ledger and other routes never", func(t *testing.T) {
		token := s.Token(apitest.AllScopes...)
		for _, r := range []struct{ method, path string }{
			{"POST", "/v1/ledger/balance/lookup"}, {"POST", "/v1/ledger/transaction/process"},
			{"GET", "/v1/catalog/rewards"}, {"PUT", "/v1/catalog/rewards/RWD-1"}, {"POST", "/oauth/token"},
			{"GET", "/metrics"}, {"GET", "/healthz"}, {"GET", "/openapi.json"}, {"GET", "/"}, {"GET", "/portal/"},
			{"GET", "/v1/portal"}, {"GET", "/v1/portalx/me"}, {"GET", "/v1/portal/../ledger/transactions/1"},
		} {
			res := preflight(r.path, allowed, r.method)
			noCORS(t, res)
			if res.Status == http.StatusNoContent {
				t.Errorf("OPTIONS %s answered 204", r.path)
			}
			noCORS(t, s.Do(r.method, r.path, token, []byte(`{}`), "Origin", allowed))
		}
	})

	t.Run("no origins configured", func(t *testing.T) {
		closed := apitest.Start(t, apitest.SQLite, apitest.Config{})
		res := closed.Do("OPTIONS", "/v1/portal/me", "", nil, "Origin", allowed, "Access-Control-Request-Method", "GET")
		noCORS(t, res)
		noCORS(t, closed.Do("GET", "/v1/portal/me", "", nil, "Origin", allowed))
	})
}

func TestParseOrigins(t *testing.T) {
	good := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{" , ", nil},
		{"https://shop.example.com", []string{"https://shop.example.com"}},
		{"https://Shop.Example.com:443, http://localhost:8000,https://shop.example.com", []string{"https://shop.example.com", "http://localhost:8000"}},
		{"http://a.test:80", []string{"http://a.test"}},
		{"http://[::1]:3000", []string{"http://[::1]:3000"}},
	}
	for _, c := range good {
		got, err := api.ParseOrigins(c.in)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("ParseOrigins(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"*", "https://*.example.com", "shop.example.com", "ftp://a.test", "https://a.test/", "https://a.test/path",
		"https://a.test?x=1", "https://a.test#f", "https://user:pw@a.test", "https://", "null", "https://a.test:"} {
		if got, err := api.ParseOrigins(in); err == nil {
			t.Errorf("ParseOrigins(%q) = %q, want an error", in, got)
		}
	}
}
