package sim

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// tokenServer issues tokens t1, t2, ... and accepts only the newest; after expireAfter uses it stops
// accepting it, as a server whose token expired.
type tokenServer struct {
	mu          sync.Mutex
	issued      int
	uses        int
	expireAfter int
	expired     bool
}

func (s *tokenServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path == "/oauth/token" {
		if id, secret, ok := r.BasicAuth(); !ok || id != "id" || secret != "secret" || r.FormValue("grant_type") != "client_credentials" {
			http.Error(w, `{"error":"invalid_client"}`, http.StatusUnauthorized)
			return
		}
		s.issued++
		s.expired = false
		json.NewEncoder(w).Encode(map[string]any{"access_token": "t" + strconv.Itoa(s.issued), "token_type": "Bearer", "expires_in": 3600})
		return
	}
	if s.expired || r.Header.Get("Authorization") != "Bearer t"+strconv.Itoa(s.issued) {
		http.Error(w, `{"code":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	if s.uses++; s.uses == s.expireAfter {
		s.expired = true
	}
	w.Write([]byte(`{}`))
}

// TestTokenRenewedOnceAfter401: many calls refused at once with the same expired token make one token
// request between them, and each is retried once with the new token, so none is lost.
func TestTokenRenewedOnceAfter401(t *testing.T) {
	srv := &tokenServer{expireAfter: 50}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := &client{base: ts.URL, http: ts.Client(), stats: newStats(), actionTimeout: 10 * time.Second, maxWait: time.Second, maxAttempts: 1}
	c.tokens = &tokenSource{c: c, id: "id", secret: "secret"}
	var ok atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for range 10 {
				if a := c.api(context.Background(), request{endpoint: "api", method: "GET", path: "/api", timeout: 10 * time.Second}, false); a.status == 200 {
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if ok.Load() != 200 || c.tokens.fetches.Load() != 2 || c.reauths.Load() == 0 {
		t.Fatalf("%d of 200 calls succeeded with %d token fetches and %d renewals after a 401; want all, 2 fetches", ok.Load(), c.tokens.fetches.Load(), c.reauths.Load())
	}
}

// TestTokenHonoursExpiresIn: with honourExpiry a token is renewed once its expires_in has passed, without
// waiting for a 401; without it, the token is kept.
func TestTokenHonoursExpiresIn(t *testing.T) {
	for _, honour := range []bool{false, true} {
		srv := &tokenServer{}
		ts := httptest.NewServer(srv)
		c := &client{base: ts.URL, http: ts.Client(), stats: newStats(), actionTimeout: 10 * time.Second, maxWait: time.Second, maxAttempts: 1}
		c.tokens = &tokenSource{c: c, id: "id", secret: "secret", honourExpiry: honour}
		tok, err := c.tokens.get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		c.tokens.mu.Lock()
		if honour && c.tokens.expires.IsZero() || !honour && !c.tokens.expires.IsZero() {
			t.Fatalf("honour %t: expiry %v", honour, c.tokens.expires)
		}
		if honour {
			c.tokens.expires = time.Now().Add(-time.Second) // as if expires_in had passed
		}
		c.tokens.mu.Unlock()
		tok2, err := c.tokens.get(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if renewed := tok2 != tok; renewed != honour {
			t.Fatalf("honour %t: token %s then %s", honour, tok, tok2)
		}
		ts.Close()
	}
}
