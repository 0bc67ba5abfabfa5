package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tally-ledger/tally"
)

const (
	idpIssuer   = "https://idp.test"
	idpAudience = "tally-api"
)

// jwksServer is an external issuer's JWKS endpoint whose keys and health the test controls.
type jwksServer struct {
	*httptest.Server
	mu      sync.Mutex
	keys    []jwk
	status  int
	fetches int
}

func newJWKSServer(t *testing.T, keys ...jwk) *jwksServer {
	s := &jwksServer{keys: keys, status: http.StatusOK}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.fetches++
		if s.status != http.StatusOK {
			http.Error(w, "down", s.status)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		_ = json.NewEncoder(w).Encode(jwkSet{Keys: s.keys})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) set(status int, keys ...jwk) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.keys = status, keys
}

func (s *jwksServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetches
}

func rsaJWK(kid string, k *rsa.PrivateKey) jwk {
	return jwk{Kty: "RSA", N: b64(k.N.Bytes()), E: b64(big.NewInt(int64(k.E)).Bytes()), Kid: kid, Use: "sig"}
}

func ecJWK(kid string, k *ecdsa.PrivateKey) jwk {
	x, y := make([]byte, 32), make([]byte, 32)
	k.X.FillBytes(x)
	k.Y.FillBytes(y)
	return jwk{Kty: "EC", Crv: "P-256", X: b64(x), Y: b64(y), Kid: kid, Alg: "ES256"}
}

func idpClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": idpIssuer, "sub": "svc-42", "azp": "genesys-prod", "aud": []string{idpAudience, "other"},
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "scp": []string{"ledger:read"},
		"jti": rand.Text(),
	}
}

var (
	rsaOnce       sync.Once
	rsaKeys       [3]*rsa.PrivateKey
	rsaKeysFailed error
)

// testRSAKeys are generated once: RSA key generation is slow under the race detector.
func testRSAKeys(tb testing.TB) [3]*rsa.PrivateKey {
	rsaOnce.Do(func() {
		for n := range rsaKeys {
			if rsaKeys[n], rsaKeysFailed = rsa.GenerateKey(rand.Reader, 2048); rsaKeysFailed != nil {
				return
			}
		}
	})
	if rsaKeysFailed != nil {
		tb.Fatal(rsaKeysFailed)
	}
	return rsaKeys
}

func TestExternalIssuer(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	rk := testRSAKeys(t)
	r1, r2, foreign := rk[0], rk[1], rk[2]
	e1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	o1pub, o1, _ := ed25519.GenerateKey(rand.Reader)
	srv := newJWKSServer(t, rsaJWK("r1", r1), ecJWK("e1", e1), ed25519JWK("o1", o1pub),
		jwk{Kty: "oct", Kid: "secret"}) // not a public key: skipped

	local := MustIssuer(t, newMemStore(), clk)
	v := MustVerifier(t, VerifierConfig{
		Local:      local,
		External:   []ExternalIssuer{{Issuer: idpIssuer, Audience: idpAudience, JWKSURL: srv.URL + "/jwks"}},
		HTTPClient: srv.Client(),
		Now:        clk.Now,
	})
	now := clk.Now()

	// Each supported key type verifies; one fetch serves them all.
	for _, tc := range []struct {
		name   string
		method jwt.SigningMethod
		key    any
		kid    string
	}{
		{"RS256", jwt.SigningMethodRS256, r1, "r1"},
		{"ES256", jwt.SigningMethodES256, e1, "e1"},
		{"EdDSA", jwt.SigningMethodEdDSA, o1, "o1"},
	} {
		p, err := v.Verify(ctx, sign(t, tc.method, tc.key, map[string]any{"kid": tc.kid}, idpClaims(now)))
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if p.Issuer != idpIssuer || p.Subject != "svc-42" || p.ClientID != "genesys-prod" || !p.Has(tally.ScopeLedgerRead) {
			t.Errorf("%s: principal %+v", tc.name, p)
		}
	}
	if n := srv.count(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	// Tokens are routed by iss: the local issuer's still verify.
	if _, err := v.Verify(ctx, MustIssue(t, local, "tly_a", tally.ScopeLedgerRead)); err != nil {
		t.Fatalf("local token: %v", err)
	}

	hs := jwt.SigningMethodHS256
	for _, tc := range []struct {
		name  string
		token string
		want  string
	}{
		{"HS256 keyed with the RSA modulus", sign(t, hs, r1.N.Bytes(), map[string]any{"kid": "r1"}, idpClaims(now)),
			`signing algorithm "HS256" not allowed`},
		{"PS256 not configured", sign(t, jwt.SigningMethodPS256, r1, map[string]any{"kid": "r1"}, idpClaims(now)),
			`signing algorithm "PS256" not allowed`},
		{"ES256 header on the RSA kid", sign(t, jwt.SigningMethodES256, e1, map[string]any{"kid": "r1"}, idpClaims(now)),
			`signing algorithm "ES256" does not fit the key`},
		{"EdDSA header on the EC kid", sign(t, jwt.SigningMethodEdDSA, o1, map[string]any{"kid": "e1"}, idpClaims(now)),
			`signing algorithm "EdDSA" does not fit the key`},
		{"RS256 from a foreign key under r1", sign(t, jwt.SigningMethodRS256, foreign, map[string]any{"kid": "r1"}, idpClaims(now)),
			"bad signature"},
		{"kid of an oct key, which the set never yields", sign(t, hs, []byte("x"), map[string]any{"kid": "secret", "alg": "RS256"}, idpClaims(now)),
			"unknown signing key"},
		{"wrong audience", sign(t, jwt.SigningMethodRS256, r1, map[string]any{"kid": "r1"}, with(idpClaims(now), "aud", "someone-else")),
			"wrong audience"},
		{"expired", sign(t, jwt.SigningMethodRS256, r1, map[string]any{"kid": "r1"}, with(idpClaims(now), "exp", now.Add(-time.Hour).Unix())),
			"token expired"},
		{"unknown issuer", sign(t, jwt.SigningMethodRS256, r1, map[string]any{"kid": "r1"}, with(idpClaims(now), "iss", "https://idp.evil")),
			"wrong issuer"},
		{"alg none", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, map[string]any{"kid": "r1"}, idpClaims(now)),
			"unsigned token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(ctx, tc.token)
			wantAuthError(t, err, tally.EUNAUTHORIZED, tc.want)
		})
	}
	if n := srv.count(); n != 1 {
		t.Fatalf("%d fetches after rejections of known kids, want 1", n)
	}

	// The issuer rotates from r1 to r2. Within 30 s of the last fetch the new kid is unknown; after, one
	// fetch finds it.
	srv.set(http.StatusOK, rsaJWK("r2", r2))
	byR2 := func() string {
		return sign(t, jwt.SigningMethodRS256, r2, map[string]any{"kid": "r2"}, idpClaims(clk.Now()))
	}
	_, err := v.Verify(ctx, byR2())
	wantAuthError(t, err, tally.EUNAUTHORIZED, "unknown signing key")
	clk.Advance(DefaultJWKSMinRefresh)
	if _, err := v.Verify(ctx, byR2()); err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}
	if n := srv.count(); n != 2 {
		t.Fatalf("%d fetches after rotation, want 2", n)
	}
	_, err = v.Verify(ctx, sign(t, jwt.SigningMethodRS256, r1, map[string]any{"kid": "r1"}, idpClaims(clk.Now())))
	wantAuthError(t, err, tally.EUNAUTHORIZED, "unknown signing key")

	// Random kids cause at most one fetch per 30 s.
	spray := func() {
		for n := range 100 {
			tok := sign(t, jwt.SigningMethodRS256, foreign, map[string]any{"kid": "rnd" + big.NewInt(int64(n)).String()}, idpClaims(clk.Now()))
			_, err := v.Verify(ctx, tok)
			wantAuthError(t, err, tally.EUNAUTHORIZED, "unknown signing key")
		}
	}
	spray()
	if n := srv.count(); n != 2 {
		t.Fatalf("%d fetches after a spray, want still 2", n)
	}
	clk.Advance(DefaultJWKSMinRefresh)
	spray()
	if n := srv.count(); n != 3 {
		t.Fatalf("%d fetches after a spray 30 s later, want 3", n)
	}

	// A set older than its TTL is fetched again; when that fails, the stale keys keep working.
	clk.Advance(DefaultJWKSCacheTTL)
	if _, err := v.Verify(ctx, byR2()); err != nil {
		t.Fatal(err)
	}
	if n := srv.count(); n != 4 {
		t.Fatalf("%d fetches after the TTL, want 4", n)
	}
	srv.set(http.StatusInternalServerError)
	clk.Advance(DefaultJWKSCacheTTL)
	if _, err := v.Verify(ctx, byR2()); err != nil {
		t.Fatalf("stale key with the JWKS endpoint down: %v", err)
	}
	if n := srv.count(); n != 5 {
		t.Fatalf("%d fetches, want 5", n)
	}
}

func TestExternalIssuerUnavailable(t *testing.T) {
	clk := newClock()
	rk := testRSAKeys(t)
	srv := newJWKSServer(t)
	srv.set(http.StatusBadGateway)
	v := MustVerifier(t, VerifierConfig{
		External:   []ExternalIssuer{{Issuer: idpIssuer, Audience: idpAudience, JWKSURL: srv.URL, Algorithms: []string{"RS256"}}},
		HTTPClient: srv.Client(),
		Now:        clk.Now,
	})
	tok := sign(t, jwt.SigningMethodRS256, rk[0], map[string]any{"kid": "r1"}, idpClaims(clk.Now()))
	for range 3 { // one fetch; the next attempts wait for the refresh interval
		if _, err := v.Verify(context.Background(), tok); tally.ErrorCode(err) != tally.EUNAVAILABLE {
			t.Fatalf("got %v, want EUNAVAILABLE", err)
		}
	}
	if n := srv.count(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	srv.set(http.StatusOK, rsaJWK("r1", rk[0]))
	clk.Advance(DefaultJWKSMinRefresh)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

func TestJWKPublicKey(t *testing.T) {
	rk := testRSAKeys(t)
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	goodEC := ecJWK("e", ec)
	offCurve := goodEC
	offCurve.Y = b64(append(make([]byte, 31), 1))
	smallRSA := jwk{Kty: "RSA", N: b64(new(big.Int).Lsh(big.NewInt(1), 1023).Bytes()), E: "AQAB"}
	evenE := rsaJWK("r", rk[0])
	evenE.E = b64([]byte{2})

	for _, tc := range []struct {
		name string
		k    jwk
		ok   bool
	}{
		{"RSA", rsaJWK("r", rk[0]), true},
		{"EC P-256", goodEC, true},
		{"Ed25519", ed25519JWK("o", edPub), true},
		{"EC point off the curve", offCurve, false},
		{"EC P-384", jwk{Kty: "EC", Crv: "P-384", X: goodEC.X, Y: goodEC.Y}, false},
		{"RSA of 1024 bits", smallRSA, false},
		{"RSA with an even exponent", evenE, false},
		{"X25519", jwk{Kty: "OKP", Crv: "X25519", X: b64(edPub)}, false},
		{"Ed25519 of the wrong length", jwk{Kty: "OKP", Crv: "Ed25519", X: b64(edPub[:31])}, false},
		{"oct", jwk{Kty: "oct"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.k.publicKey()
			if (err == nil) != tc.ok {
				t.Fatalf("publicKey: %v, want ok %v", err, tc.ok)
			}
		})
	}
	if !slices.Contains(DefaultExternalAlgorithms, "RS256") {
		t.Error("RS256 is not a default")
	}
}
