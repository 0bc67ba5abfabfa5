// Package reliability holds fault tests that run the real tally binary against real PostgreSQL servers
// on loopback and break them: SIGKILL of the database, of its primary (failover to a synchronous
// standby), of a tally replica, and a store slower than the deadlines. Each test is bounded in time and
// ends every process it starts. RELIABILITY.md lists what they prove and how to rerun them.
package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-ledger/tally"
)

// tallyBin is the tally binary TestMain builds once for every test.
var tallyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tally-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	tallyBin = filepath.Join(dir, "tally")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	build := exec.CommandContext(ctx, "go", "build", "-o", tallyBin, "github.com/tally-ledger/tally/cmd/tally")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	err = build.Run()
	cancel()
	if err != nil {
		fmt.Fprintln(os.Stderr, "build tally:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// deployment is what every process of one test shares: the database, the secrets, a client.
type deployment struct {
	t        *testing.T
	db       string // --db
	env      []string
	dir      string
	clientID string
	secret   string
}

// newDeployment migrates db and creates an OAuth client with every scope.
func newDeployment(t *testing.T, db string) *deployment {
	t.Helper()
	d := &deployment{t: t, db: db, dir: t.TempDir()}
	d.env = append(os.Environ(),
		"TALLY_CUSTOMER_SECRET=reliability-customer-secret-0123456789",
		"TALLY_LEDGER_KEY="+tally.GenerateLedgerKey(),
		"TALLY_DATABASE_URL=", "TALLY_NATS_URL=", "TALLY_REDIS_URL=",
	)
	d.mustCLI("migrate", "--db", db)
	out := d.mustCLI("clients", "create", "--db", db, "--name", "reliability", "--scopes", "ledger:read,ledger:write,admin", "--json")
	var c struct {
		ID     string `json:"client_id"`
		Secret string `json:"client_secret"`
	}
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.ID == "" {
		t.Fatalf("clients create printed %q: %v", out, err)
	}
	d.clientID, d.secret = c.ID, c.Secret
	return d
}

// cli runs the tally binary with the deployment's environment, bounded to two minutes.
func (d *deployment) cli(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tallyBin, args...)
	cmd.Env = d.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("tally %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), err
}

func (d *deployment) mustCLI(args ...string) string {
	d.t.Helper()
	out, err := d.cli(args...)
	if err != nil {
		d.t.Fatal(err)
	}
	return out
}

// verify runs `tally verify` on url and fails the test unless it passes.
func (d *deployment) verify(url string) string {
	d.t.Helper()
	return d.mustCLI("verify", "--db", url, "--quiet")
}

// server is one `tally serve` process.
type server struct {
	d    *deployment
	name string
	args []string
	addr string
	base string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *lockedBuffer
}

// startServer starts `tally serve` on a free loopback port with the deployment's database; extra
// flags come after the defaults. It is killed when the test ends.
func (d *deployment) startServer(name string, extra ...string) *server {
	d.t.Helper()
	addr := freeAddr(d.t)
	s := &server{d: d, name: name, addr: addr, base: "http://" + addr, log: &lockedBuffer{}}
	s.args = append([]string{"serve", "--addr", addr, "--db", d.db, "--issuer", "http://tally.reliability.test",
		"--spool", filepath.Join(d.dir, name+".spool"), "--checkpoint-file", filepath.Join(d.dir, name+".checkpoints"),
		"--breaker-open", "1s", "--breaker-failures", "3"}, extra...)
	if err := s.start(); err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(func() {
		s.stop()
		if d.t.Failed() {
			d.t.Logf("%s log (tail):\n%s", name, tail(s.log.String(), 3000))
		}
	})
	return s
}

// start runs the process and waits until it listens.
func (s *server) start() error {
	cmd := exec.Command(tallyBin, s.args...)
	cmd.Env = s.d.env
	cmd.Stderr = s.log
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	listening := make(chan struct{})
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			fmt.Fprintln(s.log, sc.Text())
			if !signalled && strings.Contains(sc.Text(), "listening on") {
				close(listening)
				signalled = true
			}
		}
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	select {
	case <-listening:
		return nil
	case <-done:
		return fmt.Errorf("%s exited before listening:\n%s", s.name, tail(s.log.String(), 3000))
	case <-time.After(time.Minute):
		s.kill()
		return fmt.Errorf("%s did not listen within a minute:\n%s", s.name, tail(s.log.String(), 3000))
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (s *server) kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// stop sends SIGTERM, and SIGKILL if the process is still there 30 s later.
func (s *server) stop() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		s.mu.Lock()
		s.cmd = nil
		s.mu.Unlock()
	case <-time.After(30 * time.Second):
		s.kill()
	}
}

// restart starts the process again with the same flags, on the same address.
func (s *server) restart() {
	s.d.t.Helper()
	s.kill()
	if err := s.start(); err != nil {
		s.d.t.Fatal(err)
	}
}

// ready reports whether /readyz answers 200 (the store answers through the breaker).
func (s *server) ready() bool {
	res, err := quick.Get(s.base + "/readyz")
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == 200
}

// token gets an access token with client credentials, retrying while the server cannot reach the
// database (the client's secret is read from it).
func (d *deployment) token(ctx context.Context, s *server) string {
	d.t.Helper()
	for {
		req, _ := http.NewRequestWithContext(ctx, "POST", s.base+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(d.clientID, d.secret)
		status, body, err := do(req)
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if err == nil && status == 200 && json.Unmarshal(body, &tok) == nil && tok.AccessToken != "" {
			return tok.AccessToken
		}
		if ctx.Err() != nil {
			d.t.Fatalf("no token from %s: %d %s %v", s.name, status, body, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// quick is the HTTP client of the tests: its timeout bounds a hang (every answer must come long before).
var quick = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

func do(req *http.Request) (int, []byte, error) {
	res, err := quick.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, err
}

// postJSON sends v with a bearer token.
func postJSON(ctx context.Context, base, path, token string, v any) (int, []byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, nil, err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", base+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	return do(req)
}

// postJSONRetryAfter is postJSON that also returns the Retry-After header.
func postJSONRetryAfter(ctx context.Context, base, path, token string, v any) (int, []byte, string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, nil, "", err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", base+path, bytes.NewReader(b))
	if err != nil {
		return 0, nil, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := quick.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	return res.StatusCode, body, res.Header.Get("Retry-After"), err
}

// lookupAnswer is what a balance lookup answers.
type lookupAnswer struct {
	Balance int64 `json:"balance"`
	Stale   bool  `json:"stale"`
}

func lookup(ctx context.Context, base, token, customer string) (int, lookupAnswer, error) {
	status, body, err := postJSON(ctx, base, "/v1/ledger/balance/lookup", token, map[string]string{"customer_hash": customer, "channel": "webchat", "request_id": "r"})
	var a lookupAnswer
	if err == nil && status == 200 {
		err = json.Unmarshal(body, &a)
	}
	return status, a, err
}

// ledgerRows reads, straight from PostgreSQL, how often each idempotency key of channel is in the
// ledger, and the balance of every customer account.
func ledgerRows(t *testing.T, dbURL, channel string) (keys map[string]int, balances map[string]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, plainURL(dbURL))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	keys = map[string]int{}
	rows, err := conn.Query(ctx, `SELECT idempotency_key, count(*) FROM transactions WHERE channel = $1 GROUP BY 1`, channel)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		var n int
		if err := rows.Scan(&k, &n); err != nil {
			t.Fatal(err)
		}
		keys[k] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	balances = map[string]int64{}
	rows, err = conn.Query(ctx, `SELECT customer_hash, balance FROM accounts WHERE kind = 'customer'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var h string
		var b int64
		if err := rows.Scan(&h, &b); err != nil {
			t.Fatal(err)
		}
		balances[h] = b
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return keys, balances
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// get sends a GET with a bearer token.
func get(ctx context.Context, url, token string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return do(req)
}

// metric reads an unlabelled metric from the server's /metrics; -1 when it cannot.
func metric(ctx context.Context, s *server, name string) float64 {
	status, body, err := get(ctx, s.base+"/metrics", "")
	if err != nil || status != 200 {
		return -1
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			var f float64
			if _, err := fmt.Sscan(v, &f); err == nil {
				return f
			}
		}
	}
	return -1
}

// plainURL drops the pool parameters (pool_*) of a database URL, which a single connection would send
// to the server as unknown settings.
func plainURL(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return dbURL
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}
