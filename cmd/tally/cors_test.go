package main

import (
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestServeCORSOrigins checks --cors-origins and TALLY_CORS_ORIGINS: bad origins are refused with the
// flag's name, and the listed origins reach the server's CORS rules.
func TestServeCORSOrigins(t *testing.T) {
	for _, bad := range []string{"*", "https://shop.example.com/", "shop.example.com", "https://a.test,https://*.b.test"} {
		_, err := parseServe([]string{"--cors-origins", bad}, io.Discard)
		if err == nil || !strings.Contains(err.Error(), "--cors-origins") {
			t.Errorf("--cors-origins %q: %v, want an error naming the flag", bad, err)
		}
	}
	t.Setenv("TALLY_CORS_ORIGINS", "https://Shop.Example.com:443, http://localhost:3000")
	c, err := parseServe(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://shop.example.com", "http://localhost:3000"}; !slices.Equal(c.corsOrigins, want) {
		t.Errorf("TALLY_CORS_ORIGINS gave %q, want %q", c.corsOrigins, want)
	}

	s := startServe(t, "--db", "sqlite:"+filepath.Join(t.TempDir(), "tally.db"), "--cors-origins", "https://shop.example.com")
	for origin, want := range map[string]string{"https://shop.example.com": "https://shop.example.com", "http://localhost:3000": ""} {
		req, _ := http.NewRequest("OPTIONS", s.base+"/v1/portal/redeem", nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", "POST")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("preflight from %s: Access-Control-Allow-Origin %q, want %q (the flag wins over the environment)", origin, got, want)
		}
	}
}
