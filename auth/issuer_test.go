package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tally-ledger/tally"
)

// kidOf returns the kid in a token's header.
func kidOf(tb testing.TB, token string) string {
	tb.Helper()
	var h header
	if err := json.Unmarshal(mustDecode(tb, strings.Split(token, ".")[0]), &h); err != nil {
		tb.Fatal(err)
	}
	return h.Kid
}

// jwksKids returns the kids of a JWK Set.
func jwksKids(tb testing.TB, raw []byte) []string {
	tb.Helper()
	var set jwkSet
	if err := json.Unmarshal(raw, &set); err != nil {
		tb.Fatalf("JWKS %s: %v", raw, err)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	slices.Sort(kids)
	return kids
}

func sorted(s ...string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestJWKS(t *testing.T) {
	clk := newClock()
	iss := MustIssuer(t, newMemStore(), clk)
	var doc map[string][]map[string]string
	if err := json.Unmarshal(iss.JWKS(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc) != 1 || len(doc["keys"]) != 1 {
		t.Fatalf("JWKS %s", iss.JWKS())
	}
	k := doc["keys"][0]
	want := map[string]string{
		"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
		"kid": iss.signer.KID, "x": base64.RawURLEncoding.EncodeToString(iss.signer.public),
	}
	if len(k) != len(want) {
		t.Errorf("JWK members %v, want %v", k, want)
	}
	for name, v := range want {
		if k[name] != v {
			t.Errorf("JWK %s = %q, want %q", name, k[name], v)
		}
	}
	// The kid is the RFC 7638 thumbprint.
	pub, err := jwk{Kty: k["kty"], Crv: k["crv"], X: k["x"]}.publicKey()
	if err != nil || ed25519Thumbprint(pub.(ed25519.PublicKey)) != k["kid"] {
		t.Errorf("kid %s is not the thumbprint of x (%v)", k["kid"], err)
	}
}

func TestRotate(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	store := newMemStore()
	iss := MustIssuer(t, store, clk)
	v := MustVerifier(t, VerifierConfig{Local: iss, Now: clk.Now, CacheSize: -1})

	oldToken := MustIssue(t, iss, "tly_a", tally.ScopeLedgerRead)
	oldKID := kidOf(t, oldToken)

	clk.Advance(10 * time.Minute)
	rotatedAt := clk.Now()
	if err := iss.Rotate(ctx); err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	newToken := MustIssue(t, iss, "tly_a", tally.ScopeLedgerRead)
	newKID := kidOf(t, newToken)
	if newKID == oldKID {
		t.Fatal("Rotate kept the signing key")
	}
	for name, tok := range map[string]string{"old": oldToken, "new": newToken} {
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Errorf("%s token after Rotate: %v", name, err)
		}
	}
	if got, want := jwksKids(t, iss.JWKS()), sorted(oldKID, newKID); !slices.Equal(got, want) {
		t.Errorf("JWKS after Rotate lists %v, want %v", got, want)
	}
	old := store.keys[oldKID]
	if !old.NotAfter.Equal(rotatedAt) || !old.RetireAt.Equal(rotatedAt.Add(DefaultTTL+DefaultOverlap)) {
		t.Errorf("old key NotAfter %v RetireAt %v, want %v and %v", old.NotAfter, old.RetireAt,
			rotatedAt, rotatedAt.Add(DefaultTTL+DefaultOverlap))
	}

	// Just before retirement the old key is still published; after it, maintenance deletes it.
	clk.Advance(DefaultTTL + DefaultOverlap - time.Second)
	if err := iss.maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := jwksKids(t, iss.JWKS()); !slices.Contains(got, oldKID) {
		t.Errorf("old key gone before retirement: %v", got)
	}
	clk.Advance(time.Second)
	if err := iss.maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := jwksKids(t, iss.JWKS()), []string{newKID}; !slices.Equal(got, want) {
		t.Errorf("JWKS after retirement lists %v, want %v", got, want)
	}
	if got, want := store.kids(), []string{newKID}; !slices.Equal(got, want) {
		t.Errorf("store after retirement holds %v, want %v", got, want)
	}
	// A token of the retired key, even one with a live exp, no longer verifies.
	oldPrivate, err := OpenSigningKey(testLedgerKey, old)
	if err != nil {
		t.Fatal(err)
	}
	stale := sign(t, jwt.SigningMethodEdDSA, oldPrivate,
		map[string]any{"kid": oldKID, "typ": "at+jwt"}, localClaims(clk.Now()))
	_, err = v.Verify(ctx, stale)
	wantAuthError(t, err, tally.EUNAUTHORIZED, "unknown signing key")
	if _, err := v.Verify(ctx, MustIssue(t, iss, "tly_a", tally.ScopeLedgerRead)); err != nil {
		t.Errorf("new key after retirement of the old: %v", err)
	}
}

func TestKeyRotatesWhenItsPeriodEnds(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	store := newMemStore()
	a := MustIssuer(t, store, clk)
	b := MustIssuer(t, store, clk)
	first := kidOf(t, MustIssue(t, a, "tly_a"))

	// Run rotates one reload interval before the end, so that replicas learn the successor in time.
	clk.Advance(DefaultRotationPeriod - DefaultReloadInterval - time.Second)
	if err := a.maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kidOf(t, MustIssue(t, a, "tly_a")); got != first {
		t.Fatal("rotated too early")
	}
	clk.Advance(2 * time.Second)
	if err := a.maintain(ctx); err != nil {
		t.Fatal(err)
	}
	second := kidOf(t, MustIssue(t, a, "tly_a"))
	if second == first {
		t.Fatal("Run did not rotate")
	}
	// Replica b, which has not reloaded for a long time, reloads before signing and finds it.
	if got := kidOf(t, MustIssue(t, b, "tly_b")); got != second {
		t.Errorf("b signs with %s, want %s", got, second)
	}

	// Without Run, a replica whose key reaches its NotAfter finds or creates a successor when it signs.
	clk.Advance(DefaultRotationPeriod)
	third := kidOf(t, MustIssue(t, b, "tly_b"))
	if third == second {
		t.Fatal("b signed past NotAfter")
	}
	if got := kidOf(t, MustIssue(t, a, "tly_a")); got != third {
		t.Errorf("a signs with %s, want b's new key %s", got, third)
	}
	// Maintenance prunes the first key, long retired.
	if err := a.maintain(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := store.kids(), sorted(second, third); !slices.Equal(got, want) {
		t.Errorf("store holds %v, want %v", got, want)
	}
}

// blindOnce hides the stored keys from the first read, as when two replicas start at once.
type blindOnce struct {
	*memStore
	mu    sync.Mutex
	blind bool
}

func (s *blindOnce) SigningKeys(ctx context.Context) ([]tally.SigningKey, error) {
	s.mu.Lock()
	blind := s.blind
	s.blind = false
	s.mu.Unlock()
	if blind {
		return nil, nil
	}
	return s.memStore.SigningKeys(ctx)
}

func TestReplicasShareKeys(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	store := newMemStore()
	a := MustIssuer(t, store, clk)
	b := MustIssuer(t, store, clk)
	if n := len(store.kids()); n != 1 {
		t.Fatalf("second replica created a key it did not need: %d keys", n)
	}
	vb := MustVerifier(t, VerifierConfig{Local: b, Now: clk.Now})
	if _, err := vb.Verify(ctx, MustIssue(t, a, "tly_a", tally.ScopeLedgerRead)); err != nil {
		t.Fatalf("b verifies a's token: %v", err)
	}

	// a rotates; b meets the new kid within a second of its last reload, then after.
	if err := a.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := MustIssue(t, a, "tly_a", tally.ScopeLedgerRead)
	_, err := vb.Verify(ctx, fresh)
	wantAuthError(t, err, tally.EUNAUTHORIZED, "unknown signing key")
	clk.Advance(reloadAtMostEvery)
	if _, err := vb.Verify(ctx, fresh); err != nil {
		t.Fatalf("b verifies a's token of a new key: %v", err)
	}

	// Random kids cause at most one store read per second.
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	spray := func() {
		for n := range 50 {
			tok := sign(t, jwt.SigningMethodEdDSA, stranger,
				map[string]any{"kid": "random-" + string(rune('A'+n)), "typ": "at+jwt"}, localClaims(clk.Now()))
			_, err := vb.Verify(ctx, tok)
			wantAuthError(t, err, tally.EUNAUTHORIZED, "unknown signing key")
		}
	}
	reads := store.keyReadCount()
	spray()
	if got := store.keyReadCount() - reads; got != 0 {
		t.Errorf("spray right after a reload read the store %d times, want 0", got)
	}
	clk.Advance(reloadAtMostEvery)
	reads = store.keyReadCount()
	spray()
	if got := store.keyReadCount() - reads; got != 1 {
		t.Errorf("spray read the store %d times, want 1", got)
	}
}

func TestReplicasRaceToCreateKeys(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	mem := newMemStore()
	a := MustIssuer(t, mem, clk)
	b := MustIssuer(t, &blindOnce{memStore: mem, blind: true}, clk) // saw no key, so made its own
	if n := len(mem.kids()); n != 2 {
		t.Fatalf("store holds %d keys, want 2", n)
	}
	ta, tb := MustIssue(t, a, "tly_a"), MustIssue(t, b, "tly_b")
	clk.Advance(reloadAtMostEvery)
	va := MustVerifier(t, VerifierConfig{Local: a, Now: clk.Now})
	vb := MustVerifier(t, VerifierConfig{Local: b, Now: clk.Now})
	for name, tc := range map[string]struct {
		v   *Verifier
		tok string
	}{"a's by a": {va, ta}, "b's by a": {va, tb}, "a's by b": {vb, ta}, "b's by b": {vb, tb}} {
		if _, err := tc.v.Verify(ctx, tc.tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if got := jwksKids(t, a.JWKS()); len(got) != 2 {
		t.Errorf("a publishes %v", got)
	}
}

func TestIssuerWithStoreDown(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	store := newMemStore()
	store.setDown(true)
	_, err := NewIssuer(ctx, store, IssuerConfig{Issuer: testIssuer, Audience: testAudience, Key: testLedgerKey, Now: clk.Now, Logger: quietLogger})
	if tally.ErrorCode(err) != tally.EUNAVAILABLE {
		t.Fatalf("NewIssuer with the store down: %v, want EUNAVAILABLE", err)
	}

	store.setDown(false)
	iss := MustIssuer(t, store, clk)
	v := MustVerifier(t, VerifierConfig{Local: iss, Now: clk.Now})
	store.setDown(true)
	clk.Advance(time.Hour) // due for a reload, which fails: the key in memory still signs
	tok := MustIssue(t, iss, "tly_a", tally.ScopeLedgerRead)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("Verify with the store down: %v", err)
	}
	_, stranger, _ := ed25519.GenerateKey(rand.Reader)
	clk.Advance(reloadAtMostEvery)
	_, err = v.Verify(ctx, sign(t, jwt.SigningMethodEdDSA, stranger, map[string]any{"kid": "x", "typ": "at+jwt"}, localClaims(clk.Now())))
	if tally.ErrorCode(err) != tally.EUNAVAILABLE {
		t.Fatalf("unknown kid with the store down: %v, want EUNAVAILABLE", err)
	}
	if err := iss.Rotate(ctx); tally.ErrorCode(err) != tally.EUNAVAILABLE {
		t.Fatalf("Rotate with the store down: %v, want EUNAVAILABLE", err)
	}
}

func TestNewIssuerRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]IssuerConfig{
		"no issuer":                 {Audience: testAudience, Key: testLedgerKey},
		"no audience":               {Issuer: testIssuer, Key: testLedgerKey},
		"no ledger key":             {Issuer: testIssuer, Audience: testAudience},
		"overlap shorter than load": {Issuer: testIssuer, Audience: testAudience, Key: testLedgerKey, Overlap: time.Second, ReloadInterval: time.Minute},
		"negative TTL":              {Issuer: testIssuer, Audience: testAudience, Key: testLedgerKey, TTL: -time.Second},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := NewIssuer(context.Background(), newMemStore(), cfg)
			if tally.ErrorCode(err) != tally.EINVALID {
				t.Fatalf("got %v, want EINVALID", err)
			}
		})
	}
}
