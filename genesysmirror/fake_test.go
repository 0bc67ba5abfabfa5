package genesysmirror_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeGenesys is a Genesys Cloud on loopback: a token endpoint that issues short-lived tokens and an
// external contacts API that refuses expired or unknown tokens, answers 429 on demand, and records the
// PUTs it takes.
type fakeGenesys struct {
	login, api *httptest.Server
	id, secret string
	ttl        int // expires_in of issued tokens, in seconds

	mu        sync.Mutex
	tokens    map[string]time.Time // access token -> expiry
	issued    int
	tries     int // token requests
	loginDown bool
	throttle  int // the next throttle API calls answer 429
	throttled []time.Time
	refused   int // 401 answers
	contacts  map[string]map[string]any
	puts      []put
	inFlight  map[string]bool
	overlaps  int           // PUTs of one contact that overlapped
	putDelay  time.Duration // how long a PUT takes
}

// put is a PUT the fake took.
type put struct {
	contact string
	at      time.Time
	fields  map[string]any
}

func newFakeGenesys(t *testing.T, ttl int) *fakeGenesys {
	t.Helper()
	f := &fakeGenesys{id: "mirror-client", secret: "mirror-secret", ttl: ttl, tokens: map[string]time.Time{},
		contacts: map[string]map[string]any{}, inFlight: map[string]bool{}}
	f.login = httptest.NewServer(http.HandlerFunc(f.token))
	f.api = httptest.NewServer(http.HandlerFunc(f.contact))
	t.Cleanup(func() { f.login.Close(); f.api.Close() })
	return f
}

func (f *fakeGenesys) token(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tries++
	if f.loginDown {
		http.Error(w, `{"error":"temporarily_unavailable"}`, http.StatusServiceUnavailable)
		return
	}
	id, secret, ok := r.BasicAuth()
	if r.Method != http.MethodPost || r.URL.Path != "/oauth/token" || !ok || id != f.id || secret != f.secret ||
		r.ParseForm() != nil || r.PostForm.Get("grant_type") != "client_credentials" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"invalid_client"}`)
		return
	}
	f.issued++
	tok := fmt.Sprintf("tok-%d", f.issued)
	f.tokens[tok] = time.Now().Add(time.Duration(f.ttl) * time.Second)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "bearer", "expires_in": f.ttl})
}

func (f *fakeGenesys) contact(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/api/v2/externalcontacts/contacts/")
	if !ok || id == "" {
		http.NotFound(w, r)
		return
	}
	f.mu.Lock()
	exp, known := f.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	switch {
	case !known || time.Now().After(exp):
		f.refused++
		f.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	case f.throttle > 0:
		f.throttle--
		f.throttled = append(f.throttled, time.Now())
		f.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	if r.Method == http.MethodGet {
		c := f.contacts[id]
		if c == nil {
			c = map[string]any{"id": id, "firstName": "Ada", "customFields": map[string]any{"favourite_text": "tea"}}
		}
		f.mu.Unlock()
		json.NewEncoder(w).Encode(c)
		return
	}
	if f.inFlight[id] {
		f.overlaps++
	}
	f.inFlight[id] = true
	delay := f.putDelay
	f.mu.Unlock()
	time.Sleep(delay)
	var c map[string]any
	err := json.NewDecoder(r.Body).Decode(&c)
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.inFlight, id)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.contacts[id] = c
	fields, _ := c["customFields"].(map[string]any)
	f.puts = append(f.puts, put{contact: id, at: time.Now(), fields: fields})
	json.NewEncoder(w).Encode(c)
}

// state runs fn under the fake's lock.
func (f *fakeGenesys) state(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// last returns the custom fields of the contact as last PUT.
func (f *fakeGenesys) last(contact string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := len(f.puts) - 1; i >= 0; i-- {
		if f.puts[i].contact == contact {
			return f.puts[i].fields
		}
	}
	return nil
}
