package auth

import (
	"encoding/base64"
	"net/url"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

func TestNewClient(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.FixedZone("CET", 3600))
	c, secret, err := NewClient(" genesys prod ", []string{tally.ScopeLedgerRead, tally.ScopeLedgerWrite, tally.ScopeLedgerRead}, now)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^tly_[a-z2-7]{26}$`).MatchString(c.ID) {
		t.Errorf("client id %q", c.ID)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(secret); err != nil || len(raw) != 32 {
		t.Errorf("secret %q is not 32 bytes of base64url", secret)
	}
	// Form-urlencoding inside Basic (RFC 6749 §2.3.1) leaves both unchanged.
	if url.QueryEscape(c.ID) != c.ID || url.QueryEscape(secret) != secret {
		t.Errorf("id %q or secret need escaping", c.ID)
	}
	if c.Name != "genesys prod" || !slices.Equal(c.Scopes, []string{"ledger:read", "ledger:write"}) ||
		!c.CreatedAt.Equal(now) || c.CreatedAt.Location() != time.UTC || c.RevokedAt != nil {
		t.Errorf("client %+v", c)
	}
	if c.SecretHash == secret || !SecretMatches(c.SecretHash, secret) {
		t.Errorf("hash %q does not match its secret", c.SecretHash)
	}
	for _, wrong := range []string{"", secret + "x", secret[:len(secret)-1], c.SecretHash} {
		if SecretMatches(c.SecretHash, wrong) {
			t.Errorf("hash matches %q", wrong)
		}
	}
	if SecretMatches("bcrypt:whatever", secret) || SecretMatches("", "") {
		t.Error("a hash of unknown format matched")
	}
	c2, secret2, _ := NewClient("other", []string{tally.ScopeAdmin}, now)
	if c2.ID == c.ID || secret2 == secret {
		t.Error("two clients share an id or a secret")
	}

	for name, tc := range map[string]struct {
		name   string
		scopes []string
	}{
		"unknown scope":  {"x", []string{tally.ScopeLedgerRead, "ledger:delete"}},
		"no scope":       {"x", nil},
		"no name":        {"  ", []string{tally.ScopeAdmin}},
		"scope in upper": {"x", []string{"LEDGER:READ"}},
	} {
		t.Run(name, func(t *testing.T) {
			_, _, err := NewClient(tc.name, tc.scopes, now)
			if tally.ErrorCode(err) != tally.EINVALID {
				t.Fatalf("got %v, want EINVALID", err)
			}
		})
	}
}
