package tally

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"hash"
	"strings"
)

// LedgerKey is the secret that Tally keeps outside its database, so that someone who can read or write
// the database but does not hold it can neither forge the ledger's records nor mint tokens:
//   - it keys the HMAC of every transaction's chain hash (a rewritten chain does not verify);
//   - it signs the checkpoints of the ledger head that are written outside the database;
//   - it encrypts the token signing keys that are stored in the database;
//   - it keys the signatures of fulfillment webhooks (WebhookKey).
//
// One secret of at least 32 random bytes is given (TALLY_LEDGER_KEY, or a file beside the embedded
// database); each use gets its own key derived from it with HKDF-SHA-256 (RFC 5869), so that no two
// uses share key material.
type LedgerKey struct {
	chain  []byte
	kek    cipher.AEAD
	signer ed25519.PrivateKey
	hooks  []byte
}

// MinLedgerKeyLen is the shortest ledger key accepted, in bytes.
const MinLedgerKeyLen = 32

// NewLedgerKey derives the ledger's keys from secret.
func NewLedgerKey(secret []byte) (*LedgerKey, error) {
	if len(secret) < MinLedgerKeyLen {
		return nil, errors.New("the ledger key must be at least 32 bytes (64 hex digits)")
	}
	derive := func(info string) []byte {
		k, err := hkdf.Key(sha256.New, secret, nil, info, 32)
		if err != nil {
			panic(err) // only for lengths HKDF cannot produce
		}
		return k
	}
	block, err := aes.NewCipher(derive("tally ledger key v1: signing-key encryption"))
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &LedgerKey{
		chain:  derive("tally ledger key v1: chain hash"),
		kek:    aead,
		signer: ed25519.NewKeyFromSeed(derive("tally ledger key v1: checkpoint signature")),
		hooks:  derive("tally ledger key v1: webhook signing"),
	}, nil
}

// ParseLedgerKey reads a ledger key written as hex (what GenerateLedgerKey returns).
func ParseLedgerKey(s string) (*LedgerKey, error) {
	raw, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, errors.New("the ledger key must be written in hex digits")
	}
	return NewLedgerKey(raw)
}

// GenerateLedgerKey returns a new random ledger key, in hex.
func GenerateLedgerKey() string {
	raw := make([]byte, MinLedgerKeyLen)
	if _, err := rand.Read(raw); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(raw)
}

// chainMAC returns a fresh HMAC keyed for chain hashes.
func (k *LedgerKey) chainMAC() hash.Hash { return hmac.New(sha256.New, k.chain) }

// MAC returns hex(HMAC-SHA-256) of msg under the chain key, for small records kept in the database that
// must not be forged (such as the seal of the unkeyed part of the chains).
func (k *LedgerKey) MAC(msg []byte) string {
	m := k.chainMAC()
	m.Write(msg)
	return hex.EncodeToString(m.Sum(nil))
}

// Seal encrypts plaintext with AES-256-GCM under the key-encryption key. additional is authenticated
// but not encrypted: binding a record's identity there stops a ciphertext from being moved to another
// record.
func (k *LedgerKey) Seal(plaintext, additional []byte) []byte {
	nonce := make([]byte, k.kek.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err)
	}
	return k.kek.Seal(nonce, nonce, plaintext, additional)
}

// Open decrypts what Seal returned, with the same additional data.
func (k *LedgerKey) Open(sealed, additional []byte) ([]byte, error) {
	n := k.kek.NonceSize()
	if len(sealed) < n+k.kek.Overhead() {
		return nil, errors.New("sealed data is too short")
	}
	return k.kek.Open(nil, sealed[:n], sealed[n:], additional)
}

// Sign signs msg with the checkpoint signing key (Ed25519).
func (k *LedgerKey) Sign(msg []byte) []byte { return ed25519.Sign(k.signer, msg) }

// PublicKey is the key that verifies Sign's signatures; it may be handed to an auditor.
func (k *LedgerKey) PublicKey() ed25519.PublicKey { return k.signer.Public().(ed25519.PublicKey) }

// KeyID names the signing key: the first 16 hex digits of SHA-256 of its public key.
func (k *LedgerKey) KeyID() string {
	sum := sha256.Sum256(k.PublicKey())
	return hex.EncodeToString(sum[:8])
}

// WebhookKey is the key that package fulfillment derives each webhook receiver's signing secret from.
// It is derived apart from the other keys, so that what receivers are given reveals nothing of them.
func (k *LedgerKey) WebhookKey() []byte { return append([]byte(nil), k.hooks...) }

// RandomLedgerKey returns a new random ledger key, for tests and throwaway ledgers.
func RandomLedgerKey() *LedgerKey {
	k, err := ParseLedgerKey(GenerateLedgerKey())
	if err != nil {
		panic(err)
	}
	return k
}
