package main

import (
	"io"
	"testing"
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
