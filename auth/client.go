// Package auth implements OAuth 2.0 for Tally: the client credentials grant (RFC 6749 §4.4) that Genesys
// Cloud's custom auth action uses, access tokens as JWTs signed with Ed25519 keys shared by every replica
// through a tally.CredentialStore, their JWKS (RFC 7517), their verification (including tokens of an
// external issuer), and the bearer token helpers of RFC 6750 for the API layer.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"slices"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
)

// clientIDPrefix marks Tally client ids, so that a leaked one is recognisable (by secret scanners too).
const clientIDPrefix = "tly_"

// secretHashPrefix names the algorithm of tally.Client.SecretHash.
const secretHashPrefix = "sha256:"

// NewClient creates a client with a fresh id and secret. The secret is returned once and only its hash is
// kept in the client. Scopes must be known (tally.ValidScope) and at least one, and the name UTF-8
// without NUL; EINVALID otherwise.
//
// Both id and secret use only characters that form-urlencoding leaves unchanged (lower-case base32 and
// base64url), so a Basic header built with or without the encoding of RFC 6749 §2.3.1 (Genesys's custom
// auth action does not encode) carries the same values.
func NewClient(name string, scopes []string, now time.Time) (tally.Client, string, error) {
	name = strings.TrimSpace(name)
	if name == "" {
		return tally.Client{}, "", tally.Errorf(tally.EINVALID, "a client needs a name")
	}
	if err := tally.CheckText("the client name", name); err != nil {
		return tally.Client{}, "", err
	}
	if len(scopes) == 0 {
		return tally.Client{}, "", tally.Errorf(tally.EINVALID, "a client needs at least one scope")
	}
	var granted []string
	for _, s := range scopes {
		if !tally.ValidScope(s) {
			return tally.Client{}, "", tally.Errorf(tally.EINVALID, "unknown scope %q", s)
		}
		if !slices.Contains(granted, s) {
			granted = append(granted, s)
		}
	}
	secret := newSecret()
	c := tally.Client{
		ID:         clientIDPrefix + strings.ToLower(rand.Text()), // 128 random bits in base32
		Name:       name,
		SecretHash: HashSecret(secret),
		Scopes:     granted,
		CreatedAt:  now.UTC(),
	}
	return c, secret, nil
}

// newSecret returns 256 random bits, base64url-encoded.
func newSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails: crypto/rand crashes the program rather than return an error
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashSecret returns the stored form of a client secret: "sha256:" and the hex SHA-256 of the secret.
//
// A slow password KDF (bcrypt, scrypt, Argon2) exists to make guessing low-entropy passwords from a stolen
// hash expensive. Client secrets are 256 random bits that no one chooses: no guess list exists, and a
// single fast hash is already beyond brute force. A KDF would only slow every token request down.
func HashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return secretHashPrefix + hex.EncodeToString(sum[:])
}

// dummyHash is compared against when a client id is unknown, so that an unknown id and a wrong secret
// take the same time.
var dummyHash = HashSecret("no such client")

// SecretMatches reports, in time independent of the secret, whether secret is the one whose hash is
// stored (a hash in an unknown format never matches).
func SecretMatches(storedHash, secret string) bool {
	if !strings.HasPrefix(storedHash, secretHashPrefix) {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(storedHash), []byte(HashSecret(secret))) == 1
}
