package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tally-ledger/tally"
)

func TestSigningKeysAreStoredSealed(t *testing.T) {
	store := newMemStore()
	iss := MustIssuer(t, store, newClock())
	kid := kidOf(t, MustIssue(t, iss, "tly_a", tally.ScopeAdmin))
	stored := store.keys[kid]
	priv := iss.signer.private

	if bytes.Contains(stored.SealedPrivateKey, priv.Seed()) || bytes.Contains(stored.SealedPrivateKey, priv) {
		t.Fatalf("the store holds the private key in clear: %x", stored.SealedPrivateKey)
	}
	opened, err := OpenSigningKey(testLedgerKey, stored)
	if err != nil || !opened.Equal(priv) {
		t.Fatalf("OpenSigningKey with the ledger key: %v", err)
	}

	// A row whose ciphertext was moved or whose clear fields were altered does not open: the algorithm,
	// kid and public key are bound to the ciphertext.
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	for name, alter := range map[string]func(k *tally.SigningKey) *tally.LedgerKey{
		"another ledger key": func(*tally.SigningKey) *tally.LedgerKey { return mustLedgerKey(tally.GenerateLedgerKey()) },
		"a flipped bit": func(k *tally.SigningKey) *tally.LedgerKey {
			k.SealedPrivateKey[20] ^= 1
			return testLedgerKey
		},
		"truncated": func(k *tally.SigningKey) *tally.LedgerKey {
			k.SealedPrivateKey = k.SealedPrivateKey[:len(k.SealedPrivateKey)-1]
			return testLedgerKey
		},
		"moved to another kid": func(k *tally.SigningKey) *tally.LedgerKey {
			k.KID = ed25519Thumbprint(otherPub)
			return testLedgerKey
		},
		"another public key": func(k *tally.SigningKey) *tally.LedgerKey {
			k.KID, k.PublicKey = ed25519Thumbprint(otherPub), otherPub
			return testLedgerKey
		},
		"another algorithm": func(k *tally.SigningKey) *tally.LedgerKey {
			k.Algorithm = "Ed25519"
			return testLedgerKey
		},
	} {
		t.Run(name, func(t *testing.T) {
			k := stored
			k.SealedPrivateKey = slices.Clone(stored.SealedPrivateKey)
			key := alter(&k)
			if got, err := OpenSigningKey(key, k); err == nil {
				t.Fatalf("opened to %x", got)
			}
		})
	}
}

// mustIssuerKeyed is MustIssuer with a ledger key and a logger of its own.
func mustIssuerKeyed(tb testing.TB, store tally.CredentialStore, clk *clock, key *tally.LedgerKey, log *slog.Logger) *Issuer {
	tb.Helper()
	i, err := NewIssuer(context.Background(), store, IssuerConfig{
		Issuer: testIssuer, Audience: testAudience, Key: key, Now: clk.Now, Logger: log,
	})
	if err != nil {
		tb.Fatalf("NewIssuer: %v", err)
	}
	return i
}

// TestKeysSealedWithAnotherLedgerKey: a replica given the wrong ledger key neither signs with nor
// publishes the keys it cannot open, and does not delete them either: they are the other replicas'.
func TestKeysSealedWithAnotherLedgerKey(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	store := newMemStore()
	right := MustIssuer(t, store, clk)
	rightTok := MustIssue(t, right, "tly_a", tally.ScopeAdmin)
	rightKID := kidOf(t, rightTok)

	var logs bytes.Buffer
	wrong := mustIssuerKeyed(t, store, clk, mustLedgerKey(tally.GenerateLedgerKey()), slog.New(slog.NewTextHandler(&logs, nil)))
	wrongTok := MustIssue(t, wrong, "tly_a", tally.ScopeAdmin)
	if kidOf(t, wrongTok) == rightKID {
		t.Fatal("the replica with the wrong ledger key signed with a key it cannot open")
	}
	if got := jwksKids(t, wrong.JWKS()); slices.Contains(got, rightKID) {
		t.Errorf("the replica with the wrong ledger key publishes %v", got)
	}
	if _, err := MustVerifier(t, VerifierConfig{Local: wrong, Now: clk.Now, CacheSize: -1}).Verify(ctx, rightTok); err == nil {
		t.Error("the replica with the wrong ledger key accepts a token of a key it cannot open")
	}
	if !slices.Contains(store.kids(), rightKID) {
		t.Error("the replica with the wrong ledger key deleted a key it could not open")
	}
	if n := strings.Count(logs.String(), "ignoring a signing key"); n != 1 {
		t.Errorf("logged %d errors for the key that does not open, want 1:\n%s", n, logs.String())
	}
	clk.Advance(DefaultReloadInterval)
	if err := wrong.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "ignoring a signing key"); n != 1 {
		t.Errorf("a reload logged the same key again: %d errors", n)
	}
}

// TestAlteredKeyRowIsNotPublished: someone who can write the database pairs their own public key with a
// real key's ciphertext, in a newer row than the real key; the issuer neither publishes nor signs with it.
func TestAlteredKeyRowIsNotPublished(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	store := newMemStore()
	realKID := kidOf(t, MustIssue(t, MustIssuer(t, store, clk), "tly_a"))
	real := store.keys[realKID]

	attackerPub, attackerPriv, _ := ed25519.GenerateKey(rand.Reader)
	forged := real
	forged.KID, forged.PublicKey = ed25519Thumbprint(attackerPub), attackerPub
	forged.CreatedAt = real.CreatedAt.Add(time.Second)
	if err := store.AddSigningKey(ctx, forged); err != nil {
		t.Fatal(err)
	}
	iss := MustIssuer(t, store, clk)
	if got := jwksKids(t, iss.JWKS()); !slices.Equal(got, []string{realKID}) {
		t.Errorf("JWKS lists %v, want only %s", got, realKID)
	}
	if got := kidOf(t, MustIssue(t, iss, "tly_a")); got != realKID {
		t.Errorf("signs with %s, want %s", got, realKID)
	}
	tok := sign(t, jwt.SigningMethodEdDSA, attackerPriv, map[string]any{"kid": forged.KID, "typ": "at+jwt"},
		with(localClaims(clk.Now()), "scope", tally.ScopeAdmin))
	_, err := MustVerifier(t, VerifierConfig{Local: iss, Now: clk.Now, CacheSize: -1}).Verify(ctx, tok)
	wantAuthError(t, err, tally.EUNAUTHORIZED, "unknown signing key")
}

// clearKey returns a key stored as Tally stored keys before they were sealed: the bare seed.
func clearKey(tb testing.TB, now time.Time) (tally.SigningKey, ed25519.PrivateKey) {
	tb.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	notAfter := now.Add(DefaultRotationPeriod)
	return tally.SigningKey{
		KID: ed25519Thumbprint(pub), Algorithm: algEdDSA, SealedPrivateKey: priv.Seed(), PublicKey: pub,
		CreatedAt: now, NotAfter: notAfter, RetireAt: notAfter.Add(DefaultTTL + DefaultOverlap),
	}, priv
}

// TestKeyStoredInClearIsRevoked: at upgrade, a key whose seed sat in the database in clear is revoked at
// once (deleted, not published, its tokens refused) and a sealed key replaces it; a clear key that appears
// later (an older replica still running) is revoked at the next reload.
func TestKeyStoredInClearIsRevoked(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	store := newMemStore()
	exposed, exposedPriv := clearKey(t, clk.Now().Add(-time.Hour))
	if err := store.AddSigningKey(ctx, exposed); err != nil {
		t.Fatal(err)
	}
	liveToken := sign(t, jwt.SigningMethodEdDSA, exposedPriv, map[string]any{"kid": exposed.KID, "typ": "at+jwt"},
		localClaims(clk.Now()))
	retired, _ := clearKey(t, clk.Now().Add(-2*DefaultRotationPeriod)) // past its RetireAt: its seed goes too
	if err := store.AddSigningKey(ctx, retired); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	iss := mustIssuerKeyed(t, store, clk, testLedgerKey, slog.New(slog.NewTextHandler(&logs, nil)))
	v := MustVerifier(t, VerifierConfig{Local: iss, Now: clk.Now, CacheSize: -1})
	checkRevoked := func(k tally.SigningKey, token string) {
		t.Helper()
		if slices.Contains(store.kids(), k.KID) {
			t.Errorf("the key stored in clear %s is still stored", k.KID)
		}
		if slices.Contains(jwksKids(t, iss.JWKS()), k.KID) {
			t.Errorf("the key stored in clear %s is published", k.KID)
		}
		_, err := v.Verify(ctx, token)
		wantAuthError(t, err, tally.EUNAUTHORIZED, "unknown signing key")
		fresh := MustIssue(t, iss, "tly_a", tally.ScopeLedgerRead)
		if kidOf(t, fresh) == k.KID {
			t.Errorf("signed with the key stored in clear")
		}
		if _, err := v.Verify(ctx, fresh); err != nil {
			t.Errorf("a token of the new key: %v", err)
		}
		for _, s := range store.keys {
			if storedInClear(s) {
				t.Errorf("key %s is stored in clear", s.KID)
			}
			if _, err := OpenSigningKey(testLedgerKey, s); err != nil {
				t.Errorf("key %s does not open: %v", s.KID, err)
			}
		}
	}
	checkRevoked(exposed, liveToken)
	if slices.Contains(store.kids(), retired.KID) {
		t.Errorf("the retired key stored in clear is still stored")
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), exposed.KID) {
		t.Errorf("the revocation was not logged as an error:\n%s", logs.String())
	}

	late, latePriv := clearKey(t, clk.Now())
	if err := store.AddSigningKey(ctx, late); err != nil {
		t.Fatal(err)
	}
	clk.Advance(DefaultReloadInterval)
	if err := iss.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	checkRevoked(late, sign(t, jwt.SigningMethodEdDSA, latePriv, map[string]any{"kid": late.KID, "typ": "at+jwt"},
		localClaims(clk.Now())))
}
