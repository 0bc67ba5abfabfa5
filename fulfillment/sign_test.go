package fulfillment_test

import (
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally/fulfillment"
)

func TestVerify(t *testing.T) {
	secret := strings.Repeat("ab", 32)
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"delivery_id":"rcp_1"}`)
	signed := func(ts time.Time, sig string) http.Header {
		h := http.Header{}
		h.Set(fulfillment.HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
		h.Set(fulfillment.HeaderSignature, sig)
		return h
	}
	good := fulfillment.Sign(secret, now.Unix(), body)
	cases := []struct {
		name   string
		secret string
		h      http.Header
		body   []byte
		ok     bool
	}{
		{"valid", secret, signed(now, good), body, true},
		{"one of several", secret, signed(now, "v1=00, "+good), body, true},
		{"body changed", secret, signed(now, good), []byte(`{"delivery_id":"rcp_2"}`), false},
		{"other secret", strings.Repeat("cd", 32), signed(now, good), body, false},
		{"timestamp changed", secret, signed(now.Add(time.Second), good), body, false},
		{"too old", secret, signed(now.Add(-6*time.Minute), fulfillment.Sign(secret, now.Add(-6*time.Minute).Unix(), body)), body, false},
		{"no timestamp", secret, http.Header{fulfillment.HeaderSignature: {good}}, body, false},
		{"no version", secret, signed(now, strings.TrimPrefix(good, "v1=")), body, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := fulfillment.Verify(tc.secret, tc.h, tc.body, now, fulfillment.DefaultTolerance)
			if (err == nil) != tc.ok {
				t.Fatalf("Verify: %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestSecretPerOrigin: each receiver's secret is bound to its origin, not its path.
func TestSecretPerOrigin(t *testing.T) {
	s, err := fulfillment.NewSigner([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	secret := func(u string) string {
		t.Helper()
		v, err := s.Secret(u)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	base := secret("https://partner.example/hooks/tally")
	for _, same := range []string{"https://PARTNER.example:443/other", "https://partner.example"} {
		if secret(same) != base {
			t.Errorf("%s has another secret than https://partner.example", same)
		}
	}
	for _, other := range []string{"http://partner.example/hooks/tally", "https://partner.example:8443/hooks/tally", "https://other.example/hooks/tally"} {
		if secret(other) == base {
			t.Errorf("%s shares https://partner.example's secret", other)
		}
	}
	for _, bad := range []string{"", "partner.example/hook", "ftp://partner.example/", "https:///x"} {
		if _, err := s.Secret(bad); err == nil {
			t.Errorf("secret for %q: no error", bad)
		}
	}
	if _, err := fulfillment.NewSigner([]byte("short")); err == nil {
		t.Error("a 5-byte master key was accepted")
	}
}

// TestShellRecipe: the README's openssl recipe computes the same signature.
func TestShellRecipe(t *testing.T) {
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl is not installed")
	}
	secret, ts, body := strings.Repeat("5e", 32), int64(1_800_000_000), `{"delivery_id":"rcp_1","points":250}`
	cmd := exec.Command("sh", "-c", `printf '%s.%s' "$TS" "$BODY" | openssl dgst -sha256 -hmac "$SECRET" | sed 's/^.*= //'`)
	cmd.Env = append(cmd.Environ(), "TS="+strconv.FormatInt(ts, 10), "BODY="+body, "SECRET="+secret)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got, want := "v1="+strings.TrimSpace(string(out)), fulfillment.Sign(secret, ts, []byte(body)); got != want {
		t.Fatalf("openssl: %s, Sign: %s", got, want)
	}
}
