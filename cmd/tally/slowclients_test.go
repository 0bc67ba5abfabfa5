package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// trickle writes prefix, then one byte of filler every interval, until the server closes the
// connection or the bound passes. It returns how long the server kept the connection, and false when
// the bound passed first.
func trickle(t *testing.T, addr, prefix string, interval, bound time.Duration) (time.Duration, bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	closed := make(chan struct{})
	go func() {
		// The server answers nothing or a 408 and closes: read until it does.
		io.Copy(io.Discard, conn)
		close(closed)
	}()
	if _, err := conn.Write([]byte(prefix)); err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for time.Since(start) < bound {
		select {
		case <-closed:
			return time.Since(start), true
		case <-tick.C:
			if _, err := conn.Write([]byte("a")); err != nil {
				<-closed
				return time.Since(start), true
			}
		}
	}
	return time.Since(start), false
}

// TestServeCutsSlowClients: a client that sends its headers a byte at a time (slowloris), or its body
// so, is disconnected by the server's read timeouts, while the server keeps answering others, even with
// a hundred such clients connected; a header block over the limit is refused with 431.
func TestServeCutsSlowClients(t *testing.T) {
	t.Parallel()
	s := startServe(t, "--db", "sqlite:"+filepath.Join(t.TempDir(), "tally.db"))
	addr := strings.TrimPrefix(s.base, "http://")

	// A hundred slowloris connections at once, and the server still answers.
	done := make(chan bool, 100)
	for range 100 {
		go func() {
			_, cut := trickle(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", 500*time.Millisecond, 2*time.Minute)
			done <- cut
		}()
	}
	time.Sleep(time.Second)
	if status, _, err := send(mustRequest(t, "GET", s.base+"/healthz")); err != nil || status != 200 {
		t.Fatalf("with 100 slow clients connected: %d %v", status, err)
	}
	for i := range 100 {
		if !<-done {
			t.Fatalf("slow client %d was still connected after two minutes", i)
		}
	}

	// Headers a byte at a time: cut by the read header timeout (5 s).
	if d, cut := trickle(t, addr, "POST /v1/ledger/balance/lookup HTTP/1.1\r\nHost: x\r\nX-Slow: ", 200*time.Millisecond, 2*time.Minute); !cut {
		t.Fatal("a client sending its headers a byte every 200 ms was still connected after two minutes")
	} else {
		t.Logf("slowloris headers: cut after %s", d.Round(100*time.Millisecond))
	}
	// The body a byte at a time: cut by the read timeout (30 s).
	if d, cut := trickle(t, addr, "POST /v1/ledger/balance/lookup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n", 200*time.Millisecond, 2*time.Minute); !cut {
		t.Fatal("a client sending its body a byte every 200 ms was still connected after two minutes")
	} else {
		t.Logf("slow body: cut after %s", d.Round(100*time.Millisecond))
	}

	// A header block over the limit (64 KiB).
	req := mustRequest(t, "GET", s.base+"/healthz")
	req.Header.Set("X-Big", strings.Repeat("a", 80<<10))
	if status, _, err := send(req); err != nil || status != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("80 KiB of headers: %d %v, want 431", status, err)
	}
	// Just under it is served.
	req = mustRequest(t, "GET", s.base+"/healthz")
	req.Header.Set("X-Big", strings.Repeat("a", 60<<10))
	if status, _, err := send(req); err != nil || status != 200 {
		t.Fatalf("60 KiB of headers: %d %v, want 200", status, err)
	}
}

func mustRequest(t *testing.T, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// TestServeAbuseFlags: the abuse limits' flags and their environment variables.
func TestServeAbuseFlags(t *testing.T) {
	c, err := parseServe(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.authFailures != 10 || c.authWindow != time.Minute || c.authLockout != time.Minute || c.clientRate != 10000 || c.clientBurst != 0 || c.hsts ||
		c.portalRate != 20 || c.portalBurst != 40 || len(c.trustedProxies) != 0 || c.forwardedHeader != "X-Forwarded-For" {
		t.Fatalf("defaults: %+v", c)
	}
	t.Setenv("TALLY_AUTH_FAILURES", "25")
	t.Setenv("TALLY_HSTS", "true")
	c, err = parseServe([]string{"--client-rate", "0", "--auth-lockout", "5m", "--auth-failure-window", "30s", "--client-burst", "7"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.authFailures != 25 || c.authLockout != 5*time.Minute || c.authWindow != 30*time.Second || c.clientRate != 0 || c.clientBurst != 7 || !c.hsts {
		t.Fatalf("set: %+v", c)
	}
	for _, bad := range [][]string{{"--auth-failures", "0"}, {"--client-rate", "-1"}, {"--auth-lockout", "0s"}, {"--auth-failure-window", "x"}} {
		if _, err := parseServe(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestServeTrustedProxyFlags: --trusted-proxies and --trusted-proxy-header, and their environment
// variables; a list or a header Tally cannot use stops serve at start rather than trust the wrong peer.
func TestServeTrustedProxyFlags(t *testing.T) {
	t.Setenv("TALLY_TRUSTED_PROXIES", " 10.0.0.0/8, 192.168.1.7 ,fd00::/8, ::ffff:172.16.0.1")
	t.Setenv("TALLY_PORTAL_RATE", "0")
	c, err := parseServe([]string{"--trusted-proxy-header", "forwarded", "--portal-burst", "0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"),
		netip.MustParsePrefix("fd00::/8"), netip.MustParsePrefix("172.16.0.1/32")}
	if !slices.Equal(c.trustedProxies, want) || c.forwardedHeader != "Forwarded" || c.portalRate != 0 || c.portalBurst != 0 {
		t.Fatalf("set: %v %q %d %d", c.trustedProxies, c.forwardedHeader, c.portalRate, c.portalBurst)
	}
	// A range of every address is accepted (a test bed may want it) but warned of.
	c, err = parseServe([]string{"--trusted-proxies", "10.0.0.0/8,0.0.0.0/0"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	logTrustedProxies(c, slog.New(slog.NewTextHandler(&logs, nil)))
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "cidr=0.0.0.0/0") {
		t.Errorf("no warning for 0.0.0.0/0:\n%s", logs.String())
	}
	for _, bad := range [][]string{
		{"--trusted-proxies", "10.0.0.0/33"}, {"--trusted-proxies", "proxy.internal"}, {"--trusted-proxies", "10.0.0.0/8;10.1.0.0/16"},
		{"--trusted-proxies", "fe80::1%eth0"}, {"--trusted-proxy-header", "X-Real-IP"}, {"--portal-rate", "-1"}, {"--portal-burst", "x"},
	} {
		if _, err := parseServe(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

// TestServeBehindTrustedProxy runs serve with the flags and checks that they reach the server: the
// portal session routes count each client the trusted proxy (here loopback) names on its own.
func TestServeBehindTrustedProxy(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	s := startServeLogged(t, slog.New(slog.NewJSONHandler(logs, nil)), "--db", "sqlite:"+filepath.Join(t.TempDir(), "tally.db"),
		"--trusted-proxies", "127.0.0.0/8", "--portal-rate", "1", "--portal-burst", "2")
	if want := `"msg":"trusted proxies","cidrs":"127.0.0.0/8","header":"X-Forwarded-For"`; !strings.Contains(logs.String(), want) {
		t.Errorf("the log does not say whom serve trusts (%s):\n%s", want, logs)
	}
	verify := func(client string) (int, string) {
		req := mustRequest(t, "POST", s.base+"/v1/portal/session/verify")
		req.Header.Set("X-Forwarded-For", "192.0.2.1, "+client)
		res, err := httpClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode, res.Header.Get("Retry-After")
	}
	for i := range 2 {
		if st, _ := verify("203.0.113.7"); st != 401 {
			t.Fatalf("request %d of the burst: %d, want 401 (no session)", i+1, st)
		}
	}
	// At 1 a second a token may come back between two requests of a slow machine: keep asking until
	// the bucket is empty, which 50 requests in a row reach unless each takes a second.
	limited := false
	for range 50 {
		st, after := verify("203.0.113.7")
		if st == 429 && after == "1" {
			limited = true
			break
		}
		if st != 401 {
			t.Fatalf("past the burst: %d, Retry-After %q; want 429 and 1", st, after)
		}
	}
	if !limited {
		t.Fatal("50 requests in a row at --portal-rate 1 were never refused")
	}
	if st, _ := verify("203.0.113.8"); st != 401 {
		t.Fatalf("another client behind the proxy: %d, want 401", st)
	}
}
