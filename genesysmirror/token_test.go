package genesysmirror_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tally-ledger/tally/genesysmirror"
)

// Replicas share one token through Redis: the second reads what the first fetched, and a token the
// API refused is dropped from Redis too.
func TestTokenSharedThroughRedis(t *testing.T) {
	rdb := testRedis(t)
	if rdb == nil {
		t.Skip("no redis")
	}
	ctx := context.Background()
	f := newFakeGenesys(t, 3600)
	replica := func() *genesysmirror.Tokens {
		return genesysmirror.NewTokens(f.login.URL+"/oauth/token", f.id, f.secret, rdb)
	}
	a, b := replica(), replica()
	ta, err := a.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := b.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ta.AccessToken != tb.AccessToken || f.issued != 1 {
		t.Fatalf("replicas got %q and %q, %d issued: want one shared token", ta.AccessToken, tb.AccessToken, f.issued)
	}
	b.Invalidate(ctx, tb)
	tc, err := replica().Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tc.AccessToken == ta.AccessToken || f.issued != 2 {
		t.Fatalf("after a 401 a replica got %q (%d issued): want a new token", tc.AccessToken, f.issued)
	}
}

// A token endpoint that refuses the client is an error that names no secret.
func TestTokenErrorsNameNoSecret(t *testing.T) {
	f := newFakeGenesys(t, 3600)
	_, err := genesysmirror.NewTokens(f.login.URL+"/oauth/token", f.id, "wrong-secret", nil).Token(context.Background())
	if err == nil || containsAny(err.Error(), "wrong-secret", f.secret) {
		t.Fatalf("error %v: want a failure that names no secret", err)
	}
}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
