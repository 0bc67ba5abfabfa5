package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
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

// sign makes a token with any header and claims, signed by method with key ("none" leaves the signature
// empty).
func sign(tb testing.TB, method jwt.SigningMethod, key any, header map[string]any, claims jwt.MapClaims) string {
	tb.Helper()
	t := jwt.NewWithClaims(method, claims)
	for k, v := range header {
		if v == nil {
			delete(t.Header, k)
		} else {
			t.Header[k] = v
		}
	}
	s, err := t.SignedString(key)
	if err != nil {
		tb.Fatalf("signing: %v", err)
	}
	return s
}

// localClaims are the claims of a valid token of testIssuer at now.
func localClaims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": testIssuer, "sub": "tly_client", "aud": testAudience,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"jti": "j1", "scope": "ledger:read",
	}
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

func segment(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func mustDecode(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestIssueAndVerify(t *testing.T) {
	clk := newClock()
	iss := MustIssuer(t, newMemStore(), clk)
	v := MustVerifier(t, VerifierConfig{Local: iss, Now: clk.Now})

	tok := MustIssue(t, iss, "tly_abc", tally.ScopeLedgerRead, tally.ScopeAdmin)
	p, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := Principal{Subject: "tly_abc", ClientID: "tly_abc", Scopes: []string{"ledger:read", "admin"},
		Issuer: testIssuer, ExpiresAt: clk.Now().Add(time.Hour)}
	if p.Subject != want.Subject || p.ClientID != want.ClientID || !slices.Equal(p.Scopes, want.Scopes) ||
		p.Issuer != want.Issuer || !p.ExpiresAt.Equal(want.ExpiresAt) {
		t.Fatalf("got %+v, want %+v", p, want)
	}

	for scope, has := range map[string]bool{
		tally.ScopeLedgerRead:  true,
		tally.ScopeAdmin:       true,
		tally.ScopeLedgerWrite: false, // admin does not imply it
		"":                     false,
	} {
		if p.Has(scope) != has {
			t.Errorf("Has(%q) = %v, want %v", scope, !has, has)
		}
	}

	// The header names the key and the token type; the claims are those documented.
	parts := strings.Split(tok, ".")
	var h map[string]any
	var c map[string]any
	hb, _ := base64.RawURLEncoding.DecodeString(parts[0])
	cb, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if json.Unmarshal(hb, &h) != nil || json.Unmarshal(cb, &c) != nil {
		t.Fatal("token is not JSON")
	}
	if h["alg"] != "EdDSA" || h["typ"] != "at+jwt" || h["kid"] != iss.signer.KID {
		t.Errorf("header %v", h)
	}
	for _, claim := range []string{"iss", "sub", "aud", "iat", "nbf", "exp", "jti", "scope", "client_id"} {
		if _, ok := c[claim]; !ok {
			t.Errorf("claim %s missing from %v", claim, c)
		}
	}
	if c["scope"] != "ledger:read admin" || c["aud"] != testAudience {
		t.Errorf("claims %v", c)
	}
}

func TestVerifyRejects(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	iss := MustIssuer(t, newMemStore(), clk)
	v := MustVerifier(t, VerifierConfig{Local: iss, Now: clk.Now})
	key, kid := iss.signer.private, iss.signer.KID
	hdr := map[string]any{"kid": kid, "typ": "at+jwt"}
	ok := sign(t, jwt.SigningMethodEdDSA, key, hdr, localClaims(now))
	other := sign(t, jwt.SigningMethodEdDSA, key, hdr, with(localClaims(now), "jti", "j2"))
	// The valid token is verified (and so cached) first: tampered copies must not hit the cache.
	if _, err := v.Verify(context.Background(), ok); err != nil {
		t.Fatalf("valid token: %v", err)
	}

	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, strangerKey, _ := ed25519.GenerateKey(rand.Reader)
	parts := strings.Split(ok, ".")

	tests := []struct {
		name  string
		token string
		want  string
	}{
		{"alg none", segment(t, map[string]any{"alg": "none", "typ": "at+jwt", "kid": kid}) + "." + parts[1] + ".",
			"unsigned token"},
		{"alg none by the library", sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, hdr, localClaims(now)),
			"unsigned token"},
		{"alg NONE", segment(t, map[string]any{"alg": "NONE", "typ": "at+jwt", "kid": kid}) + "." + parts[1] + ".",
			"unsigned token"},
		{"HS256 keyed with the public key", sign(t, jwt.SigningMethodHS256, []byte(iss.signer.public), hdr, localClaims(now)),
			`signing algorithm "HS256" not allowed`},
		{"HS256 keyed with the JWK x", sign(t, jwt.SigningMethodHS256, []byte(b64(iss.signer.public)), hdr, localClaims(now)),
			`signing algorithm "HS256" not allowed`},
		{"RS256 with a foreign key", sign(t, jwt.SigningMethodRS256, rsaKey, hdr, localClaims(now)),
			`signing algorithm "RS256" not allowed`},
		{"ES256 with a foreign key", sign(t, jwt.SigningMethodES256, ecKey, hdr, localClaims(now)),
			`signing algorithm "ES256" not allowed`},
		{"tampered payload", parts[0] + "." + segment(t, with(localClaims(now), "scope", "admin ledger:write")) + "." + parts[2],
			"bad signature"},
		{"signature of another token", parts[0] + "." + parts[1] + "." + strings.Split(other, ".")[2],
			"bad signature"},
		{"truncated signature", parts[0] + "." + parts[1] + "." + b64(mustDecode(t, parts[2])[:60]), "bad signature"},
		{"foreign key under our kid", sign(t, jwt.SigningMethodEdDSA, strangerKey, hdr, localClaims(now)),
			"bad signature"},
		{"unknown kid", sign(t, jwt.SigningMethodEdDSA, strangerKey, map[string]any{"kid": "stranger", "typ": "at+jwt"}, localClaims(now)),
			"unknown signing key"},
		{"no kid", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"typ": "at+jwt"}, localClaims(now)),
			"token has no key id"},
		{"not an access token", sign(t, jwt.SigningMethodEdDSA, key, map[string]any{"kid": kid}, localClaims(now)),
			"not an access token"},
		{"expired", sign(t, jwt.SigningMethodEdDSA, key, hdr, with(localClaims(now.Add(-2*time.Hour)), "exp", now.Add(-31*time.Second).Unix())),
			"token expired"},
		{"nbf in the future", sign(t, jwt.SigningMethodEdDSA, key, hdr, with(localClaims(now), "nbf", now.Add(time.Minute).Unix())),
			"token not valid yet"},
		{"iat in the future", sign(t, jwt.SigningMethodEdDSA, key, hdr, with(localClaims(now), "iat", now.Add(time.Minute).Unix(), "nbf", nil)),
			"token issued in the future"},
		{"wrong iss", sign(t, jwt.SigningMethodEdDSA, key, hdr, with(localClaims(now), "iss", "https://evil.test")),
			"wrong issuer"},
		{"no iss", sign(t, jwt.SigningMethodEdDSA, key, hdr, with(localClaims(now), "iss", nil)),
			"wrong issuer"},
		{"wrong aud", sign(t, jwt.SigningMethodEdDSA, key, hdr, with(localClaims(now), "aud", "https://other.test")),
			"wrong audience"},
		{"no aud", sign(t, jwt.SigningMethodEdDSA, key, hdr, with(localClaims(now), "aud", nil)),
			"token lacks a required claim"},
		{"aud list without ours", sign(t, jwt.SigningMethodEdDSA, key, hdr, with(localClaims(now), "aud", []string{"a", "b"})),
			"wrong audience"},
		{"no exp", sign(t, jwt.SigningMethodEdDSA, key, hdr, with(localClaims(now), "exp", nil)),
			"token lacks a required claim"},
		{"no sub", sign(t, jwt.SigningMethodEdDSA, key, hdr, with(localClaims(now), "sub", nil)),
			"token lacks a required claim"},
		{"scope not a string", sign(t, jwt.SigningMethodEdDSA, key, hdr, with(localClaims(now), "scope", 7)),
			"malformed token"},
		{"empty", "", "malformed token"},
		{"huge", ok + strings.Repeat("A", maxTokenBytes), "malformed token"},
		{"two segments", parts[0] + "." + parts[1], "malformed token"},
		{"four segments", ok + ".x", "malformed token"},
		{"header not base64", "!!!." + parts[1] + "." + parts[2], "malformed token"},
		{"header not JSON", b64([]byte("{alg")) + "." + parts[1] + "." + parts[2], "malformed token"},
		{"claims not JSON", parts[0] + "." + b64([]byte("[1")) + "." + parts[2], "malformed token"},
		{"signature not base64", parts[0] + "." + parts[1] + ".%%%", "malformed token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := v.Verify(context.Background(), tt.token)
			wantAuthError(t, err, tally.EUNAUTHORIZED, tt.want)
		})
	}
}

func TestVerifyLeeway(t *testing.T) {
	clk := newClock()
	now := clk.Now()
	iss := MustIssuer(t, newMemStore(), clk)
	key, hdr := iss.signer.private, map[string]any{"kid": iss.signer.KID, "typ": "application/at+jwt"}

	tests := []struct {
		name   string
		leeway time.Duration
		claims jwt.MapClaims
		want   string // "" for accepted
	}{
		{"expired within default leeway", 0, with(localClaims(now.Add(-time.Hour)), "exp", now.Add(-20*time.Second).Unix()), ""},
		{"nbf within default leeway", 0, with(localClaims(now), "nbf", now.Add(20*time.Second).Unix()), ""},
		{"expired beyond a 5 s leeway", 5 * time.Second, with(localClaims(now.Add(-time.Hour)), "exp", now.Add(-20*time.Second).Unix()), "token expired"},
		{"expired with no leeway", -1, with(localClaims(now.Add(-time.Hour)), "exp", now.Add(-time.Second).Unix()), "token expired"},
		{"expired within a 2 min leeway", 2 * time.Minute, with(localClaims(now.Add(-time.Hour)), "exp", now.Add(-time.Minute).Unix()), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := MustVerifier(t, VerifierConfig{Local: iss, Now: clk.Now, Leeway: tt.leeway})
			_, err := v.Verify(context.Background(), sign(t, jwt.SigningMethodEdDSA, key, hdr, tt.claims))
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			wantAuthError(t, err, tally.EUNAUTHORIZED, tt.want)
		})
	}
}

func TestVerifyCache(t *testing.T) {
	clk := newClock()
	store := newMemStore()
	iss := MustIssuer(t, store, clk)
	v := MustVerifier(t, VerifierConfig{Local: iss, Now: clk.Now, CacheSize: 3})
	ctx := context.Background()

	tok := MustIssue(t, iss, "tly_a", tally.ScopeLedgerRead)
	p, err := v.Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	p.Scopes[0] = "admin" // a caller scribbling on its principal does not change the cached one
	// A cached token verifies without its key: delete the key from the issuer's memory and the store.
	for _, kid := range store.kids() {
		_ = store.DeleteSigningKey(ctx, kid)
	}
	iss.install(nil)
	p, err = v.Verify(ctx, tok)
	if err != nil {
		t.Fatalf("cached token: %v", err)
	}
	if !slices.Equal(p.Scopes, []string{tally.ScopeLedgerRead}) {
		t.Fatalf("cached scopes %v", p.Scopes)
	}

	// Its entry lasts as long as the token.
	clk.Advance(time.Hour)
	_, err = v.Verify(ctx, tok)
	if tally.ErrorCode(err) != tally.EUNAUTHORIZED {
		t.Fatalf("expired cached token: %v", err)
	}

	// The cache stays within its size.
	iss2 := MustIssuer(t, store, clk)
	v2 := MustVerifier(t, VerifierConfig{Local: iss2, Now: clk.Now, CacheSize: 3})
	for n := range 10 {
		if _, err := v2.Verify(ctx, MustIssue(t, iss2, "tly_"+string(rune('a'+n)), tally.ScopeLedgerRead)); err != nil {
			t.Fatal(err)
		}
		if l := v2.cache.len(); l > 3 {
			t.Fatalf("cache holds %d entries", l)
		}
	}
}

func TestVerifyConcurrently(t *testing.T) {
	clk := newClock()
	iss := MustIssuer(t, newMemStore(), clk)
	v := MustVerifier(t, VerifierConfig{Local: iss, Now: clk.Now, CacheSize: 5})
	tokens := make([]string, 8)
	for n := range tokens {
		tokens[n] = MustIssue(t, iss, "tly_c", tally.ScopeLedgerWrite)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for n := range 200 {
				if _, err := v.Verify(context.Background(), tokens[(g+n)%len(tokens)]); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			if err := iss.Rotate(context.Background()); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	wg.Wait()
}

func TestNewVerifierRejectsBadConfig(t *testing.T) {
	clk := newClock()
	iss := MustIssuer(t, newMemStore(), clk)
	good := ExternalIssuer{Issuer: "https://idp.test", Audience: "tally", JWKSURL: "https://idp.test/jwks"}
	tests := []struct {
		name string
		cfg  VerifierConfig
	}{
		{"no issuer at all", VerifierConfig{}},
		{"external without audience", VerifierConfig{External: []ExternalIssuer{{Issuer: "https://idp.test", JWKSURL: good.JWKSURL}}}},
		{"plain http JWKS", VerifierConfig{External: []ExternalIssuer{{Issuer: good.Issuer, Audience: "tally", JWKSURL: "http://idp.test/jwks"}}}},
		{"HS256", VerifierConfig{External: []ExternalIssuer{{Issuer: good.Issuer, Audience: "tally", JWKSURL: good.JWKSURL, Algorithms: []string{"HS256"}}}}},
		{"none", VerifierConfig{External: []ExternalIssuer{{Issuer: good.Issuer, Audience: "tally", JWKSURL: good.JWKSURL, Algorithms: []string{"none"}}}}},
		{"twice", VerifierConfig{External: []ExternalIssuer{good, good}}},
		{"same as local", VerifierConfig{Local: iss, External: []ExternalIssuer{{Issuer: testIssuer, Audience: "x", JWKSURL: good.JWKSURL}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewVerifier(tt.cfg)
			if tally.ErrorCode(err) != tally.EINVALID {
				t.Fatalf("got %v, want EINVALID", err)
			}
		})
	}
}
