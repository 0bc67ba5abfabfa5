package main

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

func TestMirrorFlags(t *testing.T) {
	t.Setenv("TALLY_GENESYS_CLIENT_SECRET", "s3cret")
	bad := []struct {
		name string
		args []string
	}{
		{"no client id", []string{"--genesys-mirror"}},
		{"unknown region", []string{"--genesys-mirror", "--genesys-client-id", "c", "--genesys-region", "example.com"}},
		{"http to another host", []string{"--genesys-mirror", "--genesys-client-id", "c", "--genesys-api-url", "http://api.example.com"}},
		{"not a URL", []string{"--genesys-mirror", "--genesys-client-id", "c", "--genesys-login-url", "login"}},
		{"no balance field", []string{"--genesys-mirror", "--genesys-client-id", "c", "--genesys-balance-field", " "}},
	}
	for _, b := range bad {
		if _, err := parseServe(b.args, io.Discard); err == nil {
			t.Errorf("%s: accepted %v", b.name, b.args)
		}
	}
	c, err := parseServe([]string{"--genesys-mirror", "--genesys-client-id", "c", "--genesys-region", "mypurecloud.de",
		"--genesys-login-url", "http://127.0.0.1:9/"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	m := c.mirror
	if !m.on || m.apiURL != "https://api.mypurecloud.de" || m.loginURL != "http://127.0.0.1:9" || m.secret != "s3cret" ||
		m.balanceField != "loyaltyBalance_number" || m.tierField != "loyaltyTier_text" {
		t.Fatalf("config %+v", m)
	}
	if c, err := parseServe(nil, io.Discard); err != nil || c.mirror.on {
		t.Fatalf("the mirror is on by default (%v)", err)
	}
	t.Setenv("TALLY_GENESYS_CLIENT_SECRET", "")
	if _, err := parseServe([]string{"--genesys-mirror", "--genesys-client-id", "c"}, io.Discard); err == nil {
		t.Error("accepted a mirror without TALLY_GENESYS_CLIENT_SECRET")
	}
}

// TestServeGenesysMirror: a real serve with --genesys-mirror writes the balance and tier to the external
// contact a customer.end event names, through a fake Genesys on loopback whose tokens live one second.
func TestServeGenesysMirror(t *testing.T) {
	db := tempDB(t)
	var mu sync.Mutex
	tokens := map[string]time.Time{}
	fields := map[string]map[string]any{}
	issued := 0
	login := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, secret, ok := r.BasicAuth()
		if !ok || id != "mirror" || secret != "mirror-secret" || r.FormValue("grant_type") != "client_credentials" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		issued++
		tok := fmt.Sprint("tok-", issued)
		tokens[tok] = time.Now().Add(time.Second)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"access_token":%q,"token_type":"bearer","expires_in":1}`, tok)
	}))
	defer login.Close()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if exp, ok := tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]; !ok || time.Now().After(exp) {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		id := strings.TrimPrefix(r.URL.Path, "/api/v2/externalcontacts/contacts/")
		if r.Method == http.MethodGet {
			fmt.Fprintf(w, `{"id":%q,"firstName":"Erin"}`, id)
			return
		}
		var c struct {
			CustomFields map[string]any `json:"customFields"`
		}
		if err := json.NewDecoder(r.Body).Decode(&c); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		fields[id] = c.CustomFields
	}))
	defer api.Close()

	t.Setenv("TALLY_GENESYS_CLIENT_SECRET", "mirror-secret")
	s := startServe(t, "--db", db, "--genesys-mirror", "--genesys-client-id", "mirror",
		"--genesys-api-url", api.URL, "--genesys-login-url", login.URL)
	id, secret := createClient(t, db, "ledger:read,ledger:write")
	token := fetchToken(t, s.base, id, secret)
	event := func(conv string) {
		t.Helper()
		ev := map[string]any{"conversationId": conv, "mediaType": "MESSAGE", "messageType": "WEBMESSAGING", "externalContactId": "ext-erin"}
		if status, body, err := postJSON(s.base, "/v1/ledger/transaction/process", token, ev); err != nil || status != 201 {
			t.Fatalf("event: %d %s %v", status, body, err)
		}
	}
	waitFields := func(points float64) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			mu.Lock()
			f := fields["ext-erin"]
			mu.Unlock()
			if f != nil && f["loyaltyBalance_number"] == points && f["loyaltyTier_text"] == "base" {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the contact shows %v, want %v points and the base tier", f, points)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	event("conv-1")
	waitFields(10)
	time.Sleep(1200 * time.Millisecond) // the token expires
	event("conv-2")
	waitFields(20)
}
