package auth

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

// memStore is an in-memory tally.CredentialStore. Setting down makes every method fail as a store that
// cannot be reached does.
type memStore struct {
	mu       sync.Mutex
	clients  map[string]tally.Client
	keys     map[string]tally.SigningKey
	down     bool
	keyReads int
}

var _ tally.CredentialStore = (*memStore)(nil)

func newMemStore() *memStore {
	return &memStore{clients: map[string]tally.Client{}, keys: map[string]tally.SigningKey{}}
}

var errDown = tally.Unavailable(errors.New("connection refused"), "the credential store")

func (s *memStore) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

func (s *memStore) keyReadCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keyReads
}

func (s *memStore) kids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var kids []string
	for kid := range s.keys {
		kids = append(kids, kid)
	}
	sort.Strings(kids)
	return kids
}

func (s *memStore) CreateClient(_ context.Context, c tally.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errDown
	}
	if _, ok := s.clients[c.ID]; ok {
		return tally.Errorf(tally.ECONFLICT, "client %s exists", c.ID)
	}
	c.Scopes = slices.Clone(c.Scopes)
	s.clients[c.ID] = c
	return nil
}

func (s *memStore) Client(_ context.Context, id string) (tally.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return tally.Client{}, errDown
	}
	c, ok := s.clients[id]
	if !ok {
		return tally.Client{}, tally.Errorf(tally.ENOTFOUND, "no client %s", id)
	}
	return c, nil
}

func (s *memStore) Clients(context.Context) ([]tally.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return nil, errDown
	}
	var cs []tally.Client
	for _, c := range s.clients {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].ID < cs[j].ID })
	return cs, nil
}

func (s *memStore) RevokeClient(_ context.Context, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errDown
	}
	c, ok := s.clients[id]
	if !ok {
		return tally.Errorf(tally.ENOTFOUND, "no client %s", id)
	}
	if c.RevokedAt == nil {
		c.RevokedAt = &at
	}
	s.clients[id] = c
	return nil
}

func (s *memStore) SigningKeys(context.Context) ([]tally.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keyReads++
	if s.down {
		return nil, errDown
	}
	var ks []tally.SigningKey
	for _, k := range s.keys {
		ks = append(ks, k)
	}
	return ks, nil
}

func (s *memStore) AddSigningKey(_ context.Context, k tally.SigningKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errDown
	}
	if _, ok := s.keys[k.KID]; ok {
		return tally.Errorf(tally.ECONFLICT, "key %s exists", k.KID)
	}
	s.keys[k.KID] = k
	return nil
}

func (s *memStore) RetireSigningKey(_ context.Context, kid string, notAfter, retireAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errDown
	}
	k, ok := s.keys[kid]
	if !ok {
		return tally.Errorf(tally.ENOTFOUND, "no key %s", kid)
	}
	k.NotAfter, k.RetireAt = notAfter, retireAt
	s.keys[kid] = k
	return nil
}

func (s *memStore) DeleteSigningKey(_ context.Context, kid string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errDown
	}
	delete(s.keys, kid)
	return nil
}

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

const (
	testIssuer   = "https://tally.test"
	testAudience = "https://tally.test/api"
)

// testLedgerKey seals the signing keys of test issuers.
var testLedgerKey = mustLedgerKey(tally.GenerateLedgerKey())

func mustLedgerKey(hex string) *tally.LedgerKey {
	k, err := tally.ParseLedgerKey(hex)
	if err != nil {
		panic(err)
	}
	return k
}

func MustIssuer(tb testing.TB, store tally.CredentialStore, clk *clock) *Issuer {
	tb.Helper()
	i, err := NewIssuer(context.Background(), store, IssuerConfig{
		Issuer: testIssuer, Audience: testAudience, Key: testLedgerKey, Now: clk.Now, Logger: quietLogger,
	})
	if err != nil {
		tb.Fatalf("NewIssuer: %v", err)
	}
	return i
}

func MustVerifier(tb testing.TB, cfg VerifierConfig) *Verifier {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger
	}
	v, err := NewVerifier(cfg)
	if err != nil {
		tb.Fatalf("NewVerifier: %v", err)
	}
	return v
}

func MustIssue(tb testing.TB, i *Issuer, clientID string, scopes ...string) string {
	tb.Helper()
	tok, _, err := i.Issue(context.Background(), clientID, scopes)
	if err != nil {
		tb.Fatalf("Issue: %v", err)
	}
	return tok
}

// MustClient creates a client in store and returns it with its secret.
func MustClient(tb testing.TB, store *memStore, now time.Time, scopes ...string) (tally.Client, string) {
	tb.Helper()
	c, secret, err := NewClient("genesys", scopes, now)
	if err != nil {
		tb.Fatalf("NewClient: %v", err)
	}
	if err := store.CreateClient(context.Background(), c); err != nil {
		tb.Fatalf("CreateClient: %v", err)
	}
	return c, secret
}

// wantAuthError fails unless err is a *tally.Error with code and message.
func wantAuthError(tb testing.TB, err error, code tally.Code, message string) {
	tb.Helper()
	if err == nil {
		tb.Fatalf("got no error, want %s %q", code, message)
	}
	var e *tally.Error
	if !errors.As(err, &e) {
		tb.Fatalf("got %T %v, want *tally.Error", err, err)
	}
	if e.Code != code || e.Message != message {
		tb.Fatalf("got %s %q, want %s %q", e.Code, e.Message, code, message)
	}
}
