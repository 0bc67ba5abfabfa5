package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// TestLogsHoldNoSecrets runs a whole day of a real server, with every request logged at the most
// verbose level: client secrets (right and wrong), access tokens, portal session tokens and raw customer
// ids go in, through successes and failures alike, and none of them may come out in the log.
func TestLogsHoldNoSecrets(t *testing.T) {
	t.Parallel()
	db := "sqlite:" + filepath.Join(t.TempDir(), "tally.db")
	id, secret := createClient(t, db, "ledger:read,ledger:write,admin")
	logs := &syncBuffer{}
	s := startServeLogged(t, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		"--db", db, "--demo", "--log-requests", "--auth-failures", "3")

	secrets := map[string]string{"client secret": secret}
	customers := []string{"ada.lovelace@example.com", "+44 20 7946 0958", "c-raw-7f3e9a1b2c", demoCustomer}
	for i, c := range customers {
		secrets[fmt.Sprintf("customer id %d", i)] = c
	}

	// Wrong secrets, until the client id is locked out, and one more.
	for i := range 4 {
		wrong := fmt.Sprintf("wrong-secret-%d-%s", i, strings.Repeat("x", 20))
		secrets[fmt.Sprintf("wrong secret %d", i)] = wrong
		req := tokenRequest(s.base, id, wrong)
		if status, _, err := send(req); err != nil || status != map[bool]int{true: 429, false: 401}[i == 3] {
			t.Fatalf("wrong secret %d: %d %v", i, status, err)
		}
	}
	// This address is locked out too now (3 failures), for a minute: the rest of the day runs on a second
	// replica on the same database, which counts its own failures (no Redis), with a second client.
	id2, secret2 := createClient(t, db, "ledger:read,ledger:write,admin")
	secrets["second client secret"] = secret2
	s2 := startServeLogged(t, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		"--db", db, "--log-requests")
	tok := fetchToken(t, s2.base, id2, secret2)
	secrets["access token"] = tok
	secrets["access token signature"] = tok[strings.LastIndex(tok, ".")+1:]

	for i, c := range customers {
		status, body, err := postJSON(s2.base, "/v1/ledger/transaction/process", tok, accrualRequest(fmt.Sprintf("acc-%d", i), c, 5000))
		if err != nil || status != 201 {
			t.Fatalf("accrual to customer %d: %d %s %v", i, status, body, err)
		}
		// A malformed one, with the raw id inside, fails and must not echo it into the log.
		req, _ := http.NewRequest("POST", s2.base+"/v1/ledger/transaction/process", strings.NewReader(`{"idempotency_key":"x","customer_hash":"`+c+`","kind":"accrual","amount":-1,"channel":"t","reason":"r","reason":"dup"}`))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		if status, body, err := send(req); err != nil || status < 400 || status >= 500 {
			t.Fatalf("a malformed accrual: %d %s %v", status, body, err)
		}
		// A Genesys-shaped event names the customer in user_id.
		ev := map[string]string{"event_id": fmt.Sprintf("ev-%d", i), "interaction_id": "i", "type": "WebChat", "state": "closed", "user_id": c, "channel": "webchat", "timestamp": "2026-11-20T14:03:22.481Z"}
		if status, body, err := postJSON(s2.base, "/v1/ledger/transaction/process", tok, ev); err != nil || status >= 300 {
			t.Fatalf("an event of customer %d: %d %s %v", i, status, body, err)
		}
	}
	// Lookups, and the portal with the session token a lookup gives.
	for i, c := range customers {
		m := lookup(t, s2.base, tok, c)
		session, _ := m["session_token"].(string)
		if session == "" {
			t.Fatalf("lookup %d gave no session token: %v", i, m)
		}
		secrets[fmt.Sprintf("session token %d", i)] = session
		req, _ := http.NewRequest("GET", s2.base+"/v1/portal/me", nil)
		req.Header.Set("Authorization", "Bearer "+session)
		if status, body, err := send(req); err != nil || status != 200 {
			t.Fatalf("portal of customer %d: %d %s %v", i, status, body, err)
		}
		redeem := map[string]any{"customer_hash": c, "reward_id": "RWD-8842", "point_cost": 2500, "fulfillment_method": "email", "idempotency_key": fmt.Sprintf("r-%d", i)}
		if status, body, err := postJSON(s2.base, "/v1/portal/redeem", session, redeem); err != nil || status != 201 && status != 200 {
			t.Fatalf("redemption of customer %d: %d %s %v", i, status, body, err)
		}
		// Someone else's customer id with this session, and more than the balance: both refused.
		redeem["customer_hash"], redeem["idempotency_key"] = customers[(i+1)%len(customers)], fmt.Sprintf("r-other-%d", i)
		if status, _, err := postJSON(s2.base, "/v1/portal/redeem", session, redeem); err != nil || status < 400 || status >= 500 {
			t.Fatalf("a redemption for another customer: %d %v", status, err)
		}
		// A session token cut short, and an access token used as a session.
		for _, bad := range []string{session[:len(session)-3], tok} {
			req, _ := http.NewRequest("GET", s2.base+"/v1/portal/me", nil)
			req.Header.Set("Authorization", "Bearer "+bad)
			if status, _, err := send(req); err != nil || status != 401 {
				t.Fatalf("a bad session: %d %v", status, err)
			}
		}
	}
	// A forged access token, and a session token used as an access token.
	for _, bad := range []string{tok[:len(tok)-4] + "AAAA", secrets["session token 0"]} {
		status, _, err := postJSON(s2.base, "/v1/ledger/balance/lookup", bad, map[string]string{"customer_hash": customers[0], "channel": "c", "request_id": "r"})
		if err != nil || status != 401 {
			t.Fatalf("a bad access token: %d %v", status, err)
		}
	}
	// Form-field client authentication with a wrong secret (the secret in the body).
	wrong := "form-wrong-secret-0123456789abcdef"
	secrets["form wrong secret"] = wrong
	req, _ := http.NewRequest("POST", s2.base+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}, "client_id": {id2}, "client_secret": {wrong}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if status, _, err := send(req); err != nil || status != 401 {
		t.Fatalf("a wrong form secret: %d %v", status, err)
	}

	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if err := s2.stop(); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if !strings.Contains(out, `"msg":"request"`) || !strings.Contains(out, "locked out") {
		t.Fatalf("the log lacks the request lines or the lockout; the test proves nothing:\n%s", out)
	}
	// Three failures logged on the first replica (the fourth attempt, locked out, is not even examined),
	// one on the second; the lockout logged once for the client id and once for the address.
	if n := strings.Count(out, "client authentication failed"); n != 4 {
		t.Errorf("%d failed authentications logged, want 3 + 1", n)
	}
	if n := strings.Count(out, "locked out"); n != 2 {
		t.Errorf("%d lockouts logged, want 2 (the client id and the address, once each)", n)
	}
	for what, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("the log holds the %s (%q)", what, s)
		}
		// Escaped in JSON, a + becomes \u002b.
		if esc, _ := json.Marshal(s); bytes.Contains([]byte(out), esc[1:len(esc)-1]) {
			t.Errorf("the log holds the %s, JSON-escaped", what)
		}
	}
	if t.Failed() {
		t.Logf("log:\n%s", out)
	}
}

// tokenRequest is a client credentials request with Basic authentication.
func tokenRequest(base, id, secret string) *http.Request {
	req, _ := http.NewRequest("POST", base+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	return req
}

// startServeLogged is startServe with the server's log going to log.
func startServeLogged(t *testing.T, log *slog.Logger, args ...string) *runningServe {
	t.Helper()
	defaults := []string{"--addr", "127.0.0.1:0", "--checkpoint-file", filepath.Join(t.TempDir(), "checkpoints.jsonl")}
	cfg, err := parseServe(append(defaults, args...), io.Discard)
	if err != nil {
		t.Fatalf("serve flags: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &runningServe{out: &syncBuffer{}, cancel: cancel, done: make(chan error, 1), ready: make(chan string, 1)}
	go func() { s.done <- serve(ctx, cfg, log, s.out, s.ready) }()
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	s.waitReady(t)
	return s
}
