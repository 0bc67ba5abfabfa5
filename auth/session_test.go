package auth

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

func TestSessionTokens(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	store := newMemStore()
	iss := MustIssuer(t, store, clk)
	customer := strings.Repeat("ab", 32)

	tok, exp, err := iss.IssueSession(ctx, customer, 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !exp.Equal(clk.Now().Add(15 * time.Minute).Truncate(time.Second)) {
		t.Fatalf("expiry %v", exp)
	}
	got, err := iss.VerifySession(ctx, tok)
	if err != nil || got != customer {
		t.Fatalf("VerifySession = %q, %v", got, err)
	}

	// A session token is not an access token, and an access token is not a session token.
	v := MustVerifier(t, VerifierConfig{Local: iss, Now: clk.Now})
	if _, err := v.Verify(ctx, tok); tally.ErrorCode(err) != tally.EUNAUTHORIZED {
		t.Fatalf("session token accepted as access token: %v", err)
	}
	access := MustIssue(t, iss, "client-1", tally.ScopeLedgerRead)
	if _, err := iss.VerifySession(ctx, access); tally.ErrorCode(err) != tally.EUNAUTHORIZED {
		t.Fatalf("access token accepted as session: %v", err)
	}

	// Tampered, expired, and for no customer.
	if _, err := iss.VerifySession(ctx, tok[:len(tok)-2]+"xx"); tally.ErrorCode(err) != tally.EUNAUTHORIZED {
		t.Fatalf("tampered session accepted: %v", err)
	}
	if _, _, err := iss.IssueSession(ctx, "raw-id", time.Minute); tally.ErrorCode(err) != tally.EINVALID {
		t.Fatalf("session for a raw id: %v", err)
	}
	clk.Advance(16 * time.Minute)
	if _, err := iss.VerifySession(ctx, tok); tally.ErrorCode(err) != tally.EUNAUTHORIZED {
		t.Fatalf("expired session accepted: %v", err)
	}
}
