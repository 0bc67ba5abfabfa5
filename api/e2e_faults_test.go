package api_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/balancecache"
	"github.com/tally-ledger/tally/breaker"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/sqlite"
)

// faultyStore is a tally.Store that behaves like a database that has gone away while down is set: every
// call fails with EUNAVAILABLE without touching the real store. Otherwise it delegates. It counts the
// calls that reach it, so that a test can tell whether the circuit breaker let a request through, and it
// can also be slow (Account waits accountDelay, Update waits updateDelay) or lose the acknowledgement of
// a commit (lostAck: Update commits, then reports a fault, as a connection that breaks after COMMIT).
// Audit passes through: verification reads the real store.
type faultyStore struct {
	tally.Store
	down         atomic.Bool
	lostAck      atomic.Bool
	calls        atomic.Int64
	accountDelay atomic.Int64 // nanoseconds
	updateDelay  atomic.Int64 // nanoseconds
}

// faultWrap returns a Config.WrapStore that installs fs around the real store.
func faultWrap(fs *faultyStore) func(tally.Store) tally.Store {
	return func(s tally.Store) tally.Store {
		fs.Store = s
		return fs
	}
}

var faultInjected = errors.New("connection refused (injected fault)")

// enter counts a call and fails it while the store is down.
func (s *faultyStore) enter() error {
	s.calls.Add(1)
	if s.down.Load() {
		return tally.Unavailable(faultInjected, "database")
	}
	return nil
}

// faultSleep waits d or until ctx ends, as a query on a slow database does.
func faultSleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *faultyStore) Update(ctx context.Context, fn func(ctx context.Context, tx tally.WriteTx) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	if err := faultSleep(ctx, time.Duration(s.updateDelay.Load())); err != nil {
		return err
	}
	err := s.Store.Update(ctx, fn)
	if err == nil && s.lostAck.Load() {
		return tally.Unavailable(errors.New("connection reset after commit (injected fault)"), "database")
	}
	return err
}

func (s *faultyStore) Account(ctx context.Context, id string) (tally.Account, error) {
	if err := s.enter(); err != nil {
		return tally.Account{}, err
	}
	if err := faultSleep(ctx, time.Duration(s.accountDelay.Load())); err != nil {
		return tally.Account{}, err
	}
	return s.Store.Account(ctx, id)
}

func (s *faultyStore) Transaction(ctx context.Context, seq int64) (tally.Transaction, error) {
	if err := s.enter(); err != nil {
		return tally.Transaction{}, err
	}
	return s.Store.Transaction(ctx, seq)
}

func (s *faultyStore) History(ctx context.Context, id string, before int64, limit int) ([]tally.Transaction, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	return s.Store.History(ctx, id, before, limit)
}

func (s *faultyStore) Outcome(ctx context.Context, channel, key string) (tally.Outcome, error) {
	if err := s.enter(); err != nil {
		return tally.Outcome{}, err
	}
	return s.Store.Outcome(ctx, channel, key)
}

func (s *faultyStore) PurgeOutcomes(ctx context.Context, before time.Time) (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	return s.Store.PurgeOutcomes(ctx, before)
}

func (s *faultyStore) Rewards(ctx context.Context) ([]tally.Reward, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	return s.Store.Rewards(ctx)
}

func (s *faultyStore) PutReward(ctx context.Context, r tally.Reward) error {
	if err := s.enter(); err != nil {
		return err
	}
	return s.Store.PutReward(ctx, r)
}

func (s *faultyStore) Ping(ctx context.Context) error {
	if err := s.enter(); err != nil {
		return err
	}
	return s.Store.Ping(ctx)
}

func (s *faultyStore) MigrationsCurrent(ctx context.Context) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	return s.Store.MigrationsCurrent(ctx)
}

// Paths of the endpoints these tests drive.
const (
	faultLookupPath  = "/v1/ledger/balance/lookup"
	faultProcessPath = "/v1/ledger/transaction/process"
)

func faultLookupBody(customer string) []byte {
	b, _ := json.Marshal(map[string]string{"customer_hash": customer, "channel": "webchat", "request_id": "req-" + customer})
	return b
}

func faultAccrualBody(key, customer string, amount int64) []byte {
	b, _ := json.Marshal(map[string]any{
		"idempotency_key": key, "channel": "e2e", "customer_hash": customer, "kind": "accrual",
		"amount": amount, "reason": "e2e test",
	})
	return b
}

// faultWant503 checks a 503 problem answer: Retry-After, the problem media type and the code.
func faultWant503(t *testing.T, what string, r apitest.Response) {
	t.Helper()
	if r.Status != 503 {
		t.Fatalf("%s: status %d, want 503; body %s", what, r.Status, r.Body)
	}
	if ra, err := strconv.Atoi(r.Header.Get("Retry-After")); err != nil || ra < 1 {
		t.Fatalf("%s: Retry-After %q, want whole seconds >= 1", what, r.Header.Get("Retry-After"))
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%s: Content-Type %q, want application/problem+json", what, ct)
	}
	p := r.JSON(t)
	if p["code"] != string(tally.EUNAVAILABLE) || p["status"] != float64(503) || p["title"] == "" || p["request_id"] == "" {
		t.Fatalf("%s: problem %s", what, r.Body)
	}
}

// faultMetric returns the value of the sample whose name and labels are given exactly as the text
// format prints them (labels sorted by name), e.g. `tally_circuit_transitions_total{from="closed",to="open"}`.
func faultMetric(t *testing.T, text, sample string) (float64, bool) {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f, true
		}
	}
	return 0, false
}

func faultWantMetric(t *testing.T, s *apitest.Server, sample string, want float64) {
	t.Helper()
	got, ok := faultMetric(t, s.Metric(), sample)
	if !ok || got != want {
		t.Fatalf("metric %s = %v (present %v), want %v", sample, got, ok, want)
	}
}

// faultAcks records, per idempotency key, the amount a write was acknowledged as applied for.
type faultAcks map[string]int64

// record notes the answer to an accrual: the first "applied" answer (201, or 200 for a retry that found
// an earlier attempt committed) acknowledges it. Anything else but a 503 fails the test.
func (b faultAcks) record(t *testing.T, key string, amount int64, r apitest.Response) {
	t.Helper()
	switch r.Status {
	case 201, 200:
		if m := r.JSON(t); m["status"] != "applied" || m["amount"] != float64(amount) {
			t.Fatalf("write %s: %d %s", key, r.Status, r.Body)
		}
		if _, seen := b[key]; seen && r.Status == 201 {
			t.Fatalf("write %s was created twice", key)
		}
		b[key] = amount
	case 503:
		faultWant503(t, "write "+key, r)
	default:
		t.Fatalf("write %s: status %d, want 201, 200 or 503; body %s", key, r.Status, r.Body)
	}
}

func (b faultAcks) sum() int64 {
	var n int64
	for _, a := range b {
		n += a
	}
	return n
}

// faultCheckLedger verifies the whole ledger and checks that the customer's balance is exactly the sum of
// the acknowledged writes, and that each acknowledged key holds one transaction.
func faultCheckLedger(t *testing.T, s *apitest.Server, customer string, acked faultAcks) {
	t.Helper()
	ctx := context.Background()
	if _, err := ledger.Verify(ctx, s.Store.Audit(), ledger.VerifyOptions{Key: apitest.Key}); err != nil {
		t.Fatalf("verify: %v", err)
	}
	hash := s.Hasher.Hash(customer)
	acct, err := s.Store.Account(ctx, hash)
	if err != nil {
		t.Fatalf("account of %s: %v", customer, err)
	}
	if acct.Balance != acked.sum() {
		t.Fatalf("balance of %s is %d, acknowledged writes sum to %d", customer, acct.Balance, acked.sum())
	}
	txs, err := s.Store.History(ctx, hash, 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	perKey := map[string]int{}
	for _, tx := range txs {
		perKey[tx.IdempotencyKey]++
	}
	for key := range acked {
		if perKey[key] != 1 {
			t.Fatalf("acknowledged write %s is in the ledger %d times", key, perKey[key])
		}
	}
	if len(txs) != len(acked) {
		t.Fatalf("the ledger holds %d transactions of %s, %d were acknowledged", len(txs), customer, len(acked))
	}
}

// TestFaultStoreOutage takes the store away behind a running server: writes answer 503 with Retry-After,
// lookups answer the last-known balance marked stale, and after five failures in a row the circuit
// opens and keeps requests off the store.
func TestFaultStoreOutage(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			fs := &faultyStore{}
			s := apitest.Start(t, b, apitest.Config{WrapStore: faultWrap(fs)}) // default breaker: 5 failures, 15 s
			tok := s.Token(apitest.AllScopes...)
			acked := faultAcks{}

			for i, amount := range []int64{100, 250, 40} {
				key := fmt.Sprintf("healthy-%d", i)
				r := s.Do("POST", faultProcessPath, tok, faultAccrualBody(key, "alice", amount))
				if r.Status != 201 {
					t.Fatalf("healthy write: %d %s", r.Status, r.Body)
				}
				acked.record(t, key, amount, r)
			}
			healthy := s.Do("POST", faultLookupPath, tok, faultLookupBody("alice"))
			if healthy.Status != 200 {
				t.Fatalf("healthy lookup: %d %s", healthy.Status, healthy.Body)
			}
			before := healthy.JSON(t)
			if before["stale"] != false || before["balance"] != float64(390) {
				t.Fatalf("healthy lookup: %s", healthy.Body)
			}

			fs.down.Store(true)
			// Five transient failures in a row open the circuit: count them out one by one.
			failures := 0
			fail := func(what string, r apitest.Response) {
				t.Helper()
				failures++
				if st := s.Breaker.State(); (failures < breaker.DefaultFailures) != (st == breaker.StateClosed) {
					t.Fatalf("after %d failures (%s) the breaker is %s", failures, what, st)
				}
				if r.Status >= 500 && r.Status != 503 {
					t.Fatalf("%s: status %d: %s", what, r.Status, r.Body)
				}
			}

			r := s.Do("POST", faultProcessPath, tok, faultAccrualBody("outage-1", "alice", 7))
			faultWant503(t, "write while the store is down", r)
			fail("write", r)

			r = s.Do("POST", faultLookupPath, tok, faultLookupBody("alice"))
			fail("lookup of a known customer", r)
			faultWantStale(t, r, before)

			r = s.Do("POST", faultLookupPath, tok, faultLookupBody("bob"))
			faultWant503(t, "lookup of a customer never seen", r)
			fail("lookup of an unknown customer", r)

			r = s.Do("POST", faultProcessPath, tok, faultAccrualBody("outage-2", "alice", 7))
			faultWant503(t, "second write", r)
			fail("write", r)

			opening := time.Now() // no later than the moment the circuit opens
			r = s.Do("POST", faultProcessPath, tok, faultAccrualBody("outage-3", "alice", 7))
			faultWant503(t, "fifth failure", r)
			fail("write", r)
			if st := s.Breaker.State(); st != breaker.StateOpen {
				t.Fatalf("after %d failures the breaker is %s, want open", failures, st)
			}
			faultWantMetric(t, s, "tally_circuit_state", 2)
			faultWantMetric(t, s, `tally_circuit_transitions_total{from="closed",to="open"}`, 1)

			// While open, nothing reaches the store, and the answers say when to come back.
			calls := fs.calls.Load()
			r = s.Do("POST", faultProcessPath, tok, faultAccrualBody("open-1", "alice", 7))
			elapsed := time.Since(opening)
			faultWant503(t, "write while the circuit is open", r)
			ra, _ := strconv.Atoi(r.Header.Get("Retry-After"))
			// Retry-After counts down from OpenFor, rounded up: computed from the time that has passed
			// rather than assumed, so a slow machine cannot fail the test.
			lowest := max(1, int(math.Ceil((breaker.DefaultOpenFor - elapsed).Seconds())))
			if ra > int(breaker.DefaultOpenFor/time.Second) || ra < lowest {
				t.Fatalf("open circuit: Retry-After %d, want between %d and %d", ra, lowest, int(breaker.DefaultOpenFor/time.Second))
			}
			r = s.Do("POST", faultLookupPath, tok, faultLookupBody("alice"))
			faultWantStale(t, r, before)
			r = s.Do("POST", faultLookupPath, tok, faultLookupBody("carol"))
			faultWant503(t, "unknown customer while open", r)
			r = s.Do("GET", "/readyz", "", nil)
			faultWant503(t, "readiness while open", r)
			if n := fs.calls.Load() - calls; n != 0 {
				t.Fatalf("%d calls reached the store while the circuit was open", n)
			}
			if v, _ := faultMetric(t, s.Metric(), "tally_stale_answers_total"); v < 2 {
				t.Fatalf("tally_stale_answers_total = %v, want at least 2", v)
			}
			if strings.Contains(s.Metric(), `status="500"`) {
				t.Fatal("a request answered 500 during the outage")
			}
			faultCheckLedger(t, s, "alice", acked)
		})
	}
}

// faultWantStale checks a lookup answered from the cache with what the healthy lookup said.
func faultWantStale(t *testing.T, r apitest.Response, before map[string]any) {
	t.Helper()
	if r.Status != 200 {
		t.Fatalf("lookup of a known customer during the outage: %d %s", r.Status, r.Body)
	}
	m := r.JSON(t)
	if m["stale"] != true {
		t.Fatalf("lookup during the outage is not marked stale: %s", r.Body)
	}
	for _, k := range []string{"as_of", "balance", "balance_version", "tier", "customer_hash"} {
		if m[k] != before[k] {
			t.Fatalf("stale lookup: %s = %v, the healthy lookup said %v", k, m[k], before[k])
		}
	}
}

// TestFaultStoreRecovery takes the store away long enough to open the circuit, brings it back, and checks
// that the half-open probe closes the circuit, writes succeed again, and every acknowledged write is in
// the ledger exactly once, including one whose commit succeeded but whose acknowledgement was lost.
func TestFaultStoreRecovery(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			fs := &faultyStore{}
			s := apitest.Start(t, b, apitest.Config{WrapStore: faultWrap(fs), Breaker: breaker.Config{OpenFor: 300 * time.Millisecond}})
			tok := s.Token(apitest.AllScopes...)
			acked := faultAcks{}
			amounts := map[string]int64{}
			write := func(key string, amount int64) apitest.Response {
				t.Helper()
				amounts[key] = amount
				r := s.Do("POST", faultProcessPath, tok, faultAccrualBody(key, "dave", amount))
				acked.record(t, key, amount, r)
				return r
			}

			for i := range 3 {
				if r := write(fmt.Sprintf("before-%d", i), int64(10+i)); r.Status != 201 {
					t.Fatalf("healthy write: %d %s", r.Status, r.Body)
				}
			}

			// The commit succeeds but the answer is lost: the caller sees 503 and retries the same key later.
			fs.lostAck.Store(true)
			if r := write("lost-ack", 500); r.Status != 503 {
				t.Fatalf("write whose acknowledgement was lost: %d %s", r.Status, r.Body)
			}
			fs.lostAck.Store(false)

			fs.down.Store(true)
			var pending []string
			for i := 0; s.Breaker.State() != breaker.StateOpen; i++ {
				if i == 2*breaker.DefaultFailures {
					t.Fatalf("the circuit is still %s after %d failures", s.Breaker.State(), i)
				}
				key := fmt.Sprintf("during-%d", i)
				if r := write(key, int64(1000+i)); r.Status != 503 {
					t.Fatalf("write while down: %d %s", r.Status, r.Body)
				}
				pending = append(pending, key)
			}
			pending = append(pending, "lost-ack")
			fs.down.Store(false)

			// Retry every unacknowledged key, as a caller honouring Retry-After would, until each is answered.
			// The first call after OpenFor is the half-open probe; it succeeds and closes the circuit.
			deadline := time.Now().Add(30 * time.Second)
			for round := 0; len(pending) > 0; round++ {
				if time.Now().After(deadline) {
					t.Fatalf("writes still refused after %d rounds; breaker %s", round, s.Breaker.State())
				}
				var still []string
				for _, key := range pending {
					if r := write(key, amounts[key]); r.Status == 503 {
						still = append(still, key)
					}
				}
				pending = still
				if len(pending) > 0 {
					time.Sleep(50 * time.Millisecond)
				}
			}
			if st := s.Breaker.State(); st != breaker.StateClosed {
				t.Fatalf("after recovery the breaker is %s", st)
			}
			m := s.Metric()
			for _, tr := range []string{`{from="closed",to="open"}`, `{from="open",to="half-open"}`, `{from="half-open",to="closed"}`} {
				if v, _ := faultMetric(t, m, "tally_circuit_transitions_total"+tr); v != 1 {
					t.Fatalf("tally_circuit_transitions_total%s = %v, want 1", tr, v)
				}
			}
			faultWantMetric(t, s, "tally_circuit_state", 0)

			if r := write("after", 3); r.Status != 201 {
				t.Fatalf("write after recovery: %d %s", r.Status, r.Body)
			}
			// The write whose commit was not acknowledged is there once, answered as a replay.
			if r := s.Do("POST", faultProcessPath, tok, faultAccrualBody("lost-ack", "dave", 500)); r.Status != 200 {
				t.Fatalf("replay of the lost-ack write: %d %s", r.Status, r.Body)
			}
			if strings.Contains(s.Metric(), `status="500"`) {
				t.Fatal("a request answered 500")
			}
			faultCheckLedger(t, s, "dave", acked)
		})
	}
}

// TestFaultSlowStoreLookup makes the store slower than the lookup deadline: a known customer is answered
// stale, at once, instead of waiting for the database.
func TestFaultSlowStoreLookup(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			fs := &faultyStore{}
			s := apitest.Start(t, b, apitest.Config{
				WrapStore: faultWrap(fs),
				Options:   api.Options{LookupDeadline: 200 * time.Millisecond},
			})
			tok := s.Token(apitest.AllScopes...)
			if r := s.Do("POST", faultProcessPath, tok, faultAccrualBody("slow-1", "erin", 60)); r.Status != 201 {
				t.Fatalf("write: %d %s", r.Status, r.Body)
			}
			healthy := s.Do("POST", faultLookupPath, tok, faultLookupBody("erin"))
			if healthy.Status != 200 {
				t.Fatalf("healthy lookup: %d %s", healthy.Status, healthy.Body)
			}
			before := healthy.JSON(t)

			// Far longer than the deadline: a lookup that waited for it would show.
			fs.accountDelay.Store(int64(time.Minute))
			faultWantStale(t, s.Do("POST", faultLookupPath, tok, faultLookupBody("erin")), before)
			faultWant503(t, "slow lookup of an unknown customer", s.Do("POST", faultLookupPath, tok, faultLookupBody("frank")))

			fs.accountDelay.Store(0)
			r := s.Do("POST", faultLookupPath, tok, faultLookupBody("erin"))
			if m := r.JSON(t); r.Status != 200 || m["stale"] != false || m["balance"] != float64(60) {
				t.Fatalf("lookup once the store is fast again: %d %s", r.Status, r.Body)
			}
		})
	}
}

// TestFaultPostgresUnreachable runs the server on a PostgreSQL that is not there (a closed port): no request
// may answer 500; everything that needs the store is 503 with Retry-After.
func TestFaultPostgresUnreachable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Open does not connect, so it succeeds; the first query finds the port closed.
	pg, err := postgres.Open(ctx, "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=5")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pg.Close() })
	// Signing keys and OAuth clients live in a healthy database, so that callers can get tokens.
	creds, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "creds.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { creds.Close() })
	if err := creds.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	hasher, err := tally.NewCustomerHasher([]byte(apitest.Secret))
	if err != nil {
		t.Fatal(err)
	}
	cache := balancecache.NewMemory(100, time.Hour)
	known := balancecache.Entry{CustomerHash: hasher.Hash("known"), Balance: 1234, BalanceVersion: 9, Tier: "base",
		AsOf: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	if err := cache.Put(ctx, known); err != nil {
		t.Fatal(err)
	}
	s := apitest.StartOn(t, pg, creds, apitest.Config{Cache: cache})
	tok := s.Token(apitest.AllScopes...)

	for i := range breaker.DefaultFailures + 2 {
		faultWant503(t, "lookup", s.Do("POST", faultLookupPath, tok, faultLookupBody(fmt.Sprintf("nobody-%d", i))))
	}
	if st := s.Breaker.State(); st != breaker.StateOpen {
		t.Fatalf("breaker %s after repeated connection failures, want open", st)
	}
	r := s.Do("POST", faultLookupPath, tok, faultLookupBody("known"))
	if m := r.JSON(t); r.Status != 200 || m["stale"] != true || m["balance"] != float64(1234) || m["as_of"] != "2025-03-01T12:00:00Z" {
		t.Fatalf("lookup of a cached customer: %d %s", r.Status, r.Body)
	}
	faultWant503(t, "write", s.Do("POST", faultProcessPath, tok, faultAccrualBody("pg-down-1", "known", 5)))
	faultWant503(t, "history", s.Do("GET", "/v1/ledger/accounts/known/history", tok, nil))
	faultWant503(t, "readiness", s.Do("GET", "/readyz", "", nil))
	if strings.Contains(s.Metric(), `status="500"`) {
		t.Fatal("a request answered 500 with PostgreSQL unreachable")
	}
}

// faultRedisCache returns a balance cache in the test Redis (TALLY_TEST_REDIS_URL, or a local default)
// under a prefix of the caller's, removed when the test ends. Without Redis the test skips, except in CI.
func faultRedisCache(t *testing.T, prefix string) balancecache.Cache {
	t.Helper()
	url := os.Getenv("TALLY_TEST_REDIS_URL")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	client, err := balancecache.OpenRedis(ctx, url)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis at %s: %v", url, err)
		}
		t.Skipf("no redis at %s (set TALLY_TEST_REDIS_URL): %v", url, err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		iter := client.Scan(ctx, 0, prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			client.Del(ctx, iter.Val())
		}
		client.Close()
	})
	return balancecache.NewRedis(client, prefix, time.Hour)
}

// TestFaultStaleFromSharedRedis runs two replicas sharing a store and a Redis cache: when one replica
// loses the store, it answers a customer only the other replica looked up, stale, from Redis.
func TestFaultStaleFromSharedRedis(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "tally.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	prefix := "tally-test:" + rand.Text() + ":"
	healthy := apitest.StartOn(t, db, db, apitest.Config{Cache: faultRedisCache(t, prefix)})
	fs := &faultyStore{}
	failing := apitest.StartOn(t, db, db, apitest.Config{Cache: faultRedisCache(t, prefix), WrapStore: faultWrap(fs)})

	tok := healthy.Token(apitest.AllScopes...)
	if r := healthy.Do("POST", faultProcessPath, tok, faultAccrualBody("redis-1", "gina", 75)); r.Status != 201 {
		t.Fatalf("write: %d %s", r.Status, r.Body)
	}
	r := healthy.Do("POST", faultLookupPath, tok, faultLookupBody("gina"))
	if r.Status != 200 {
		t.Fatalf("healthy lookup: %d %s", r.Status, r.Body)
	}
	before := r.JSON(t)

	fs.down.Store(true)
	tok2 := failing.Token(apitest.AllScopes...)
	faultWantStale(t, failing.Do("POST", faultLookupPath, tok2, faultLookupBody("gina")), before)
	faultWant503(t, "unknown customer", failing.Do("POST", faultLookupPath, tok2, faultLookupBody("hank")))
}
