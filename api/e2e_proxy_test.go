package api_test

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/api/apitest"
)

// The test servers listen on loopback: requests of http.DefaultClient come from 127.0.0.1, those of
// clientFrom(t, "127.0.0.2") from another peer address.

// clientFrom is an HTTP client whose connections come from the local address ip (any 127.x.y.z is
// loopback on Linux), a second real peer address for the server.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: time.Minute}
}

// header is one request header line; a request may carry several of one name.
type header struct{ name, value string }

// proxiedToken asks for a token with Basic credentials (id "" for none), through client, with the
// header lines.
func proxiedToken(t *testing.T, srv *apitest.Server, client *http.Client, form url.Values, id, secret string, hs ...header) apitest.Response {
	t.Helper()
	req := e2eRequest(t, srv, "POST", "/oauth/token", "", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	for _, h := range hs {
		req.Header.Add(h.name, h.value)
	}
	res, err := e2eSend(client, req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// spray fails client authentication n times, each time for another guessed client id (so that only
// the address's count, never an id's, can reach the limit), with the header lines.
func spray(t *testing.T, srv *apitest.Server, n int, hs ...header) {
	t.Helper()
	for i := range n {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"tly_guess" + strconv.Itoa(i)}, "client_secret": {"x"}}
		if res := proxiedToken(t, srv, http.DefaultClient, form, "", "", hs...); res.Status != 401 {
			t.Fatalf("guess %d with %v: %d %s, want 401", i+1, hs, res.Status, res.Body)
		}
	}
}

func xff(v string) header       { return header{"X-Forwarded-For", v} }
func forwarded(v string) header { return header{"Forwarded", v} }

// TestSpoofedForwardingIgnored: a client that is not a trusted proxy cannot choose the address its
// failures count against by sending X-Forwarded-For or Forwarded: ten failures, each claiming another
// address, lock out its real one, whatever address it claims next. With no trusted proxy, and with
// proxies trusted that it is not one of.
func TestSpoofedForwardingIgnored(t *testing.T) {
	for name, opts := range map[string]api.Options{
		"no trusted proxy":           {},
		"another proxy trusted":      {TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		"another proxy, Forwarded":   {TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, ForwardedHeader: api.HeaderForwarded},
		"another IPv6 proxy":         {TrustedProxies: []netip.Prefix{netip.MustParsePrefix("::1/128")}},
		"a single address, not ours": {TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}},
	} {
		t.Run(name, func(t *testing.T) {
			srv := apitest.Start(t, apitest.SQLite, apitest.Config{Options: opts})
			id, secret := srv.Client(tally.ScopeLedgerRead)
			for i := range 10 {
				addr := "203.0.113." + strconv.Itoa(i+1)
				spray(t, srv, 1, xff(addr), forwarded("for="+addr))
			}
			res := proxiedToken(t, srv, http.DefaultClient, grant, id, secret, xff("198.51.100.1"), forwarded("for=198.51.100.1"))
			e2eProblem(t, res, 429, tally.EOVERLOADED)
			if !strings.Contains(string(res.Body), "address") {
				t.Errorf("the refusal does not say the address is locked out: %s", res.Body)
			}
			// Another real peer is not locked out.
			if res := proxiedToken(t, srv, clientFrom(t, "127.0.0.2"), grant, id, secret); res.Status != 200 {
				t.Fatalf("the right secret from another peer address: %d %s", res.Status, res.Body)
			}
		})
	}
}

// TestTokenLockoutBehindProxy is the attack SECURITY.md used to leave open: behind a load balancer an
// attacker's failures locked everyone out of /oauth/token. With the load balancer trusted, the attacker's
// own address is locked out, however it dresses its header, and another client behind the same load
// balancer still gets tokens.
func TestTokenLockoutBehindProxy(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
	for _, mode := range []struct {
		header string
		hop    func(addr string) header // what a proxy sends for a client at addr
		chain  func(spoof, addr, proxy string) header
	}{
		{api.HeaderXForwardedFor, func(a string) header { return xff(a) },
			func(spoof, a, proxy string) header { return xff(spoof + ", " + a + ", " + proxy) }},
		{api.HeaderForwarded, func(a string) header { return forwarded("for=" + a + ";proto=https") },
			func(spoof, a, proxy string) header {
				return forwarded("for=" + spoof + ", for=" + a + ";proto=https, for=" + proxy)
			}},
	} {
		t.Run(mode.header, func(t *testing.T) {
			srv := apitest.Start(t, apitest.SQLite, apitest.Config{Options: api.Options{TrustedProxies: trusted, ForwardedHeader: mode.header}})
			id, secret := srv.Client(tally.ScopeLedgerRead)
			const attacker, other = "203.0.113.7", "198.51.100.20"
			spray(t, srv, 10, mode.hop(attacker))

			// The attacker is locked out: with its plain address, behind a second trusted proxy, and with a
			// made-up address in front of its own (the proxy appends the real one after it).
			for _, h := range []header{mode.hop(attacker), mode.chain("192.0.2.99", attacker, "10.1.2.3")} {
				res := proxiedToken(t, srv, http.DefaultClient, grant, id, secret, h)
				e2eProblem(t, res, 429, tally.EOVERLOADED)
			}
			// Another client behind the same proxy, and the proxy's own requests, are not.
			for _, hs := range [][]header{{mode.hop(other)}, {mode.chain(attacker, other, "10.1.2.3")}, nil} {
				if res := proxiedToken(t, srv, http.DefaultClient, grant, id, secret, hs...); res.Status != 200 {
					t.Fatalf("the right secret with %v: %d %s, want a token", hs, res.Status, res.Body)
				}
			}
		})
	}
}

// TestMalformedForwardingCountsAgainstPeer: from a trusted proxy, a forwarding header that cannot be
// read where it matters is answered as any request (never a 5xx) and counts against the proxy's own
// address, not against an address it half names. Here ten of them lock the proxy's address out, while a
// client the proxy names properly still gets tokens.
func TestMalformedForwardingCountsAgainstPeer(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	for _, mode := range []struct {
		header    string
		malformed []header
		good      header
	}{
		{api.HeaderXForwardedFor, []header{
			xff("garbage"), xff("203.0.113.7, garbage"), xff(""), xff(" , "), xff("203.0.113.300"),
			xff("[203.0.113.7]"), xff("unknown"), xff(strings.Repeat("1.", 5000)), xff("203.0.113.7,"), xff("2001:db8::1%"),
		}, xff("198.51.100.20")},
		{api.HeaderForwarded, []header{
			forwarded("for=unknown"), forwarded("for=_hidden"), forwarded("proto=https"), forwarded("for=203.0.113.7;for=203.0.113.8"),
			forwarded(`for="203.0.113.7`), forwarded("for="), forwarded("203.0.113.7"), forwarded("for=203.0.113.7, garbage"),
			forwarded(`for="[203.0.113.7]"`), forwarded(strings.Repeat(";", 5000)),
		}, forwarded(`for="[2001:db8::20]:4711"`)},
	} {
		t.Run(mode.header, func(t *testing.T) {
			srv := apitest.Start(t, apitest.SQLite, apitest.Config{Options: api.Options{TrustedProxies: trusted, ForwardedHeader: mode.header}})
			id, secret := srv.Client(tally.ScopeLedgerRead)
			for _, h := range mode.malformed {
				spray(t, srv, 1, h) // 401, not a 5xx
			}
			res := proxiedToken(t, srv, http.DefaultClient, grant, id, secret)
			e2eProblem(t, res, 429, tally.EOVERLOADED)
			if res := proxiedToken(t, srv, http.DefaultClient, grant, id, secret, mode.good); res.Status != 200 {
				t.Fatalf("a client named properly: %d %s, want a token", res.Status, res.Body)
			}
		})
	}
}

// TestClientAddressCases pins down which address a request counts against, through the portal limit
// with a burst of one: a first request with the case's headers, then a probe from the address the case
// expects is refused (it shares the bucket), while a request from another peer is not.
func TestClientAddressCases(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("10.0.0.0/8")}
	const peer = "peer"
	for _, c := range []struct {
		name    string
		trusted []netip.Prefix
		header  string
		send    []header
		want    string // the client address the request counts against; peer: 127.0.0.1
	}{
		{"no header", trusted, "", nil, peer},
		{"one address", trusted, "", []header{xff("203.0.113.7")}, "203.0.113.7"},
		{"a spoof left of the address", trusted, "", []header{xff("192.0.2.99, 203.0.113.7")}, "203.0.113.7"},
		{"garbage left of the address", trusted, "", []header{xff("garbage, 203.0.113.7")}, "203.0.113.7"},
		{"through a second trusted proxy", trusted, "", []header{xff("203.0.113.7 , 10.1.2.3")}, "203.0.113.7"},
		{"every hop trusted", trusted, "", []header{xff("10.1.2.3, 10.4.5.6")}, "10.1.2.3"},
		{"two header lines", trusted, "", []header{xff("192.0.2.99"), xff("203.0.113.7")}, "203.0.113.7"},
		{"with a port", trusted, "", []header{xff("203.0.113.7:4711")}, "203.0.113.7"},
		{"IPv4-mapped", trusted, "", []header{xff("::ffff:203.0.113.7")}, "203.0.113.7"},
		{"IPv6 counts by /64", trusted, "", []header{xff("[2001:db8:1:2::1]:4711")}, "2001:db8:1:2::99"},
		{"malformed", trusted, "", []header{xff("203.0.113.7, garbage")}, peer},
		{"Forwarded is not read", trusted, "", []header{forwarded("for=203.0.113.7")}, peer},
		{"untrusted peer", []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "", []header{xff("203.0.113.7")}, peer},
		{"Forwarded", trusted, api.HeaderForwarded, []header{forwarded("for=203.0.113.7;proto=https")}, "203.0.113.7"},
		{"Forwarded, case and chain", trusted, api.HeaderForwarded, []header{forwarded(`For=192.0.2.99, FOR="203.0.113.7:80";by=10.0.0.1, for=10.1.2.3`)}, "203.0.113.7"},
		{"Forwarded IPv6", trusted, api.HeaderForwarded, []header{forwarded(`for="[2001:db8:1:2::1]:4711"`)}, "2001:db8:1:2::99"},
		{"Forwarded unknown", trusted, api.HeaderForwarded, []header{forwarded("for=unknown")}, peer},
		{"X-Forwarded-For is not read", trusted, api.HeaderForwarded, []header{xff("203.0.113.7")}, peer},
	} {
		t.Run(c.name, func(t *testing.T) {
			srv := apitest.Start(t, apitest.SQLite, apitest.Config{Options: api.Options{
				PortalRate: 0.001, PortalBurst: 1, TrustedProxies: c.trusted, ForwardedHeader: c.header,
			}})
			verify := func(client *http.Client, hs ...header) int {
				t.Helper()
				req := e2eRequest(t, srv, "POST", "/v1/portal/session/verify", "", strings.NewReader(`{}`))
				for _, h := range hs {
					req.Header.Add(h.name, h.value)
				}
				res, err := e2eSend(client, req)
				if err != nil {
					t.Fatal(err)
				}
				return res.Status
			}
			if st := verify(http.DefaultClient, c.send...); st != 401 {
				t.Fatalf("the first request: %d, want 401 (no session token)", st)
			}
			var probe []header
			switch {
			case c.want == peer:
			case c.header == api.HeaderForwarded:
				probe = []header{forwarded(`for="` + bracketed(c.want) + `"`)}
			default:
				probe = []header{xff(c.want)}
			}
			if st := verify(http.DefaultClient, probe...); st != 429 {
				t.Errorf("a request from %s after it: %d, want 429 (the same address)", c.want, st)
			}
			if st := verify(clientFrom(t, "127.0.0.2")); st != 401 {
				t.Errorf("a request from another peer: %d, want 401 (another address)", st)
			}
		})
	}
}

func bracketed(addr string) string {
	if strings.Contains(addr, ":") {
		return "[" + addr + "]"
	}
	return addr
}

// portalSession returns a portal session token of customer, as a balance lookup hands it out.
func portalSession(t *testing.T, srv *apitest.Server, customer string) string {
	t.Helper()
	lookup := srv.Post("/v1/ledger/balance/lookup", []byte(`{"customer_hash":"`+customer+`"}`))
	session, _ := lookup.JSON(t)["session_token"].(string)
	if lookup.Status != 200 || session == "" {
		t.Fatalf("lookup: %d %s", lookup.Status, lookup.Body)
	}
	return session
}

// TestPortalSessionRateLimit: a source address over its portal rate gets 429 with Retry-After and a
// problem on the session routes, whatever its token; another address (another peer, or another client
// named by a trusted proxy) is unaffected, and so are the other portal routes. (Each phase uses a
// customer of its own: each customer has a bucket too, TestPortalCustomerRateLimit.)
func TestPortalSessionRateLimit(t *testing.T) {
	srv := apitest.Start(t, apitest.SQLite, apitest.Config{Options: api.Options{
		PortalRate: 0.01, PortalBurst: 4, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
	}})
	customer := "c-portal"
	session := portalSession(t, srv, customer)
	post := func(client *http.Client, path string, hs ...header) apitest.Response {
		t.Helper()
		body := `{"customer_hash":"` + customer + `"}`
		if path == "/v1/portal/session/refresh" {
			body = ""
		}
		req := e2eRequest(t, srv, "POST", path, session, strings.NewReader(body))
		for _, h := range hs {
			req.Header.Add(h.name, h.value)
		}
		res, err := e2eSend(client, req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	// The burst, both routes drawing on one bucket.
	for i, path := range []string{"/v1/portal/session/verify", "/v1/portal/session/refresh", "/v1/portal/session/verify", "/v1/portal/session/refresh"} {
		if res := post(http.DefaultClient, path); res.Status != 200 {
			t.Fatalf("request %d of the burst (%s): %d %s", i+1, path, res.Status, res.Body)
		}
	}
	for _, path := range []string{"/v1/portal/session/verify", "/v1/portal/session/refresh"} {
		res := post(http.DefaultClient, path)
		e2eProblem(t, res, 429, tally.EOVERLOADED)
		if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || s < 1 || s > 100 {
			t.Errorf("%s: Retry-After %q, want the time until the next token (at most 100 s at 0.01/s)", path, res.Header.Get("Retry-After"))
		}
	}
	// An untrusted peer's header does not get it a fresh bucket.
	e2eProblem(t, post(http.DefaultClient, "/v1/portal/session/verify", xff("203.0.113.7")), 429, tally.EOVERLOADED)
	// The other portal routes are not limited by it.
	if res := srv.Do("GET", "/v1/portal/me", portalSession(t, srv, "c-me"), nil); res.Status != 200 {
		t.Fatalf("/v1/portal/me from the limited address: %d %s", res.Status, res.Body)
	}

	// Another peer address, and, behind it as a trusted proxy, two clients: each has its own bucket.
	proxy := clientFrom(t, "127.0.0.2")
	customer = "c-peer"
	session = portalSession(t, srv, customer)
	for i := range 4 {
		if res := post(proxy, "/v1/portal/session/verify"); res.Status != 200 {
			t.Fatalf("another peer, request %d: %d %s", i+1, res.Status, res.Body)
		}
	}
	if res := post(proxy, "/v1/portal/session/verify"); res.Status != 429 {
		t.Fatalf("another peer past its own burst: %d, want 429", res.Status)
	}
	customer = "c-proxied"
	session = portalSession(t, srv, customer)
	for i := range 4 {
		if res := post(proxy, "/v1/portal/session/refresh", xff("198.51.100.20")); res.Status != 200 {
			t.Fatalf("a client behind the trusted proxy, request %d: %d %s", i+1, res.Status, res.Body)
		}
	}
	e2eProblem(t, post(proxy, "/v1/portal/session/refresh", xff("198.51.100.20")), 429, tally.EOVERLOADED)
	session = portalSession(t, srv, "c-proxied-2")
	if res := post(proxy, "/v1/portal/session/refresh", xff("198.51.100.21")); res.Status != 200 {
		t.Fatalf("a second client behind the trusted proxy: %d %s", res.Status, res.Body)
	}
}

// TestPortalCustomerRateLimit: each customer's sessions share a bucket over every portal route, from
// whatever address (counted once the session token is verified): past it 429 with Retry-After and a
// problem, while another customer, from the same address, is served.
func TestPortalCustomerRateLimit(t *testing.T) {
	srv := apitest.Start(t, apitest.SQLite, apitest.Config{Options: api.Options{PortalRate: 0.01, PortalBurst: 4}})
	busy, calm := portalSession(t, srv, "c-busy"), portalSession(t, srv, "c-calm")
	other := clientFrom(t, "127.0.0.2")
	get := func(client *http.Client, path, session string) apitest.Response {
		t.Helper()
		res, err := e2eSend(client, e2eRequest(t, srv, "GET", path, session, nil))
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	for i, c := range []*http.Client{http.DefaultClient, other, http.DefaultClient, other} {
		path := []string{"/v1/portal/me", "/v1/portal/catalog"}[i%2]
		if res := get(c, path, busy); res.Status != 200 {
			t.Fatalf("request %d of the burst (%s): %d %s", i+1, path, res.Status, res.Body)
		}
	}
	for _, c := range []*http.Client{http.DefaultClient, other} {
		res := get(c, "/v1/portal/me", busy)
		e2eProblem(t, res, 429, tally.EOVERLOADED)
		if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || s < 1 || s > 100 {
			t.Errorf("Retry-After %q, want the time until the next token", res.Header.Get("Retry-After"))
		}
	}
	if res := get(http.DefaultClient, "/v1/portal/me", calm); res.Status != 200 {
		t.Fatalf("another customer from the same address: %d %s", res.Status, res.Body)
	}
	// A made-up token is refused as before (401), not counted against the customer it names.
	if res := get(http.DefaultClient, "/v1/portal/me", "made-up"); res.Status != 401 {
		t.Fatalf("a made-up token: %d, want 401", res.Status)
	}
}

// TestPortalRateOffByDefault: the server without a portal rate (as api.Options' zero value) limits
// nothing; serve sets a default (--portal-rate).
func TestPortalRateOffByDefault(t *testing.T) {
	srv := apitest.Start(t, apitest.SQLite, apitest.Config{})
	for i := range 100 {
		if res := srv.Do("POST", "/v1/portal/session/verify", "", []byte(`{}`)); res.Status != 401 {
			t.Fatalf("request %d: %d, want 401", i+1, res.Status)
		}
	}
}
