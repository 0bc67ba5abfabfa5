package storetest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/auth"
)

// StolenRow is one row of the signing_keys table as someone holding a copy of the database reads it:
// every column, by name, as the database driver returns it.
type StolenRow map[string]any

// RunKeysAtRest checks on a real store that the database alone does not let anyone mint tokens (issue
// #6): signing keys are stored sealed with the ledger key, and keys that an older Tally stored in clear
// are revoked at start. open returns a fresh, migrated, empty store; steal reads every row of
// signing_keys from a copy of that store's database with plain SQL, not through the store.
func RunKeysAtRest(t *testing.T, open func(t testing.TB) tally.CredentialStore, steal func(t testing.TB, s tally.CredentialStore) []StolenRow) {
	t.Run("CopyCannotMintTokens", func(t *testing.T) { t.Parallel(); testCopyCannotMintTokens(t, open, steal) })
	t.Run("UpgradeRevokesClearKeys", func(t *testing.T) { t.Parallel(); testUpgradeRevokesClearKeys(t, open) })
}

const (
	atRestIssuer   = "https://tally.test"
	atRestAudience = "tally"
)

func atRestIssuerOver(t testing.TB, s tally.CredentialStore, key *tally.LedgerKey) (*auth.Issuer, *auth.Verifier) {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	iss, err := auth.NewIssuer(credentialContext(t), s, auth.IssuerConfig{
		Issuer: atRestIssuer, Audience: atRestAudience, Key: key, Logger: quiet,
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.VerifierConfig{Local: iss, CacheSize: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return iss, v
}

// adminToken signs the claims of an admin token of Tally with the given method, key and kid.
func adminToken(t testing.TB, method jwt.SigningMethod, key any, kid string) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(method, jwt.MapClaims{
		"iss": atRestIssuer, "aud": atRestAudience, "sub": "tly_attacker", "client_id": "tly_attacker",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "forged",
		"scope": tally.ScopeAdmin,
	})
	tok.Header["kid"] = kid
	tok.Header["typ"] = "at+jwt"
	raw, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign with %s: %v", method.Alg(), err)
	}
	return raw
}

// kidOfToken reads the kid of a token without verifying it.
func kidOfToken(t testing.TB, token string) string {
	t.Helper()
	parsed, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := parsed.Header["kid"].(string)
	return kid
}

// seedsFrom returns every Ed25519 private key that someone could make of stolen bytes: the bytes as a
// seed or as a whole private key, each 32-byte window of them, their SHA-256, and the same of their hex
// or base64 decoding.
func seedsFrom(b []byte) []ed25519.PrivateKey {
	forms := [][]byte{b}
	if d, err := hex.DecodeString(string(b)); err == nil {
		forms = append(forms, d)
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if d, err := enc.DecodeString(string(b)); err == nil {
			forms = append(forms, d)
		}
	}
	var keys []ed25519.PrivateKey
	for _, f := range forms {
		for i := 0; i+ed25519.SeedSize <= len(f); i++ {
			keys = append(keys, ed25519.NewKeyFromSeed(f[i:i+ed25519.SeedSize]))
		}
		if len(f) == ed25519.PrivateKeySize {
			keys = append(keys, ed25519.PrivateKey(slices.Clone(f)))
		}
		sum := sha256.Sum256(f)
		keys = append(keys, ed25519.NewKeyFromSeed(sum[:]))
	}
	return keys
}

// rowBytes returns the byte and text columns of a stolen row.
func rowBytes(row StolenRow) map[string][]byte {
	out := map[string][]byte{}
	for col, v := range row {
		switch v := v.(type) {
		case []byte:
			out[col] = v
		case string:
			out[col] = []byte(v)
		}
	}
	return out
}

// testCopyCannotMintTokens plays someone who holds a copy of the database but not the ledger key: every
// token they can build from the signing_keys rows is refused, while the same token signed with the real
// key is accepted (so the test would catch a key kept in clear).
func testCopyCannotMintTokens(t *testing.T, open func(t testing.TB) tally.CredentialStore, steal func(t testing.TB, s tally.CredentialStore) []StolenRow) {
	s := open(t)
	ctx := credentialContext(t)
	key := mustLedgerKey(t)
	iss, v := atRestIssuerOver(t, s, key)
	issued, _, err := iss.Issue(ctx, "tly_admin", []string{tally.ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(ctx, issued); err != nil {
		t.Fatalf("the issued token does not verify: %v", err)
	}
	kid := kidOfToken(t, issued)

	// The control: with the real private key (which only the ledger key opens), a forged admin token
	// is accepted.
	var real ed25519.PrivateKey
	for _, k := range mustSigningKeys(t, s) {
		if k.KID == kid {
			if real, err = auth.OpenSigningKey(key, k); err != nil {
				t.Fatal(err)
			}
		}
	}
	if real == nil {
		t.Fatalf("no stored key %s", kid)
	}
	if p, err := v.Verify(ctx, adminToken(t, jwt.SigningMethodEdDSA, real, kid)); err != nil || !p.Has(tally.ScopeAdmin) {
		t.Fatalf("control: a token signed with the real key is refused (%v): the attack below proves nothing", err)
	}

	rows := steal(t, s)
	if len(rows) != 1 {
		t.Fatalf("stole %d signing key rows, want 1", len(rows))
	}
	attempts := 0
	try := func(what, token string) {
		t.Helper()
		attempts++
		if p, err := v.Verify(ctx, token); err == nil {
			t.Errorf("a copy of the database minted a token Tally accepts (%s): %+v", what, p)
		}
	}
	for _, row := range rows {
		kids := []string{kid}
		if k, ok := row["kid"].(string); ok && k != kid {
			kids = append(kids, k)
		}
		for col, b := range rowBytes(row) {
			if bytes.Contains(b, real.Seed()) || bytes.Contains(b, real) {
				t.Errorf("column %s holds the private key in clear", col)
			}
			for _, k := range kids {
				for n, priv := range seedsFrom(b) {
					try(col+" as Ed25519 key #"+itoa(n), adminToken(t, jwt.SigningMethodEdDSA, priv, k))
				}
				// Algorithm confusion: the stored bytes (the public key among them) as an HMAC secret.
				try(col+" as HS256 secret", adminToken(t, jwt.SigningMethodHS256, b, k))
				try("alg none", adminToken(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, k))
			}
		}
	}
	if attempts == 0 {
		t.Fatalf("no forgery tried: the stolen row has no byte or text column (%v)", rows)
	}
	// A restarted Tally (a fresh issuer over the same store and ledger key) refuses them too, and still
	// accepts the real token.
	_, again := atRestIssuerOver(t, s, key)
	if _, err := again.Verify(ctx, issued); err != nil {
		t.Fatalf("after a restart the issued token does not verify: %v", err)
	}
	for col, b := range rowBytes(rows[0]) {
		for n, priv := range seedsFrom(b) {
			if _, err := again.Verify(ctx, adminToken(t, jwt.SigningMethodEdDSA, priv, kid)); err == nil {
				t.Errorf("after a restart, %s as Ed25519 key #%d mints an accepted token", col, n)
			}
		}
	}
}

// testUpgradeRevokesClearKeys stores a key as Tally did before keys were sealed (the bare seed, through
// the same AddSigningKey), with a live token it signed; an issuer starting over that store revokes it:
// the row is deleted, the token refused, and a new sealed key signs.
func testUpgradeRevokesClearKeys(t *testing.T, open func(t testing.TB) tally.CredentialStore) {
	s := open(t)
	ctx := credentialContext(t)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	thumb := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`))
	exposed := tally.SigningKey{ // as the issuer made them: the kid is the RFC 7638 thumbprint
		KID: base64.RawURLEncoding.EncodeToString(thumb[:]), Algorithm: "EdDSA", SealedPrivateKey: priv.Seed(), PublicKey: pub,
		CreatedAt: now.Add(-time.Hour), NotAfter: now.Add(29 * 24 * time.Hour), RetireAt: now.Add(30 * 24 * time.Hour),
	}
	mustAddSigningKey(t, s, exposed)
	live := adminToken(t, jwt.SigningMethodEdDSA, priv, exposed.KID)

	key := mustLedgerKey(t)
	iss, v := atRestIssuerOver(t, s, key)
	if _, err := v.Verify(ctx, live); err == nil {
		t.Error("a token of the key stored in clear is accepted after the upgrade")
	}
	fresh, _, err := iss.Issue(ctx, "tly_admin", []string{tally.ScopeAdmin})
	if err != nil {
		t.Fatal(err)
	}
	if kid := kidOfToken(t, fresh); kid == exposed.KID {
		t.Error("the key stored in clear still signs")
	}
	if _, err := v.Verify(ctx, fresh); err != nil {
		t.Errorf("a token of the new key: %v", err)
	}
	keys := mustSigningKeys(t, s)
	if len(keys) != 1 || keys[0].KID == exposed.KID {
		t.Fatalf("stored keys after the upgrade: %v, want one new key", keys)
	}
	if k := keys[0]; len(k.SealedPrivateKey) == ed25519.SeedSize {
		t.Errorf("the new key is stored as a bare seed")
	} else if _, err := auth.OpenSigningKey(key, k); err != nil {
		t.Errorf("the new key does not open with the ledger key: %v", err)
	}
	if _, err := auth.OpenSigningKey(mustLedgerKey(t), keys[0]); err == nil {
		t.Error("the new key opens with another ledger key")
	}
}
