package api_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/auth"
)

// e2eTokenRequest posts a token request: form fields, and Basic credentials when id is not empty.
func e2eTokenRequest(t testing.TB, srv *apitest.Server, form url.Values, id, secret string) apitest.Response {
	t.Helper()
	req := e2eRequest(t, srv, "POST", "/oauth/token", "", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	res, err := e2eSend(http.DefaultClient, req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// e2eTokenAnswer is the body of a token response, or of an OAuth error.
type e2eTokenAnswer struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	Scope       string `json:"scope"`
	Error       string `json:"error"`
}

func e2eDecodeToken(t testing.TB, res apitest.Response) e2eTokenAnswer {
	t.Helper()
	var a e2eTokenAnswer
	if err := json.Unmarshal(res.Body, &a); err != nil {
		t.Fatalf("token endpoint body %s: %v", res.Body, err)
	}
	return a
}

// e2eKID is the key id in a token's header.
func e2eKID(t testing.TB, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatalf("token %q: %v", token, err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}

// e2eJWKS returns the server's published keys.
func e2eJWKS(t testing.TB, srv *apitest.Server) []map[string]string {
	t.Helper()
	res := e2eDo(t, srv, "GET", "/.well-known/jwks.json", "", nil)
	e2eStatus(t, res, http.StatusOK)
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(res.Body, &set); err != nil || len(set.Keys) == 0 {
		t.Fatalf("JWKS %s: %v", res.Body, err)
	}
	return set.Keys
}

func TestE2EAuthTokenEndpoint(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		id, secret := srv.Client(tally.ScopeLedgerRead, tally.ScopeLedgerWrite)
		grant := url.Values{"grant_type": {"client_credentials"}}
		withFields := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}

		for _, tc := range []struct {
			name       string
			form       url.Values
			id, secret string
		}{
			{"Basic", grant, id, secret},
			{"form fields", withFields, "", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := e2eTokenRequest(t, srv, tc.form, tc.id, tc.secret)
				e2eStatus(t, res, http.StatusOK)
				if cc := res.Header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control %q", cc)
				}
				a := e2eDecodeToken(t, res)
				if a.AccessToken == "" || a.TokenType != "Bearer" || a.ExpiresIn <= 0 {
					t.Fatalf("token response %s", res.Body)
				}
				if a.Scope != "ledger:read ledger:write" {
					t.Errorf("scope %q", a.Scope)
				}
				// The token opens what its scopes name.
				e2eStatus(t, e2eDo(t, srv, "POST", "/v1/ledger/balance/lookup", a.AccessToken, []byte(`{"customer_hash":"someone"}`)), http.StatusOK)
			})
		}

		for _, tc := range []struct {
			name       string
			form       url.Values
			id, secret string
			status     int
			oauthError string
		}{
			{"wrong secret, Basic", grant, id, secret + "x", http.StatusUnauthorized, "invalid_client"},
			{"wrong secret, form", url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {"nope"}}, "", "", http.StatusUnauthorized, "invalid_client"},
			{"unknown client", grant, "tly_nobody", secret, http.StatusUnauthorized, "invalid_client"},
			{"no client", grant, "", "", http.StatusUnauthorized, "invalid_client"},
			{"unsupported grant", url.Values{"grant_type": {"password"}}, id, secret, http.StatusBadRequest, "unsupported_grant_type"},
			{"no grant", url.Values{}, id, secret, http.StatusBadRequest, "invalid_request"},
			{"scope not granted", url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, id, secret, http.StatusBadRequest, "invalid_scope"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := e2eTokenRequest(t, srv, tc.form, tc.id, tc.secret)
				e2eStatus(t, res, tc.status)
				if a := e2eDecodeToken(t, res); a.Error != tc.oauthError || a.AccessToken != "" {
					t.Errorf("body %s, want error %q", res.Body, tc.oauthError)
				}
				if tc.id != "" && tc.status == http.StatusUnauthorized && !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Basic ") {
					t.Errorf("WWW-Authenticate %q, want a Basic challenge", res.Header.Get("WWW-Authenticate"))
				}
			})
		}

		t.Run("narrower scope", func(t *testing.T) {
			res := e2eTokenRequest(t, srv, url.Values{"grant_type": {"client_credentials"}, "scope": {"ledger:read"}}, id, secret)
			e2eStatus(t, res, http.StatusOK)
			tok := e2eDecodeToken(t, res).AccessToken
			e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, tok, []byte(`{}`)), http.StatusForbidden, tally.EFORBIDDEN)
		})

		t.Run("revoked client", func(t *testing.T) {
			id, secret := srv.Client(tally.ScopeLedgerRead)
			issued := e2eTokenRequest(t, srv, grant, id, secret)
			e2eStatus(t, issued, http.StatusOK)
			tok := e2eDecodeToken(t, issued).AccessToken
			if err := srv.Creds.RevokeClient(context.Background(), id, time.Now().UTC()); err != nil {
				t.Fatal(err)
			}
			res := e2eTokenRequest(t, srv, grant, id, secret)
			e2eStatus(t, res, http.StatusUnauthorized)
			if a := e2eDecodeToken(t, res); a.Error != "invalid_client" {
				t.Errorf("revoked client: %s", res.Body)
			}
			// A token issued before the revocation stops working too (the status was never cached here).
			lookup := []byte(`{"customer_hash":"someone","channel":"webchat","request_id":"r"}`)
			e2eProblem(t, e2eDo(t, srv, "POST", "/v1/ledger/balance/lookup", tok, lookup), http.StatusUnauthorized, tally.EUNAUTHORIZED)
		})

		t.Run("JWKS lists the signing key", func(t *testing.T) {
			kid := e2eKID(t, srv.Token(tally.ScopeLedgerRead))
			keys := e2eJWKS(t, srv)
			if !slices.ContainsFunc(keys, func(k map[string]string) bool {
				return k["kid"] == kid && k["kty"] == "OKP" && k["crv"] == "Ed25519" && k["alg"] == "EdDSA"
			}) {
				t.Errorf("kid %q is not among %v", kid, keys)
			}
			for _, k := range keys {
				if k["d"] != "" {
					t.Errorf("JWKS publishes a private key: %v", k)
				}
			}
		})
	})
}

func TestE2EAuthProtectedEndpoint(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		ctx := context.Background()
		const lookup = "/v1/ledger/balance/lookup"
		body := []byte(`{"customer_hash":"someone"}`)
		real := srv.Token(tally.ScopeLedgerRead)
		kid := e2eKID(t, real)
		now := time.Now()
		claims := jwt.MapClaims{
			"iss": srv.Issuer.IssuerURL(), "aud": "tally", "sub": "tly_forger", "client_id": "tly_forger",
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "forged",
			"scope": "ledger:read ledger:write admin",
		}
		sign := func(method jwt.SigningMethod, key any, kid string) string {
			tok := jwt.NewWithClaims(method, claims)
			tok.Header["typ"] = "at+jwt"
			if kid != "" {
				tok.Header["kid"] = kid
			}
			s, err := tok.SignedString(key)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		foreignPub, foreignKey, _ := ed25519.GenerateKey(rand.Reader)
		var x string
		for _, k := range e2eJWKS(t, srv) {
			if k["kid"] == kid {
				x = k["x"]
			}
		}
		pub, err := base64.RawURLEncoding.DecodeString(x)
		if err != nil || len(pub) != ed25519.PublicKeySize {
			t.Fatalf("JWKS key %q: %v", x, err)
		}
		// A token issued in the past by another issuer over the same keys: it verifies but has expired.
		pastIssuer, err := auth.NewIssuer(ctx, srv.Creds, auth.IssuerConfig{
			Issuer: srv.Issuer.IssuerURL(), Audience: "tally", Key: apitest.LedgerKey, Now: func() time.Time { return now.Add(-2 * time.Hour) },
		})
		if err != nil {
			t.Fatal(err)
		}
		expired, _, err := pastIssuer.Issue(ctx, "tly_expired", []string{tally.ScopeLedgerRead})
		if err != nil {
			t.Fatal(err)
		}
		presentIssuer, err := auth.NewIssuer(ctx, srv.Creds, auth.IssuerConfig{Issuer: srv.Issuer.IssuerURL(), Audience: "tally", Key: apitest.LedgerKey})
		if err != nil {
			t.Fatal(err)
		}
		liveID, _ := srv.Client(tally.ScopeLedgerRead)
		fresh, _, err := presentIssuer.Issue(ctx, liveID, []string{tally.ScopeLedgerRead})
		if err != nil {
			t.Fatal(err)
		}
		session, _, err := srv.Issuer.IssueSession(ctx, srv.Hasher.Hash("someone"), time.Minute)
		if err != nil {
			t.Fatal(err)
		}

		t.Run("control: a token of another issuer instance over the same keys", func(t *testing.T) {
			e2eStatus(t, e2eDo(t, srv, "POST", lookup, fresh, body), http.StatusOK)
		})
		t.Run("a token for a client that does not exist", func(t *testing.T) {
			ghost, _, err := presentIssuer.Issue(ctx, "tly_ghost", []string{tally.ScopeLedgerRead})
			if err != nil {
				t.Fatal(err)
			}
			e2eProblem(t, e2eDo(t, srv, "POST", lookup, ghost, body), http.StatusUnauthorized, tally.EUNAUTHORIZED)
		})
		t.Run("no token", func(t *testing.T) {
			res := e2eDo(t, srv, "POST", lookup, "", body)
			e2eProblem(t, res, http.StatusUnauthorized, tally.EUNAUTHORIZED)
			if h := res.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Bearer ") || strings.Contains(h, "error=") {
				t.Errorf("WWW-Authenticate %q, want a Bearer challenge without an error", h)
			}
		})
		t.Run("another scheme", func(t *testing.T) {
			res := e2eDo(t, srv, "POST", lookup, "", body, "Authorization", "Basic dXNlcjpwYXNz")
			e2eProblem(t, res, http.StatusUnauthorized, tally.EUNAUTHORIZED)
		})
		t.Run("malformed header", func(t *testing.T) {
			res := e2eDo(t, srv, "POST", lookup, "", body, "Authorization", "Bearer a b")
			e2eProblem(t, res, http.StatusBadRequest, "malformed_request")
			if h := res.Header.Get("WWW-Authenticate"); !strings.Contains(h, `error="invalid_request"`) {
				t.Errorf("WWW-Authenticate %q", h)
			}
		})

		for _, tc := range []struct {
			name, token, reason string
		}{
			{"garbage", "garbage", "malformed token"},
			{"three garbage parts", "a.b.c", "malformed token"},
			{"foreign Ed25519 key under the real kid", sign(jwt.SigningMethodEdDSA, foreignKey, kid), "bad signature"},
			{"foreign Ed25519 key under its own kid", sign(jwt.SigningMethodEdDSA, foreignKey, base64.RawURLEncoding.EncodeToString(foreignPub[:8])), "unknown signing key"},
			{"alg none", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid), "unsigned token"},
			{"HS256 keyed with the JWKS public key", sign(jwt.SigningMethodHS256, pub, kid), "'HS256' not allowed"},
			{"HS256 keyed with the JWKS x", sign(jwt.SigningMethodHS256, []byte(x), kid), "'HS256' not allowed"},
			{"expired", expired, "token expired"},
			{"session token", session, "not an access token"},
			{"real token, altered payload", func() string {
				parts := strings.Split(real, ".")
				parts[1] = base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"` + srv.Issuer.IssuerURL() + `","aud":"tally","sub":"x","scope":"admin","exp":9999999999,"iat":1}`))
				return strings.Join(parts, ".")
			}(), "bad signature"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := e2eDo(t, srv, "POST", lookup, tc.token, body)
				e2eProblem(t, res, http.StatusUnauthorized, tally.EUNAUTHORIZED)
				h := res.Header.Get("WWW-Authenticate")
				if !strings.HasPrefix(h, "Bearer ") || !strings.Contains(h, `error="invalid_token"`) || !strings.Contains(h, tc.reason) {
					t.Errorf("WWW-Authenticate %q, want invalid_token for %q", h, tc.reason)
				}
			})
		}

		t.Run("insufficient scope", func(t *testing.T) {
			res := e2eDo(t, srv, "POST", e2eProcessPath, real, []byte(`{"event_id":"e","type":"WebChat","state":"closed","user_id":"u"}`))
			e2eProblem(t, res, http.StatusForbidden, tally.EFORBIDDEN)
			h := res.Header.Get("WWW-Authenticate")
			if !strings.Contains(h, `error="insufficient_scope"`) || !strings.Contains(h, `scope="ledger:write"`) {
				t.Errorf("WWW-Authenticate %q", h)
			}
			if n := e2eCount(t, srv); n != 0 {
				t.Errorf("a refused write wrote %d transactions", n)
			}
		})
		t.Run("admin does not imply read", func(t *testing.T) {
			res := e2eDo(t, srv, "POST", lookup, srv.Token(tally.ScopeAdmin), body)
			e2eProblem(t, res, http.StatusForbidden, tally.EFORBIDDEN)
		})
	})
}
