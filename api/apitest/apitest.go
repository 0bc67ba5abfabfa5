// Package apitest starts a real Tally HTTP server over a real store for end-to-end tests: the server
// listens on a loopback port and tests talk to it over HTTP.
package apitest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/auth"
	"github.com/tally-ledger/tally/balancecache"
	"github.com/tally-ledger/tally/breaker"
	"github.com/tally-ledger/tally/earning"
	"github.com/tally-ledger/tally/fulfillment"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/metrics"
	"github.com/tally-ledger/tally/postgres/pgtest"
	"github.com/tally-ledger/tally/ratelimit"
	"github.com/tally-ledger/tally/spool"
	"github.com/tally-ledger/tally/sqlite"
	"github.com/tally-ledger/tally/webhooks"
)

// Backend names a store kind.
type Backend string

// The backends every end-to-end test runs against.
const (
	SQLite   Backend = "sqlite"
	Postgres Backend = "postgres"
)

// Backends lists them.
var Backends = []Backend{SQLite, Postgres}

// Config changes how a test server is built.
type Config struct {
	Options api.Options
	Breaker breaker.Config
	// WrapStore, when set, wraps the real store before the breaker (to inject faults).
	WrapStore func(tally.Store) tally.Store
	Cache     balancecache.Cache
	// Mirror, when set, builds the Genesys contact mirror's outbox over the real store.
	Mirror func(tally.Store) api.ContactMirror
	// AuthFailures, when set, is the token endpoint's failure limiter (default: the server's own).
	AuthFailures ratelimit.Failures
	// Spool, when set, keeps accruals while the store is unavailable; the server replays it at start and
	// then every SpoolInterval (default 20 ms; tests that drain it themselves, with Server.API.DrainSpool,
	// set it long).
	Spool         spool.Spool
	SpoolInterval time.Duration
	// Programme, when set, replaces the default programme (its rules are seeded into the store).
	Programme *earning.Programme
	// Clock, when set, is the ledger's and the earning rules' clock.
	Clock func() time.Time
	// Lots are the ledger's lot policies (expiry, return policy); zero: points never expire.
	Lots tally.LotPolicy
}

// Server is a running test server.
type Server struct {
	URL     string
	Store   tally.Store // the real store
	Creds   tally.CredentialStore
	Ledger  *ledger.Service
	Breaker *breaker.Store
	Issuer  *auth.Issuer
	Hasher  *tally.CustomerHasher
	Metrics *metrics.Metrics
	HTTP    *httptest.Server
	API     *api.Server
	t       testing.TB
	mu      sync.Mutex // guards tokens
	tokens  map[string]string
}

// client sends the harness's requests. Its timeout is generous: it turns a hung server into a failure
// that names the request instead of a test binary killed by its deadline.
var client = &http.Client{Timeout: 2 * time.Minute}

// Key is the ledger key of every test server, so that servers on one database act as replicas.
var Key = tally.RandomLedgerKey()

// Secret is the customer secret of test servers.
const Secret = "apitest-customer-secret-0123456789"

// LedgerKey is the ledger key of test servers: servers on one database (replicas) share it.
// (NewLedgerKey fails only for a secret shorter than 32 bytes.)
var LedgerKey, _ = tally.NewLedgerKey([]byte("apitest-ledger-key-0123456789abcdef"))

// Start builds and starts a server on the backend; it is stopped when the test ends.
func Start(t testing.TB, b Backend, cfg Config) *Server {
	t.Helper()
	ctx := context.Background()
	var store tally.Store
	var creds tally.CredentialStore
	switch b {
	case SQLite:
		db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "tally.db"))
		if err != nil {
			t.Fatal(err)
		}
		if err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		store, creds = db, db
	case Postgres:
		db := pgtest.Open(t)
		store, creds = db, db
	default:
		t.Fatalf("unknown backend %q", b)
	}
	return StartOn(t, store, creds, cfg)
}

// StartOn starts a server over stores the test opened (two servers on one database act as replicas).
func StartOn(t testing.TB, store tally.Store, creds tally.CredentialStore, cfg Config) *Server {
	t.Helper()
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	m := metrics.New()
	inner := store
	if cfg.WrapStore != nil {
		inner = cfg.WrapStore(store)
	}
	onChange := cfg.Breaker.OnStateChange
	cfg.Breaker.OnStateChange = func(from, to string) {
		m.CircuitTransitions.WithLabelValues(from, to).Inc()
		m.CircuitState.Set(map[string]float64{"closed": 0, "half-open": 1, "open": 2}[to])
		if onChange != nil {
			onChange(from, to)
		}
	}
	guarded := breaker.New(inner, cfg.Breaker)
	programme := cfg.Programme
	if programme == nil {
		programme = earning.DefaultProgramme()
	}
	var rules tally.ProgrammeStore
	if ps, ok := store.(tally.ProgrammeStore); ok {
		rules = ps
	}
	engine := earning.NewEngine(rules, programme, cfg.Clock)
	// A store that cannot be reached (a fault test) seeds nothing: events then fail as unavailable.
	engine.Seed(ctx)
	l := ledger.New(guarded, ledger.Options{Key: Key, Tiers: programme, Earner: engine, Clock: cfg.Clock, Lots: cfg.Lots, Workers: 2, Observe: m.ObserveWrite, ObserveBatch: func(n int) { m.BatchSize.Observe(float64(n)) }})
	hasher, err := tally.NewCustomerHasher([]byte(Secret))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(nil)
	base := "http://" + hs.Listener.Addr().String()
	issuer, err := auth.NewIssuer(ctx, creds, auth.IssuerConfig{Issuer: base, Audience: "tally", Key: LedgerKey, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := auth.NewVerifier(auth.VerifierConfig{Local: issuer, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	cache := cfg.Cache
	if cache == nil {
		cache = balancecache.NewMemory(10000, time.Hour)
	}
	var mirror api.ContactMirror
	if cfg.Mirror != nil {
		mirror = cfg.Mirror(store)
	}
	signer, err := fulfillment.NewSigner(Key.WebhookKey())
	if err != nil {
		t.Fatal(err)
	}
	srv := api.New(api.Deps{
		Ledger: l, Store: guarded, Hasher: hasher, Programme: programme, Earning: engine, Issuer: issuer, Verifier: verifier, Clients: creds,
		Cache: cache, Metrics: m, Logger: log, Mirror: mirror, Spool: cfg.Spool, Clock: cfg.Clock, AuthFailures: cfg.AuthFailures,
		Webhooks: &webhooks.Subscriptions{Store: guarded, Signer: signer},
	}, cfg.Options)
	hs.Config.Handler = srv
	hs.Start()
	t.Cleanup(func() { hs.Close(); l.Close() })
	if cfg.Spool != nil {
		interval := cfg.SpoolInterval
		if interval <= 0 {
			interval = 20 * time.Millisecond
		}
		rctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); srv.RunSpool(rctx, interval) }()
		// Registered after the server's cleanup, so it runs first: the replayer stops before the ledger.
		t.Cleanup(func() { stop(); <-done })
	}
	return &Server{URL: base, Store: store, Creds: creds, Ledger: l, Breaker: guarded, Issuer: issuer, Hasher: hasher,
		Metrics: m, HTTP: hs, API: srv, t: t, tokens: map[string]string{}}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Client creates an OAuth client with the scopes and returns its id and secret.
func (s *Server) Client(scopes ...string) (id, secret string) {
	s.t.Helper()
	c, secret, err := auth.NewClient("test", scopes, time.Now().UTC())
	if err != nil {
		s.t.Fatal(err)
	}
	if err := s.Creds.CreateClient(context.Background(), c); err != nil {
		s.t.Fatal(err)
	}
	return c.ID, secret
}

// Token returns an access token with the scopes, got through POST /oauth/token. It is safe for
// concurrent use.
func (s *Server) Token(scopes ...string) string {
	s.t.Helper()
	key := strings.Join(scopes, " ")
	s.mu.Lock()
	defer s.mu.Unlock()
	if tok, ok := s.tokens[key]; ok {
		return tok
	}
	id, secret := s.Client(scopes...)
	req, _ := http.NewRequest("POST", s.URL+"/oauth/token", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	res, err := client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if res.StatusCode != 200 || json.NewDecoder(res.Body).Decode(&body) != nil || body.AccessToken == "" {
		s.t.Fatalf("token request: status %d", res.StatusCode)
	}
	s.tokens[key] = body.AccessToken
	return body.AccessToken
}

// AllScopes are every scope.
var AllScopes = []string{tally.ScopeLedgerRead, tally.ScopeLedgerWrite, tally.ScopeAdmin}

// Response is an answer read whole.
type Response struct {
	Status int
	Header http.Header
	Body   []byte
}

// JSON decodes the body into a map.
func (r Response) JSON(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.Body, err)
	}
	return m
}

// Do sends a request with an optional bearer token and reads the whole answer.
func (s *Server) Do(method, path, token string, body []byte, header ...string) Response {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return Response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// Post sends a JSON body with a token of every scope.
func (s *Server) Post(path string, body []byte) Response {
	s.t.Helper()
	return s.Do("POST", path, s.Token(AllScopes...), body)
}

// T returns the test the server reports to.
func (s *Server) T() testing.TB { return s.t }

// Metric returns the text of /metrics.
func (s *Server) Metric() string {
	s.t.Helper()
	return string(s.Do("GET", "/metrics", "", nil).Body)
}
