package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/postgres/pgtest"
	"github.com/tally-ledger/tally/sim"
)

// simTarget is a tally serve for the emulator, with a client allowed to create rewards.
type simTarget struct {
	db, base, id, secret string
}

// startSimTarget starts serve on the store named by kind (sqlite or postgres) with the extra flags.
func startSimTarget(t *testing.T, kind string, flags ...string) simTarget {
	t.Helper()
	db := tempDB(t)
	if kind == "postgres" {
		db = pgtest.URL(t)
		t.Setenv("TALLY_CUSTOMER_SECRET", "sim-test-customer-secret-0123456789")
		t.Setenv("TALLY_LEDGER_KEY", tally.GenerateLedgerKey())
	}
	id, secret := createClient(t, db, "ledger:read,ledger:write,admin")
	s := startServe(t, append([]string{"--db", db}, flags...)...)
	return simTarget{db: db, base: s.base, id: id, secret: secret}
}

// runSimJSON runs `tally sim --json` and returns its report and the command's error.
func runSimJSON(t *testing.T, target, id, secret string, args ...string) (sim.Report, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	all := append([]string{"sim", "--target", target, "--client-id", id, "--client-secret", secret, "--json"}, args...)
	err := run(context.Background(), all, &stdout, &stderr)
	var rep sim.Report
	if jerr := json.Unmarshal(stdout.Bytes(), &rep); jerr != nil {
		t.Fatalf("tally sim printed no report (%v; err %v):\n%s\nstderr: %s", jerr, err, stdout.String(), stderr.String())
	}
	return rep, err
}

// invariant finds an invariant of the report by name.
func invariant(t *testing.T, rep sim.Report, name string) sim.Invariant {
	t.Helper()
	for _, inv := range rep.Invariants {
		if inv.Name == name {
			return inv
		}
	}
	t.Fatalf("the report has no invariant %q: %+v", name, rep.Invariants)
	return sim.Invariant{}
}

// TestSimInvariantsHold runs a short emulation with 30% duplicate deliveries against serve on each store,
// and with a programme of other earning rules: every invariant holds, the ledger verifies, and the ledger
// holds one transaction per event that earned and per redemption acknowledged, whatever the duplicates.
func TestSimInvariantsHold(t *testing.T) {
	// Points the default rule does not give, some for voice calls over five minutes: the emulator must
	// learn what each event earned from the answers.
	programme := filepath.Join(t.TempDir(), "programme.json")
	if err := os.WriteFile(programme, []byte(`{"earning_rules": [
		{"name": "long-voice", "filter": "$.type = 'Voice' and $.interactingDurationMs > 300000", "points": 25},
		{"name": "sms", "filter": "$.type = 'SMS'", "points": 3},
		{"name": "chat", "filter": "$.type = 'WebChat' and $.state = 'closed'", "points": 5}
	]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name, store string
		serve       []string
	}{
		{"sqlite", "sqlite", nil},
		{"postgres", "postgres", nil},
		{"sqlite programme", "sqlite", []string{"--programme", programme}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tg := startSimTarget(t, tt.store, tt.serve...)
			rep, err := runSimJSON(t, tg.base, tg.id, tg.secret, "--events", "300", "--customers", "20", "--concurrency", "8",
				"--duplicates", "0.3", "--db", tg.db)
			if err != nil {
				t.Fatalf("tally sim: %v (failed: %v)", err, rep.Failed())
			}
			for _, inv := range rep.Invariants {
				if inv.Status != sim.Pass {
					t.Errorf("invariant %q: %s %s %v", inv.Name, inv.Status, inv.Detail, inv.Failures)
				}
			}
			if !rep.OK || rep.Events.Conversations != 300 {
				t.Fatalf("ok %t, %d conversations, want 300", rep.OK, rep.Events.Conversations)
			}
			if rep.Events.Duplicates == 0 || rep.Events.Simultaneous == 0 || rep.Events.Late == 0 || rep.Redeem.Pairs == 0 {
				t.Fatalf("the run sent no duplicates, or no simultaneous or late ones, or no redemptions: %+v %+v", rep.Events, rep.Redeem)
			}
			if rep.Events.Applied == 0 || rep.Redeem.Receipts == 0 {
				t.Fatalf("nothing earned or nothing redeemed: %+v %+v", rep.Events, rep.Redeem)
			}
			// Checked apart from the emulator's own book: the whole ledger (the run wrote everything in it)
			// holds one transaction per event that earned and per receipt, so no duplicate was counted.
			var v struct {
				Transactions int64 `json:"transactions"`
			}
			if err := json.Unmarshal([]byte(mustCLI(t, "verify", "--db", tg.db, "--json", "--quiet")), &v); err != nil {
				t.Fatal(err)
			}
			if want := rep.Events.Applied + rep.Redeem.Receipts; v.Transactions != want {
				t.Fatalf("the ledger holds %d transactions; %d events earned and %d redemptions were acknowledged",
					v.Transactions, rep.Events.Applied, rep.Redeem.Receipts)
			}
		})
	}
}

// TestSimTokenRotation runs the emulator on each store while its tokens expire under it: renewed at
// expires_in when honoured (serve issues one-second tokens), or renewed after the 401 that an expired
// token gets (a proxy refuses a token after some uses, as a server whose tokens expired does). No request
// is lost either way.
func TestSimTokenRotation(t *testing.T) {
	for _, store := range []string{"sqlite", "postgres"} {
		t.Run(store+"/expires_in", func(t *testing.T) {
			tg := startSimTarget(t, store, "--token-ttl", "1s")
			// The run lasts longer than a token: a length, not a speed.
			rep, err := runSimJSON(t, tg.base, tg.id, tg.secret, "--duration", "3s", "--customers", "10", "--concurrency", "4",
				"--honour-expires-in", "--db", tg.db)
			if err != nil {
				t.Fatalf("tally sim: %v (failed: %v)", err, rep.Failed())
			}
			if rep.Tokens.ExpiryRenewals == 0 || rep.Tokens.Fetches < 2 || rep.Outcomes["401"] != 0 {
				t.Fatalf("tokens %+v, %d answers 401: want renewals at expires_in and no 401", rep.Tokens, rep.Outcomes["401"])
			}
		})
		t.Run(store+"/401", func(t *testing.T) {
			tg := startSimTarget(t, store)
			const uses = 40
			var seen sync.Map // token -> *atomic.Int64
			var refused atomic.Int64
			proxy := proxyTo(t, tg.base, func(w http.ResponseWriter, r *http.Request, forward http.HandlerFunc) {
				tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
				if ok && !strings.HasPrefix(r.URL.Path, "/v1/portal/") {
					n, _ := seen.LoadOrStore(tok, new(atomic.Int64))
					if n.(*atomic.Int64).Add(1) > uses {
						refused.Add(1)
						w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="the token expired"`)
						http.Error(w, `{"status":401,"code":"unauthorized"}`, http.StatusUnauthorized)
						return
					}
				}
				forward(w, r)
			})
			rep, err := runSimJSON(t, proxy, tg.id, tg.secret, "--events", "300", "--customers", "10", "--concurrency", "4", "--db", tg.db)
			if err != nil {
				t.Fatalf("tally sim: %v (failed: %v)", err, rep.Failed())
			}
			if refused.Load() == 0 || rep.Tokens.Reauths == 0 || rep.Tokens.Fetches < 2 {
				t.Fatalf("%d requests refused by the proxy, tokens %+v: want renewals after 401", refused.Load(), rep.Tokens)
			}
			if inv := invariant(t, rep, sim.InvAnswered); inv.Status != sim.Pass {
				t.Fatalf("requests lost to the expired token: %+v", inv)
			}
		})
	}
}

// TestSimDetectsBrokenTarget puts a proxy between the emulator and serve that lies about one write: the
// emulator must exit non-zero and name the invariant that the lie breaks.
func TestSimDetectsBrokenTarget(t *testing.T) {
	tests := []struct {
		name string
		// tamper handles the tenth event delivery instead of forwarding it.
		tamper func(t *testing.T, w http.ResponseWriter, r *http.Request, body []byte, forward http.HandlerFunc)
		want   []string
	}{
		{
			name: "acknowledged but dropped",
			tamper: func(t *testing.T, w http.ResponseWriter, r *http.Request, body []byte, forward http.HandlerFunc) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusCreated)
				io.WriteString(w, `{"status":"applied","channel":"genesys","transaction_id":987654321,"kind":"accrual","amount":10}`)
			},
			want: []string{sim.InvAckMissing, sim.InvBalances},
		},
		{
			name: "applied twice under another key",
			tamper: func(t *testing.T, w http.ResponseWriter, r *http.Request, body []byte, forward http.HandlerFunc) {
				var ev map[string]any
				if err := json.Unmarshal(body, &ev); err != nil {
					http.Error(w, err.Error(), http.StatusBadRequest)
					return
				}
				// A new identity for the event, in whichever shape it came.
				for _, obj := range []any{ev, ev["detail"]} {
					m, _ := obj.(map[string]any)
					for _, k := range []string{"conversationId", "event_id"} {
						if _, ok := m[k]; ok {
							m[k] = "doubled-" + newTestID()
						}
					}
					if body, ok := m["eventBody"].(map[string]any); ok {
						body["conversationId"] = "doubled-" + newTestID()
					}
				}
				copyReq := r.Clone(r.Context())
				b, _ := json.Marshal(ev)
				copyReq.Body, copyReq.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
				rec := httptest.NewRecorder()
				forward(rec, copyReq)
				if rec.Code != http.StatusCreated {
					t.Errorf("the doubled event was answered %d %s", rec.Code, rec.Body)
				}
				r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
				forward(w, r)
			},
			want: []string{sim.InvUnacked, sim.InvBalances},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tg := startSimTarget(t, "sqlite")
			var events atomic.Int64
			proxy := proxyTo(t, tg.base, func(w http.ResponseWriter, r *http.Request, forward http.HandlerFunc) {
				if r.URL.Path != "/v1/ledger/transaction/process" {
					forward(w, r)
					return
				}
				body, ok := peekBody(w, r)
				if !ok {
					return
				}
				// Events only (not the agent's redemptions, which carry an idempotency_key).
				if !bytes.Contains(body, []byte(`"idempotency_key"`)) && events.Add(1) == 10 {
					tt.tamper(t, w, r, body, forward)
					return
				}
				forward(w, r)
			})
			// Web chats only: every event earns, so a lost or doubled one changes a balance.
			rep, err := runSimJSON(t, proxy, tg.id, tg.secret, "--events", "100", "--customers", "10", "--concurrency", "4",
				"--duplicates", "0", "--channels", "webchat")
			var exit *exitError
			if !errors.As(err, &exit) || exit.code == 0 || rep.OK {
				t.Fatalf("tally sim against a lying target returned %v, ok %t", err, rep.OK)
			}
			for _, name := range tt.want {
				if inv := invariant(t, rep, name); inv.Status != sim.Fail || !strings.Contains(err.Error(), name) {
					t.Errorf("invariant %q: %s %v; error %q", name, inv.Status, inv.Failures, err)
				}
			}
		})
	}
}

// proxyTo starts a reverse proxy to base whose handler decides what to forward; it returns its URL.
func proxyTo(t *testing.T, base string, handle func(w http.ResponseWriter, r *http.Request, forward http.HandlerFunc)) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { handle(w, r, rp.ServeHTTP) }))
	t.Cleanup(srv.Close)
	return srv.URL
}

// peekBody reads a proxied request's body and puts it back for forwarding. It answers 400 itself, and
// returns false, when the body cannot be read.
func peekBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return body, true
}

var testIDs atomic.Int64

// newTestID is a fresh identifier for a doubled event.
func newTestID() string { return strconv.FormatInt(testIDs.Add(1), 10) }

// TestSimHonoursRetryAfter puts a proxy in front of serve that refuses some requests with 429 or 503 and
// Retry-After: 1, once each: the emulator counts them, sends each again no sooner than it was told, and
// loses nothing.
func TestSimHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	tg := startSimTarget(t, "sqlite")
	var (
		mu      sync.Mutex
		refused = map[string]time.Time{} // request body -> when it was refused
		early   []string
		n       atomic.Int64
	)
	proxy := proxyTo(t, tg.base, func(w http.ResponseWriter, r *http.Request, forward http.HandlerFunc) {
		if r.Method != "POST" || !strings.HasPrefix(r.URL.Path, "/v1/ledger/") {
			forward(w, r)
			return
		}
		body, ok := peekBody(w, r)
		if !ok {
			return
		}
		mu.Lock()
		at, seen := refused[string(body)]
		refuse := !seen && n.Add(1)%7 == 0
		if refuse {
			refused[string(body)] = time.Now()
		}
		if seen && time.Since(at) < time.Second {
			early = append(early, r.URL.Path)
		}
		mu.Unlock()
		if refuse {
			status := http.StatusTooManyRequests
			if strings.HasSuffix(r.URL.Path, "/lookup") {
				status = http.StatusServiceUnavailable
			}
			w.Header().Set("Retry-After", "1")
			http.Error(w, `{"status":429}`, status)
			return
		}
		forward(w, r)
	})
	// No duplicates: a duplicate of the same body is not a retry.
	rep, err := runSimJSON(t, proxy, tg.id, tg.secret, "--events", "150", "--customers", "10", "--concurrency", "4", "--duplicates", "0", "--db", tg.db)
	if err != nil {
		t.Fatalf("tally sim: %v (failed: %v)", err, rep.Failed())
	}
	if rep.Outcomes["429"] == 0 || rep.Outcomes["503"] == 0 || rep.RetryAfter == 0 {
		t.Fatalf("outcomes %v, %d Retry-After waits: want 429s and 503s counted and waited for", rep.Outcomes, rep.RetryAfter)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(early) > 0 {
		t.Fatalf("%d requests sent again before their Retry-After passed: %v", len(early), early)
	}
}

// TestSimProgressBar: the bar is drawn on request, ends at 100%, and is not drawn on a writer that is not
// a terminal unless asked.
func TestSimProgressBar(t *testing.T) {
	if isTerminal(&bytes.Buffer{}) {
		t.Fatal("a buffer is taken for a terminal")
	}
	var buf bytes.Buffer
	bar := progressBar(&buf)
	bar(0.5, 10, 20)
	bar(1, 20, 40)
	bar(1, 20, 40) // after the end: nothing more
	out := buf.String()
	if !strings.Contains(out, "[###############...............]  50%  10 conversations  20 requests") ||
		strings.Count(out, "100%") != 1 || !strings.HasSuffix(out, "checking the invariants...\n") {
		t.Fatalf("progress bar:\n%q", out)
	}
}
