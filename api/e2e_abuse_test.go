package api_test

import (
	"context"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/ratelimit"
	"github.com/tally-ledger/tally/sqlite"
)

// countingClients is the real credential store, counting the client look-ups the token endpoint makes.
type countingClients struct {
	tally.CredentialStore
	reads atomic.Int64
}

func (c *countingClients) Client(ctx context.Context, id string) (tally.Client, error) {
	c.reads.Add(1)
	return c.CredentialStore.Client(ctx, id)
}

func startCounting(t *testing.T, cfg apitest.Config) (*apitest.Server, *countingClients) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, t.TempDir()+"/tally.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	creds := &countingClients{CredentialStore: db}
	return apitest.StartOn(t, db, creds, cfg), creds
}

var grant = url.Values{"grant_type": {"client_credentials"}}

// TestTokenLockout is the attack of the issue: 2,000 wrong secrets for one client. The first 10 (the
// default limit) are examined and answered 401; every later one, and the right secret too while the
// lockout lasts, gets 429 with Retry-After without a database read.
func TestTokenLockout(t *testing.T) {
	srv, creds := startCounting(t, apitest.Config{})
	id, secret := srv.Client(tally.ScopeLedgerRead)
	counts := map[int]int{}
	start := time.Now()
	for i := range 2000 {
		res := e2eTokenRequest(t, srv, grant, id, "wrong-"+strconv.Itoa(i))
		counts[res.Status]++
		if res.Status == 429 && counts[429] == 1 {
			e2eProblem(t, res, 429, tally.EOVERLOADED)
			if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
				t.Errorf("Retry-After %q, want the rest of the minute's lockout", res.Header.Get("Retry-After"))
			}
		}
	}
	t.Logf("2,000 wrong secrets in %s: %v", time.Since(start).Round(time.Millisecond), counts)
	if counts[401] != 10 || counts[429] != 1990 {
		t.Fatalf("2,000 wrong secrets: %v, want 10 401 then 1,990 429", counts)
	}
	if n := creds.reads.Load(); n != 10 {
		t.Errorf("%d client look-ups, want 10: a locked-out attempt must cost no database read", n)
	}
	if res := e2eTokenRequest(t, srv, grant, id, secret); res.Status != 429 {
		t.Fatalf("the right secret during the lockout: %d, want 429", res.Status)
	}
}

// TestTokenLockoutEnds: the right secret is refused during a lockout and works once it is over.
func TestTokenLockoutEnds(t *testing.T) {
	srv := apitest.Start(t, apitest.SQLite, apitest.Config{AuthFailures: ratelimit.NewMemory(ratelimit.FailureConfig{Lockout: time.Second})})
	id, secret := srv.Client(tally.ScopeLedgerRead)
	for range 10 {
		e2eTokenRequest(t, srv, grant, id, "wrong")
	}
	res := e2eTokenRequest(t, srv, grant, id, secret)
	e2eProblem(t, res, 429, tally.EOVERLOADED)
	time.Sleep(1100 * time.Millisecond) // the lockout's end, not a bound on anything
	if res := e2eTokenRequest(t, srv, grant, id, secret); res.Status != 200 {
		t.Fatalf("the right secret after the lockout: %d %s", res.Status, res.Body)
	}
}

// TestTokenLockoutPerAddress: failures spread over many client ids (a spray of guessed ids) lock the
// source address out, whatever id it names next; form-field credentials count like Basic ones.
func TestTokenLockoutPerAddress(t *testing.T) {
	srv, creds := startCounting(t, apitest.Config{})
	id, secret := srv.Client(tally.ScopeLedgerRead)
	for i := range 10 {
		form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"tly_guess" + strconv.Itoa(i)}, "client_secret": {"x"}}
		if res := e2eTokenRequest(t, srv, form, "", ""); res.Status != 401 {
			t.Fatalf("guess %d: %d", i, res.Status)
		}
	}
	before := creds.reads.Load()
	res := e2eTokenRequest(t, srv, grant, id, secret)
	e2eProblem(t, res, 429, tally.EOVERLOADED)
	if !strings.Contains(string(res.Body), "address") {
		t.Errorf("the refusal does not say the address is locked out: %s", res.Body)
	}
	if creds.reads.Load() != before {
		t.Error("a locked-out address's attempt read the database")
	}
}

// TestTokenLockoutSharedByReplicas: with Redis, failures on two replicas count toward one limit and
// the lockout holds on both.
func TestTokenLockoutSharedByReplicas(t *testing.T) {
	rurl := os.Getenv("TALLY_TEST_REDIS_URL")
	if rurl == "" {
		rurl = "redis://127.0.0.1:6379/0"
	}
	opt, err := redis.ParseURL(rurl)
	if err != nil {
		t.Fatal(err)
	}
	rc := redis.NewClient(opt)
	defer rc.Close()
	if err := rc.Ping(context.Background()).Err(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis at %s: %v", rurl, err)
		}
		t.Skipf("no redis at %s (set TALLY_TEST_REDIS_URL): %v", rurl, err)
	}
	prefix := "tally-test:" + strconv.FormatInt(time.Now().UnixNano(), 36) + ":"
	cfg := ratelimit.FailureConfig{Limit: 10, Window: time.Minute, Lockout: time.Minute}
	ctx := context.Background()
	db, err := sqlite.Open(ctx, t.TempDir()+"/tally.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	a := apitest.StartOn(t, db, db, apitest.Config{AuthFailures: ratelimit.NewRedis(rc, prefix, cfg, nil)})
	b := apitest.StartOn(t, db, db, apitest.Config{AuthFailures: ratelimit.NewRedis(rc, prefix, cfg, nil)})
	id, secret := a.Client(tally.ScopeLedgerRead)
	t.Cleanup(func() {
		keys, _ := rc.Keys(context.Background(), prefix+"*").Result()
		if len(keys) > 0 {
			rc.Del(context.Background(), keys...)
		}
	})
	for i := range 10 {
		srv := a
		if i%2 == 1 {
			srv = b
		}
		if res := e2eTokenRequest(t, srv, grant, id, "wrong"); res.Status != 401 {
			t.Fatalf("failure %d: %d", i+1, res.Status)
		}
	}
	for name, srv := range map[string]*apitest.Server{"a": a, "b": b} {
		if res := e2eTokenRequest(t, srv, grant, id, secret); res.Status != 429 {
			t.Errorf("replica %s after 10 failures spread over both: %d, want 429", name, res.Status)
		}
	}
}

// TestClientRateLimit: an authenticated client over its rate gets 429 with Retry-After; another client
// is not slowed by it.
func TestClientRateLimit(t *testing.T) {
	srv := apitest.Start(t, apitest.SQLite, apitest.Config{Options: api.Options{ClientRate: 0.01, ClientBurst: 3}})
	busy, calm := srv.Token(tally.ScopeLedgerRead), srv.Token(tally.ScopeLedgerRead, tally.ScopeLedgerWrite)
	body := []byte(`{"customer_hash":"c-1","channel":"webchat","request_id":"r"}`)
	for i := range 3 {
		if res := srv.Do("POST", "/v1/ledger/balance/lookup", busy, body); res.Status != 200 {
			t.Fatalf("request %d of the burst: %d %s", i+1, res.Status, res.Body)
		}
	}
	res := srv.Do("POST", "/v1/ledger/balance/lookup", busy, body)
	e2eProblem(t, res, 429, tally.EOVERLOADED)
	if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || s < 1 || s > 100 {
		t.Errorf("Retry-After %q, want the time until the next token (at most 100 s at 0.01/s)", res.Header.Get("Retry-After"))
	}
	if res := srv.Do("POST", "/v1/ledger/balance/lookup", calm, body); res.Status != 200 {
		t.Fatalf("another client: %d", res.Status)
	}
	// An unauthenticated caller is refused as before, not counted against anyone.
	if res := srv.Do("POST", "/v1/ledger/balance/lookup", "", body); res.Status != 401 {
		t.Fatalf("no token: %d", res.Status)
	}
}

// TestSecurityHeaders: every kind of answer carries nosniff, no Referer and a Content-Security-Policy;
// the portal page's lets it run its own script and be framed by the embedding sites and Genesys Cloud,
// every other answer may be framed by no one; with HSTS on, Strict-Transport-Security.
func TestSecurityHeaders(t *testing.T) {
	srv := apitest.Start(t, apitest.SQLite, apitest.Config{Options: api.Options{CORSOrigins: []string{"https://shop.example.com"}, HSTS: true}})
	read := srv.Token(tally.ScopeLedgerRead)
	for _, c := range []struct {
		name, method, path, token string
		body                      []byte
		portal                    bool
	}{
		{"portal page", "GET", "/", "", nil, true},
		{"portal page under /portal/", "GET", "/portal/", "", nil, true},
		{"widget script", "GET", "/widget/latest/bundle.min.js", "", nil, false},
		{"a lookup", "POST", "/v1/ledger/balance/lookup", read, []byte(`{"customer_hash":"c","channel":"c","request_id":"r"}`), false},
		{"a problem", "POST", "/v1/ledger/balance/lookup", "", []byte(`{}`), false},
		{"not found", "GET", "/nowhere", "", nil, false},
		{"token endpoint", "POST", "/oauth/token", "", nil, false},
		{"health", "GET", "/healthz", "", nil, false},
		{"openapi", "GET", "/openapi.json", "", nil, false},
		{"portal API", "GET", "/v1/portal/me", "", nil, false},
	} {
		res := srv.Do(c.method, c.path, c.token, c.body)
		for h, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Strict-Transport-Security": "max-age=31536000"} {
			if got := res.Header.Get(h); got != want {
				t.Errorf("%s: %s %q, want %q", c.name, h, got, want)
			}
		}
		csp := res.Header.Get("Content-Security-Policy")
		if c.portal {
			for _, want := range []string{"script-src 'self' 'unsafe-inline'", "connect-src 'self'", "frame-ancestors 'self' https://*.mypurecloud.com", "https://*.pure.cloud", "https://shop.example.com"} {
				if !strings.Contains(csp, want) {
					t.Errorf("%s: CSP %q lacks %q", c.name, csp, want)
				}
			}
		} else if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
			t.Errorf("%s: CSP %q, want default-src 'none' and frame-ancestors 'none'", c.name, csp)
		}
	}
	plain := apitest.Start(t, apitest.SQLite, apitest.Config{})
	if h := plain.Do("GET", "/healthz", "", nil).Header.Get("Strict-Transport-Security"); h != "" {
		t.Errorf("HSTS over plain HTTP without the option: %q", h)
	}
}
