package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/postgres/pgtest"
	"github.com/tally-ledger/tally/sqlite"
)

// syncBuffer is a bytes.Buffer that serve may write while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runningServe is a `tally serve` running in the test process.
type runningServe struct {
	base   string // http://127.0.0.1:PORT
	out    *syncBuffer
	cancel context.CancelFunc
	ready  chan string
	done   chan error
	once   sync.Once
	err    error
}

// startServe runs serve with the flags, on a free loopback port, and returns once it listens. It is
// stopped when the test ends, unless the test stopped it first.
func startServe(t *testing.T, args ...string) *runningServe {
	t.Helper()
	s := launchServe(t, args...)
	s.waitReady(t)
	return s
}

// launchServe starts serve without waiting for it to listen, so that several can start at once.
func launchServe(t *testing.T, args ...string) *runningServe {
	t.Helper()
	// Checkpoints and the spool go to the test's own directory, never to the working directory (the
	// package's source).
	dir := t.TempDir()
	defaults := []string{"--addr", "127.0.0.1:0", "--checkpoint-file", filepath.Join(dir, "checkpoints.jsonl"),
		"--spool", filepath.Join(dir, "tally.spool")}
	cfg, err := parseServe(append(defaults, args...), io.Discard)
	if err != nil {
		t.Fatalf("serve flags: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &runningServe{out: &syncBuffer{}, cancel: cancel, done: make(chan error, 1), ready: make(chan string, 1)}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	go func() { s.done <- serve(ctx, cfg, log, s.out, s.ready) }()
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s
}

// waitReady waits until serve listens.
func (s *runningServe) waitReady(t *testing.T) {
	t.Helper()
	select {
	case addr := <-s.ready:
		s.base = "http://" + addr
	case err := <-s.done:
		s.done <- err // for stop
		t.Fatalf("serve stopped before it was ready: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("serve was not ready within a minute")
	}
}

// stop cancels serve's context, as SIGTERM does, and waits for serve to return.
func (s *runningServe) stop() error {
	s.once.Do(func() {
		s.cancel()
		select {
		case s.err = <-s.done:
		case <-time.After(2 * time.Minute):
			s.err = errors.New("serve did not return within two minutes of being stopped")
		}
	})
	return s.err
}

// cli runs the tally command line and returns what it printed on standard output.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), args, &stdout, &stderr)
	if err != nil && stderr.Len() > 0 {
		t.Logf("tally %s: stderr: %s", strings.Join(args, " "), stderr.String())
	}
	return stdout.String(), err
}

// mustCLI is cli for commands that must succeed.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, err := cli(t, args...)
	if err != nil {
		t.Fatalf("tally %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// createClient creates an OAuth client with `tally clients create --json`.
func createClient(t *testing.T, db, scopes string) (id, secret string) {
	t.Helper()
	out := mustCLI(t, "clients", "create", "--db", db, "--name", "genesys", "--scopes", scopes, "--json")
	var c struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.ID == "" || c.Secret == "" {
		t.Fatalf("clients create printed %q: %v", out, err)
	}
	return c.ID, c.Secret
}

// httpClient talks to the test servers; its timeout is generous, since it bounds a hang, not a speed.
var httpClient = &http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// fetchToken gets an access token with client credentials.
func fetchToken(t *testing.T, base, id, secret string) string {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	status, body, err := send(req)
	if err != nil {
		t.Fatal(err)
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if status != 200 || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("token: %d %s", status, body)
	}
	return tok.AccessToken
}

// send does a request and reads the whole answer.
func send(req *http.Request) (int, []byte, error) {
	res, err := httpClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}

// postJSON sends a JSON body with a bearer token.
func postJSON(base, path, token string, v any) (int, []byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequest("POST", base+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	return send(req)
}

// lookup asks a server for a customer's balance.
func lookup(t *testing.T, base, token, customer string) map[string]any {
	t.Helper()
	status, body, err := postJSON(base, "/v1/ledger/balance/lookup", token, map[string]string{"customer_hash": customer, "channel": "webchat", "request_id": "r"})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if status != 200 || json.Unmarshal(body, &m) != nil {
		t.Fatalf("lookup %s: %d %s", customer, status, body)
	}
	return m
}

// accrualRequest is an explicit accrual of the transaction endpoint.
func accrualRequest(key, customer string, amount int64) map[string]any {
	return map[string]any{"idempotency_key": key, "channel": "test", "customer_hash": customer, "kind": "accrual", "amount": amount, "reason": "test"}
}

// TestServeDemo runs `tally serve --demo` and follows the instructions it prints.
func TestServeDemo(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tally.db")
	s := startServe(t, "--db", "sqlite:"+path, "--demo")
	out := s.out.String()
	for _, want := range []string{"client_id=", "client_secret=", s.base + "/#session=", "tally: listening on " + s.base, "balance 3000 points", "saved in " + path + ".demo.env"} {
		if !strings.Contains(out, want) {
			t.Fatalf("demo output lacks %q:\n%s", want, out)
		}
	}
	id, secret := demoCredentials(t, out)
	if env := demoEnvFile(t, path+".demo.env"); env != (demoEnv{ClientID: id, ClientSecret: secret, URL: s.base}) {
		t.Fatalf("the demo credentials file holds %+v; the output says %s %s at %s", env, id, secret, s.base)
	}
	tok := fetchToken(t, s.base, id, secret)
	if m := lookup(t, s.base, tok, demoCustomer); m["balance"] != float64(3000) || m["stale"] != false {
		t.Fatalf("demo customer: %v", m)
	}
	session := regexp.MustCompile(`/#session=([^&\s]+)&customer=` + demoCustomer).FindStringSubmatch(out)[1]
	req, _ := http.NewRequest("GET", s.base+"/v1/portal/me", nil)
	req.Header.Set("Authorization", "Bearer "+session)
	if status, body, err := send(req); err != nil || status != 200 || !strings.Contains(string(body), "3000") {
		t.Fatalf("portal with the printed session: %d %s %v", status, body, err)
	}
	// The printed URL's page embeds the widget with the integration guide's init call, and the widget's
	// script is there. (The browser test in api/ redeems through it.)
	page, _ := http.NewRequest("GET", s.base+"/", nil)
	status, body, err := send(page)
	if err != nil || status != 200 {
		t.Fatalf("GET /: %d %v", status, err)
	}
	for _, want := range []string{`<script src="/widget/v2.1.0/bundle.min.js">`, "LoyaltyWidget.init({", "container: 'loyalty-portal'", "apiUrl: location.origin + '/v1/portal'", "oauthToken: session"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("the demo page lacks %q", want)
		}
	}
	bundle, _ := http.NewRequest("GET", s.base+"/widget/v2.1.0/bundle.min.js", nil)
	if status, body, err := send(bundle); err != nil || status != 200 || !strings.Contains(string(body), "LoyaltyWidget") {
		t.Fatalf("the widget's script: %d %v", status, err)
	}
}

// TestServeDemoAgain starts --demo three times on one database, as a user trying Tally does: the
// second start keeps the client, the catalog and the points as the first run left them and prints the
// real balance; the third, with the credentials file deleted, makes a new client and says that the old
// one was revoked.
func TestServeDemoAgain(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tally.db")
	envPath := path + ".demo.env"
	db := "sqlite:" + path
	s := startServe(t, "--db", db, "--demo")
	id, secret := demoCredentials(t, s.out.String())
	tok := fetchToken(t, s.base, id, secret)
	// Spend points and edit the catalog, as someone trying the demo would.
	spend := map[string]any{"idempotency_key": "spend-1", "channel": "test", "customer_hash": demoCustomer, "kind": "redemption", "amount": 500, "reason": "test"}
	if status, body, err := postJSON(s.base, "/v1/ledger/transaction/process", tok, spend); err != nil || status != 201 {
		t.Fatalf("redemption: %d %s %v", status, body, err)
	}
	edited := `{"name":"Free coffee","point_cost":500,"inventory":7,"fulfillment_method":"email","active":false}`
	req, _ := http.NewRequest("PUT", s.base+"/v1/catalog/rewards/RWD-1001", strings.NewReader(edited))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	if status, body, err := send(req); err != nil || status != 200 {
		t.Fatalf("edit a reward: %d %s %v", status, body, err)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	s2 := startServe(t, "--db", db, "--demo")
	out := s2.out.String()
	if id2, secret2 := demoCredentials(t, out); id2 != id || secret2 != secret {
		t.Fatalf("the second --demo printed client %s, not the first one's %s:\n%s", id2, id, out)
	}
	for _, want := range []string{"balance 2500 points", "kept from " + envPath} {
		if !strings.Contains(out, want) {
			t.Fatalf("second demo output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "revoked") {
		t.Fatalf("the second --demo revoked something:\n%s", out)
	}
	tok = fetchToken(t, s2.base, id, secret)
	if m := lookup(t, s2.base, tok, demoCustomer); m["balance"] != float64(2500) {
		t.Fatalf("demo customer after a second --demo: %v", m)
	}
	req, _ = http.NewRequest("GET", s2.base+"/v1/catalog/rewards/RWD-1001", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	status, body, err := send(req)
	var rw struct {
		Inventory *int64 `json:"inventory"`
		Active    bool   `json:"active"`
	}
	if err != nil || status != 200 || json.Unmarshal(body, &rw) != nil || rw.Inventory == nil || *rw.Inventory != 7 || rw.Active {
		t.Fatalf("the edited reward after a second --demo: %d %s %v", status, body, err)
	}
	if err := s2.stop(); err != nil {
		t.Fatal(err)
	}

	if err := os.Remove(envPath); err != nil {
		t.Fatal(err)
	}
	s3 := startServe(t, "--db", db, "--demo")
	out = s3.out.String()
	id3, secret3 := demoCredentials(t, out)
	if id3 == id {
		t.Fatalf("without its credentials file, the third --demo printed the old client:\n%s", out)
	}
	if !strings.Contains(out, "revoked the earlier demo client(s) "+id) || !strings.Contains(out, "balance 2500 points") {
		t.Fatalf("the third --demo does not say that it revoked %s, or the balance:\n%s", id, out)
	}
	if env := demoEnvFile(t, envPath); env.ClientID != id3 || env.ClientSecret != secret3 {
		t.Fatalf("the new credentials file holds %+v, not %s", env, id3)
	}
	req, _ = http.NewRequest("POST", s3.base+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	if status, body, err := send(req); err != nil || status != 401 {
		t.Fatalf("token for the revoked demo client: %d %s %v", status, body, err)
	}
}

// TestServeDemoAgainPostgres starts --demo twice on one PostgreSQL database, which has no file beside it
// to keep the demo client's secret: the second start makes a new client and says that it revoked the
// first, and the points are credited once.
func TestServeDemoAgainPostgres(t *testing.T) {
	db := pgtest.URL(t)
	t.Setenv("TALLY_CUSTOMER_SECRET", "demo-test-customer-secret-0123456789")
	t.Setenv("TALLY_LEDGER_KEY", tally.GenerateLedgerKey())
	s := startServe(t, "--db", db, "--demo")
	id, _ := demoCredentials(t, s.out.String())
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	s2 := startServe(t, "--db", db, "--demo")
	out := s2.out.String()
	id2, secret2 := demoCredentials(t, out)
	if id2 == id || !strings.Contains(out, "revoked the earlier demo client(s) "+id) || !strings.Contains(out, "balance 3000 points") {
		t.Fatalf("second --demo on PostgreSQL (first client %s):\n%s", id, out)
	}
	if m := lookup(t, s2.base, fetchToken(t, s2.base, id2, secret2), demoCustomer); m["balance"] != float64(3000) {
		t.Fatalf("demo customer after a second --demo: %v", m)
	}
}

// demoEnvFile reads the demo credentials file, which must be private to its owner.
func demoEnvFile(t *testing.T, path string) demoEnv {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("%s has mode %v, want 0600", path, fi.Mode().Perm())
	}
	env, err := readDemoEnv(path)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func demoCredentials(t *testing.T, out string) (id, secret string) {
	t.Helper()
	m := regexp.MustCompile(`client_id=(\S+)\s+client_secret=(\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no credentials in the demo output:\n%s", out)
	}
	return m[1], m[2]
}

// shutdownAnswer is what one accrual sent during the shutdown test got.
type shutdownAnswer struct {
	key, customer string
	amount        int64
	status        int
	hash          string // the customer hash a 201 named
	err           error
}

// TestServeGracefulShutdown stops serve, as SIGTERM does, while many accruals are in flight: every
// accrual answered 201 is in the ledger after a restart, none that failed is, nothing answers other than
// 201 or a refused connection, and the ledger verifies.
func TestServeGracefulShutdown(t *testing.T) {
	t.Parallel()
	const (
		writers   = 32
		perWriter = 500 // a bound, not a target: writers stop at their first refused connection
		customers = 4
		stopAfter = 200 // accruals acknowledged before the stop
	)
	db := "sqlite:" + filepath.Join(t.TempDir(), "tally.db")
	id, secret := createClient(t, db, "ledger:read,ledger:write")
	s := startServe(t, "--db", db)
	tok := fetchToken(t, s.base, id, secret)

	answers := make([][]shutdownAnswer, writers)
	var created atomic.Int64
	enough := make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				a := shutdownAnswer{key: fmt.Sprintf("sd-%d-%d", w, i), customer: fmt.Sprintf("sd-customer-%d", w%customers), amount: int64(1 + i%9)}
				var body []byte
				a.status, body, a.err = postJSON(s.base, "/v1/ledger/transaction/process", tok, accrualRequest(a.key, a.customer, a.amount))
				if a.status == 201 {
					var r struct {
						CustomerHash string `json:"customer_hash"`
					}
					_ = json.Unmarshal(body, &r)
					a.hash = strings.TrimPrefix(r.CustomerHash, "th_")
					if created.Add(1) == stopAfter {
						once.Do(func() { close(enough) })
					}
				} else if a.err == nil {
					a.err = fmt.Errorf("status %d: %s", a.status, body)
				}
				answers[w] = append(answers[w], a)
				if a.err != nil {
					return
				}
			}
		})
	}
	select {
	case <-enough:
	case <-time.After(2 * time.Minute):
		t.Fatalf("only %d accruals acknowledged in two minutes", created.Load())
	}
	if err := s.stop(); err != nil {
		t.Fatalf("serve returned %v after a graceful stop", err)
	}
	wg.Wait()

	// After serve returned, nothing listens: a request cannot connect, so it cannot be half applied.
	_, _, err := postJSON(s.base, "/v1/ledger/transaction/process", tok, accrualRequest("after-stop", "sd-customer-0", 1))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("request after shutdown: %v, want connection refused", err)
	}

	acked := map[string]bool{}
	want := map[string]int64{}
	hashes := map[string]string{}
	var failed []shutdownAnswer
	for _, list := range answers {
		for _, a := range list {
			switch {
			case a.status == 201:
				acked[a.key] = true
				want[a.customer] += a.amount
				hashes[a.customer] = a.hash
			case a.status != 0:
				t.Fatalf("accrual %s during shutdown: %v (want 201 or no connection)", a.key, a.err)
			default:
				failed = append(failed, a)
			}
		}
	}
	t.Logf("%d accruals acknowledged, %d refused by the stopped server", len(acked), len(failed))

	// Restart on the same database: the balances are what was acknowledged, through the API.
	s2 := startServe(t, "--db", db)
	tok = fetchToken(t, s2.base, id, secret)
	for c := range customers {
		customer := fmt.Sprintf("sd-customer-%d", c)
		if m := lookup(t, s2.base, tok, customer); m["balance"] != float64(want[customer]) || m["stale"] != false {
			t.Fatalf("after restart %s has %v, acknowledged accruals sum to %d", customer, m["balance"], want[customer])
		}
	}
	if err := s2.stop(); err != nil {
		t.Fatal(err)
	}

	// And in the database itself: each acknowledged key once, no refused one, and a sound ledger.
	ctx := context.Background()
	store, err := sqlite.Open(ctx, strings.TrimPrefix(db, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := ledger.Verify(ctx, store.Audit(), ledger.VerifyOptions{Key: mustKeyFile(t, strings.TrimPrefix(db, "sqlite:"))}); err != nil {
		t.Fatalf("verify after shutdown: %v", err)
	}
	inLedger := map[string]int{}
	for customer, hash := range hashes {
		acct, err := store.Account(ctx, hash)
		if err != nil || acct.Balance != want[customer] {
			t.Fatalf("account of %s: %+v %v, want balance %d", customer, acct, err, want[customer])
		}
		txs, err := store.History(ctx, hash, 0, 1_000_000)
		if err != nil {
			t.Fatal(err)
		}
		for _, tx := range txs {
			inLedger[tx.IdempotencyKey]++
		}
	}
	for key := range acked {
		if inLedger[key] != 1 {
			t.Fatalf("acknowledged accrual %s is in the ledger %d times", key, inLedger[key])
		}
	}
	for _, a := range failed {
		if inLedger[a.key] != 0 {
			t.Fatalf("accrual %s failed (%v) but is in the ledger", a.key, a.err)
		}
	}
	if n := len(inLedger); n != len(acked) {
		t.Fatalf("the ledger holds %d keys, %d were acknowledged", n, len(acked))
	}
}

// TestRunServe goes through the program's entry point, as main does: run serves until its context ends
// (SIGTERM), then returns without error.
func TestRunServe(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--db", tempDB(t)}, out, io.Discard)
	}()
	listening := regexp.MustCompile(`tally: listening on (http://\S+)`)
	var base string
	for i := 0; base == ""; i++ {
		if m := listening.FindStringSubmatch(out.String()); m != nil {
			base = m[1]
			break
		}
		select {
		case err := <-done:
			t.Fatalf("run returned before listening: %v\n%s", err, out)
		default:
		}
		if i == 1000 {
			t.Fatalf("run did not listen after %d checks:\n%s", i, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		req, _ := http.NewRequest("GET", base+path, nil)
		if status, body, err := send(req); err != nil || status != 200 {
			t.Fatalf("GET %s: %d %s %v", path, status, body, err)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run after cancel: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("run did not return within two minutes of its context ending")
	}
}
