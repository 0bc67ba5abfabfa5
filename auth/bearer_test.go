package auth

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tally-ledger/tally"
)

func TestBearerToken(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		want    string
		wantErr error // ErrNoToken or errMalformedAuthorization
	}{
		{"bearer", []string{"Bearer abc.def-ghi_jkl"}, "abc.def-ghi_jkl", nil},
		{"scheme in lower case", []string{"bearer abc"}, "abc", nil},
		{"padding", []string{"Bearer abc=="}, "abc==", nil},
		{"none", nil, "", ErrNoToken},
		{"Basic", []string{"Basic dXNlcjpwYXNz"}, "", ErrNoToken},
		{"scheme alone", []string{"Bearer"}, "", errMalformedAuthorization},
		{"empty token", []string{"Bearer "}, "", errMalformedAuthorization},
		{"two tokens", []string{"Bearer abc def"}, "", errMalformedAuthorization},
		{"quote", []string{`Bearer abc"`}, "", errMalformedAuthorization},
		{"two headers", []string{"Bearer abc", "Bearer def"}, "", errMalformedAuthorization},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v1/accounts/x", nil)
			for _, h := range tt.headers {
				r.Header.Add("Authorization", h)
			}
			got, err := BearerToken(r)
			if got != tt.want || !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestChallenge(t *testing.T) {
	tests := []struct {
		name       string
		err        error
		scope      string
		wantStatus int
		wantHeader string
	}{
		{"no token", ErrNoToken, "", 401, `Bearer realm="tally"`},
		{"no token, route scope", ErrNoToken, "ledger:read", 401, `Bearer realm="tally", scope="ledger:read"`},
		{"expired", errExpired, "", 401, `Bearer realm="tally", error="invalid_token", error_description="token expired"`},
		{"quotes in the reason", tally.Errorf(tally.EUNAUTHORIZED, `signing algorithm "HS256" not allowed`), "", 401,
			`Bearer realm="tally", error="invalid_token", error_description="signing algorithm 'HS256' not allowed"`},
		{"malformed header", errMalformedAuthorization, "", 400,
			`Bearer realm="tally", error="invalid_request", error_description="malformed Authorization header"`},
		{"insufficient scope", nil, "ledger:write", 403,
			`Bearer realm="tally", error="insufficient_scope", error_description="the token lacks scope ledger:write", scope="ledger:write"`},
		{"forbidden", tally.Errorf(tally.EFORBIDDEN, "no"), "admin", 403,
			`Bearer realm="tally", error="insufficient_scope", error_description="the token lacks scope admin", scope="admin"`},
		{"keys unavailable", tally.Unavailable(errors.New("down"), "the JWKS"), "ledger:read", 503, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			Challenge(w, tt.err, tt.scope)
			if w.Code != tt.wantStatus {
				t.Errorf("status %d, want %d", w.Code, tt.wantStatus)
			}
			if got := w.Header().Get("WWW-Authenticate"); got != tt.wantHeader {
				t.Errorf("WWW-Authenticate\n got %s\nwant %s", got, tt.wantHeader)
			}
			if tt.wantStatus == 503 && w.Header().Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
			var problem struct {
				Status int    `json:"status"`
				Detail string `json:"detail"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &problem); err != nil || problem.Status != tt.wantStatus || problem.Detail == "" {
				t.Errorf("body %s (%v)", w.Body.Bytes(), err)
			}
			if w.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("Content-Type %q", w.Header().Get("Content-Type"))
			}
		})
	}
}
