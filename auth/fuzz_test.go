package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

// fuzzCustomer is the customer hash of the fuzzed session.
var fuzzCustomer = strings.Repeat("c0", 32)

// fuzzTokens are tokens this issuer signed, and variations of them that it did not: the seeds of the
// token fuzz targets.
func fuzzTokens(f *testing.F, i *Issuer) (access, session string) {
	f.Helper()
	access = MustIssue(f, i, "tly_fuzz", tally.ScopeLedgerRead, tally.ScopeAdmin)
	session, _, err := i.IssueSession(context.Background(), fuzzCustomer, time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	for _, tok := range []string{access, session} {
		parts := strings.Split(tok, ".")
		f.Add(tok)
		f.Add(parts[0] + "." + parts[1] + ".")                                                       // no signature
		f.Add(base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".") // alg none
		f.Add(parts[0] + "." + parts[1] + "." + parts[2][:len(parts[2])-1] + "B")                    // last character changed
		f.Add(parts[0] + "." + parts[1] + "=." + parts[2])                                           // padding
		f.Add(tok + "." + parts[2])
		f.Add(strings.Replace(tok, parts[0], base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"x","typ":"at+jwt"}`)), 1))
	}
	f.Add("")
	f.Add("a.b.c")
	return access, session
}

// FuzzVerify checks the access token parser: whatever the string, Verify never panics, refuses with
// EUNAUTHORIZED, and accepts only the very token the issuer signed, with the principal it was signed for.
func FuzzVerify(f *testing.F) {
	store, clk := newMemStore(), newClock()
	i := MustIssuer(f, store, clk)
	v := MustVerifier(f, VerifierConfig{Local: i, Now: clk.Now})
	access, _ := fuzzTokens(f, i)
	f.Fuzz(func(t *testing.T, raw string) {
		p, err := v.Verify(context.Background(), raw)
		if err != nil {
			if c := tally.ErrorCode(err); c != tally.EUNAUTHORIZED {
				t.Fatalf("Verify(%q): error code %q (%v), want unauthorized", raw, c, err)
			}
			return
		}
		if raw != access {
			t.Fatalf("Verify accepted %q, which the issuer did not sign (it signed %q); principal %+v", raw, access, p)
		}
		if p.ClientID != "tly_fuzz" || !p.Has(tally.ScopeAdmin) {
			t.Fatalf("the signed token verified as %+v", p)
		}
	})
}

// FuzzVerifySession is FuzzVerify for portal session tokens: only the session the issuer signed
// verifies, for its customer; an access token is no session.
func FuzzVerifySession(f *testing.F) {
	store, clk := newMemStore(), newClock()
	i := MustIssuer(f, store, clk)
	_, session := fuzzTokens(f, i)
	f.Fuzz(func(t *testing.T, raw string) {
		customer, err := i.VerifySession(context.Background(), raw)
		if err != nil {
			if c := tally.ErrorCode(err); c != tally.EUNAUTHORIZED {
				t.Fatalf("VerifySession(%q): error code %q (%v)", raw, c, err)
			}
			return
		}
		if raw != session || customer != fuzzCustomer {
			t.Fatalf("VerifySession accepted %q as %q; the issuer signed only %q", raw, customer, session)
		}
	})
}

// FuzzTokenRequest fuzzes the token endpoint's request: form body, Content-Type and Authorization
// header. It never panics and answers only what RFC 6749 allows (200, 400, 401) with a JSON body; a
// token is issued only to a request that carries the client's secret, and it verifies as that client's.
func FuzzTokenRequest(f *testing.F) {
	store, clk := newMemStore(), newClock()
	i := MustIssuer(f, store, clk)
	v := MustVerifier(f, VerifierConfig{Local: i, Now: clk.Now})
	c, secret := MustClient(f, store, clk.Now(), tally.ScopeLedgerRead, tally.ScopeLedgerWrite)
	svc := NewTokenService(i, store, quietLogger)
	form := "application/x-www-form-urlencoded"
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte(c.ID+":"+secret))
	f.Add(form, basic, "grant_type=client_credentials")
	f.Add(form, basic, "grant_type=client_credentials&scope=ledger:read")
	f.Add(form, basic, "grant_type=client_credentials&scope=admin")
	f.Add(form, "", "grant_type=client_credentials&client_id="+c.ID+"&client_secret="+secret)
	f.Add(form, "", "grant_type=client_credentials&client_id="+c.ID+"&client_secret="+secret+"&client_secret=x")
	f.Add(form, basic, "grant_type=password")
	f.Add(form+"; charset=utf-8", "Basic "+base64.StdEncoding.EncodeToString([]byte(c.ID+":wrong")), "grant_type=client_credentials")
	f.Add("application/json", basic, `{"grant_type":"client_credentials"}`)
	f.Add(form, "Basic %%%", "grant_type=client_credentials&client_id=%00")
	f.Add(form, "Bearer x", "grant_type=client_credentials")
	f.Fuzz(func(t *testing.T, contentType, authorization, body string) {
		req := httptest.NewRequest("POST", "/oauth/token", strings.NewReader(body))
		req.Header.Set("Content-Type", contentType)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		rec := httptest.NewRecorder()
		svc.ServeHTTP(rec, req)
		var answer struct {
			AccessToken string `json:"access_token"`
			Error       string `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("%d, body not JSON: %q", rec.Code, rec.Body)
		}
		switch rec.Code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusUnauthorized:
			if answer.Error == "" || answer.AccessToken != "" {
				t.Fatalf("%d with body %q", rec.Code, rec.Body)
			}
			return
		default:
			t.Fatalf("status %d (%q) for Content-Type %q, Authorization %q, body %q", rec.Code, rec.Body, contentType, authorization, body)
		}
		// A token: the request carried the client's secret, in Basic or in the form.
		user, pass, isBasic := req.BasicAuth()
		if isBasic {
			user, _ = url.QueryUnescape(user)
			pass, _ = url.QueryUnescape(pass)
		} else {
			values, _ := url.ParseQuery(body)
			user, pass = values.Get("client_id"), values.Get("client_secret")
		}
		if user != c.ID || pass != secret {
			t.Fatalf("a token for a request without the secret: Authorization %q, body %q", authorization, body)
		}
		if p, err := v.Verify(context.Background(), answer.AccessToken); err != nil || p.ClientID != c.ID {
			t.Fatalf("the issued token does not verify as the client: %+v %v", p, err)
		}
	})
}
