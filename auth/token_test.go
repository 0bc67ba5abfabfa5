package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

// tokenFixture is a token endpoint served over HTTP, with its store, issuer and a verifier.
type tokenFixture struct {
	srv    *httptest.Server
	store  *memStore
	clk    *clock
	issuer *Issuer
	v      *Verifier
}

func newTokenFixture(t *testing.T) *tokenFixture {
	t.Helper()
	f := &tokenFixture{store: newMemStore(), clk: newClock()}
	f.issuer = MustIssuer(t, f.store, f.clk)
	f.v = MustVerifier(t, VerifierConfig{Local: f.issuer, Now: f.clk.Now})
	mux := http.NewServeMux()
	mux.Handle("/oauth/token", NewTokenService(f.issuer, f.store, quietLogger))
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

// tokenRequest is a request to the token endpoint. basic, when set, is the user:pass of a Basic header,
// sent as given (the caller encodes); header adds or overrides headers.
type tokenRequest struct {
	method      string
	contentType string
	body        string
	basic       *[2]string
	header      map[string]string
}

type tokenReply struct {
	status int
	header http.Header
	body   map[string]any
}

func (f *tokenFixture) post(t *testing.T, req tokenRequest) tokenReply {
	t.Helper()
	method := req.method
	if method == "" {
		method = http.MethodPost
	}
	r, err := http.NewRequest(method, f.srv.URL+"/oauth/token", strings.NewReader(req.body))
	if err != nil {
		t.Fatal(err)
	}
	ct := req.contentType
	if ct == "" {
		ct = "application/x-www-form-urlencoded"
	}
	r.Header.Set("Content-Type", ct)
	if req.basic != nil {
		r.Header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(req.basic[0]+":"+req.basic[1])))
	}
	for k, v := range req.header {
		r.Header.Set(k, v)
	}
	resp, err := f.srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	reply := tokenReply{status: resp.StatusCode, header: resp.Header}
	if err := json.Unmarshal(raw, &reply.body); err != nil {
		t.Fatalf("body %q is not JSON: %v", raw, err)
	}
	return reply
}

func basic(id, secret string) *[2]string { return &[2]string{id, secret} }

func TestTokenIssued(t *testing.T) {
	f := newTokenFixture(t)
	client, secret := MustClient(t, f.store, f.clk.Now(), tally.ScopeLedgerRead, tally.ScopeLedgerWrite)
	// A client whose id and secret need form-urlencoding inside Basic (RFC 6749 §2.3.1).
	odd := tally.Client{ID: "odd id:1", Name: "odd", SecretHash: HashSecret("p+ss w%rd:é"),
		Scopes: []string{tally.ScopeAdmin}, CreatedAt: f.clk.Now()}
	if err := f.store.CreateClient(context.Background(), odd); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		req       tokenRequest
		wantSub   string
		wantScope string
	}{
		{"Basic, all scopes", tokenRequest{body: "grant_type=client_credentials", basic: basic(client.ID, secret)},
			client.ID, "ledger:read ledger:write"},
		{"Basic as Genesys sends it, with a Content-Type charset",
			tokenRequest{body: "grant_type=client_credentials", basic: basic(client.ID, secret),
				contentType: "application/x-www-form-urlencoded; charset=UTF-8"},
			client.ID, "ledger:read ledger:write"},
		{"Basic and a matching client_id", tokenRequest{body: "grant_type=client_credentials&client_id=" + client.ID,
			basic: basic(client.ID, secret)}, client.ID, "ledger:read ledger:write"},
		{"Basic, form-urlencoded parts", tokenRequest{body: "grant_type=client_credentials",
			basic: basic(url.QueryEscape(odd.ID), url.QueryEscape("p+ss w%rd:é"))}, odd.ID, "admin"},
		{"form", tokenRequest{body: url.Values{"grant_type": {"client_credentials"}, "client_id": {client.ID},
			"client_secret": {secret}}.Encode()}, client.ID, "ledger:read ledger:write"},
		{"narrower scope", tokenRequest{body: "grant_type=client_credentials&scope=ledger%3Aread",
			basic: basic(client.ID, secret)}, client.ID, "ledger:read"},
		{"scope repeated and reordered", tokenRequest{body: "grant_type=client_credentials&scope=ledger%3Awrite+ledger%3Aread+ledger%3Awrite",
			basic: basic(client.ID, secret)}, client.ID, "ledger:write ledger:read"},
		{"empty scope means all", tokenRequest{body: "grant_type=client_credentials&scope=",
			basic: basic(client.ID, secret)}, client.ID, "ledger:read ledger:write"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reply := f.post(t, tt.req)
			if reply.status != http.StatusOK {
				t.Fatalf("status %d, body %v", reply.status, reply.body)
			}
			if reply.header.Get("Cache-Control") != "no-store" || reply.header.Get("Pragma") != "no-cache" {
				t.Errorf("caching headers %v", reply.header)
			}
			if !strings.HasPrefix(reply.header.Get("Content-Type"), "application/json") {
				t.Errorf("Content-Type %q", reply.header.Get("Content-Type"))
			}
			b := reply.body
			if b["token_type"] != "Bearer" || b["expires_in"] != float64(3600) || b["scope"] != tt.wantScope {
				t.Errorf("body %v", b)
			}
			tok, _ := b["access_token"].(string)
			p, err := f.v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatalf("issued token does not verify: %v", err)
			}
			if p.Subject != tt.wantSub || !slices.Equal(p.Scopes, strings.Fields(tt.wantScope)) {
				t.Errorf("principal %+v", p)
			}
		})
	}
}

func TestTokenRejected(t *testing.T) {
	f := newTokenFixture(t)
	client, secret := MustClient(t, f.store, f.clk.Now(), tally.ScopeLedgerRead)
	revoked, revokedSecret := MustClient(t, f.store, f.clk.Now(), tally.ScopeLedgerRead)
	if err := f.store.RevokeClient(context.Background(), revoked.ID, f.clk.Now()); err != nil {
		t.Fatal(err)
	}
	ok := "grant_type=client_credentials"
	formAuth := url.Values{"grant_type": {"client_credentials"}, "client_id": {client.ID}, "client_secret": {secret}}

	tests := []struct {
		name       string
		req        tokenRequest
		down       bool
		wantStatus int
		wantError  string
		wantBasic  bool // a WWW-Authenticate: Basic challenge
	}{
		{"GET", tokenRequest{method: http.MethodGet, basic: basic(client.ID, secret)}, false, 405, "invalid_request", false},
		{"JSON body", tokenRequest{contentType: "application/json", body: `{"grant_type":"client_credentials"}`,
			basic: basic(client.ID, secret)}, false, 400, "invalid_request", false},
		{"no grant_type", tokenRequest{body: "scope=ledger%3Aread", basic: basic(client.ID, secret)}, false, 400, "invalid_request", false},
		{"password grant", tokenRequest{body: "grant_type=password&username=a&password=b", basic: basic(client.ID, secret)},
			false, 400, "unsupported_grant_type", false},
		{"authorization_code grant", tokenRequest{body: "grant_type=authorization_code&code=x", basic: basic(client.ID, secret)},
			false, 400, "unsupported_grant_type", false},
		{"repeated parameter", tokenRequest{body: ok + "&" + ok, basic: basic(client.ID, secret)}, false, 400, "invalid_request", false},
		{"body too large", tokenRequest{body: ok + "&pad=" + strings.Repeat("x", 70<<10), basic: basic(client.ID, secret)},
			false, 400, "invalid_request", false},
		{"Basic and form secret", tokenRequest{body: ok + "&client_secret=" + secret, basic: basic(client.ID, secret)},
			false, 400, "invalid_request", false},
		{"Basic and another client_id", tokenRequest{body: ok + "&client_id=" + revoked.ID, basic: basic(client.ID, secret)},
			false, 400, "invalid_request", false},
		{"no client authentication", tokenRequest{body: ok}, false, 401, "invalid_client", true},
		{"form without secret", tokenRequest{body: ok + "&client_id=" + client.ID}, false, 401, "invalid_client", false},
		{"Basic with wrong secret", tokenRequest{body: ok, basic: basic(client.ID, secret+"x")}, false, 401, "invalid_client", true},
		{"Basic with unknown client", tokenRequest{body: ok, basic: basic("tly_nobody", secret)}, false, 401, "invalid_client", true},
		{"Basic with empty id", tokenRequest{body: ok, basic: basic("", secret)}, false, 401, "invalid_client", true},
		{"Basic not base64", tokenRequest{body: ok, header: map[string]string{"Authorization": "Basic !!!"}}, false, 401, "invalid_client", true},
		{"Basic with a bad escape", tokenRequest{body: ok, basic: basic(client.ID+"%zz", secret)}, false, 401, "invalid_client", true},
		{"Bearer instead of Basic", tokenRequest{body: ok, header: map[string]string{"Authorization": "Bearer abc"}}, false, 401, "invalid_client", true},
		{"form with wrong secret", tokenRequest{body: url.Values{"grant_type": {"client_credentials"}, "client_id": {client.ID},
			"client_secret": {"nope"}}.Encode()}, false, 401, "invalid_client", false},
		{"revoked client", tokenRequest{body: ok, basic: basic(revoked.ID, revokedSecret)}, false, 401, "invalid_client", true},
		{"scope not granted", tokenRequest{body: ok + "&scope=ledger%3Awrite", basic: basic(client.ID, secret)}, false, 400, "invalid_scope", false},
		{"scope partly granted", tokenRequest{body: ok + "&scope=ledger%3Aread+admin", basic: basic(client.ID, secret)}, false, 400, "invalid_scope", false},
		{"unknown scope", tokenRequest{body: ok + "&scope=everything", basic: basic(client.ID, secret)}, false, 400, "invalid_scope", false},
		{"store down", tokenRequest{body: formAuth.Encode()}, true, 503, "temporarily_unavailable", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.store.setDown(tt.down)
			defer f.store.setDown(false)
			reply := f.post(t, tt.req)
			if reply.status != tt.wantStatus || reply.body["error"] != tt.wantError {
				t.Fatalf("got %d %v, want %d %s", reply.status, reply.body, tt.wantStatus, tt.wantError)
			}
			if _, ok := reply.body["error_description"].(string); !ok {
				t.Errorf("no error_description in %v", reply.body)
			}
			if _, ok := reply.body["access_token"]; ok {
				t.Errorf("error carries a token: %v", reply.body)
			}
			challenge := reply.header.Get("WWW-Authenticate")
			if tt.wantBasic != strings.HasPrefix(challenge, `Basic realm="tally"`) {
				t.Errorf("WWW-Authenticate %q, want Basic: %v", challenge, tt.wantBasic)
			}
			if reply.header.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control %q", reply.header.Get("Cache-Control"))
			}
			if tt.wantStatus == 503 && reply.header.Get("Retry-After") != "1" {
				t.Errorf("Retry-After %q", reply.header.Get("Retry-After"))
			}
			if tt.wantStatus == 405 && reply.header.Get("Allow") != "POST" {
				t.Errorf("Allow %q", reply.header.Get("Allow"))
			}
			for _, v := range reply.body {
				if s, _ := v.(string); strings.Contains(s, secret) || strings.Contains(s, revokedSecret) {
					t.Errorf("reply repeats a secret: %v", reply.body)
				}
			}
		})
	}
}

func TestTokenOfRevokedClientAfterIssue(t *testing.T) {
	// Revocation stops new tokens; a token already issued lives until it expires (stateless JWT).
	f := newTokenFixture(t)
	client, secret := MustClient(t, f.store, f.clk.Now(), tally.ScopeLedgerRead)
	reply := f.post(t, tokenRequest{body: "grant_type=client_credentials", basic: basic(client.ID, secret)})
	if reply.status != 200 {
		t.Fatalf("status %d", reply.status)
	}
	_ = f.store.RevokeClient(context.Background(), client.ID, f.clk.Now())
	if reply := f.post(t, tokenRequest{body: "grant_type=client_credentials", basic: basic(client.ID, secret)}); reply.status != 401 {
		t.Fatalf("revoked client got %d", reply.status)
	}
	f.clk.Advance(time.Hour + time.Minute)
	if _, err := f.v.Verify(context.Background(), reply.body["access_token"].(string)); err == nil {
		t.Fatal("token outlived its TTL")
	}
}
