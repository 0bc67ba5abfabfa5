package auth

import (
	"bytes"
	"crypto/ed25519"
	"errors"

	"github.com/tally-ledger/tally"
)

// Signing keys at rest. The store keeps each key's Ed25519 seed sealed with the ledger key
// (tally.LedgerKey.Seal, AES-256-GCM under a key that is not in the database), so that a copy of the
// database alone cannot sign a token. Public keys stay in clear: they are published anyway.

// keyAD is the additional data a key's seed is sealed with. Binding the algorithm, the kid and the
// public key means that a ciphertext moved to another row does not open, nor does a row whose public key
// was replaced: someone who can write the database cannot get their own public key published (and then
// sign with its private key) by pairing it with a ciphertext copied from a real key.
func keyAD(alg, kid string, pub []byte) []byte {
	var b bytes.Buffer
	b.WriteString("tally signing key v1\x00")
	b.WriteString(alg)
	b.WriteByte(0)
	b.WriteString(kid)
	b.WriteByte(0)
	b.Write(pub)
	return b.Bytes()
}

// sealSeed seals the seed of k's private key for storage.
func sealSeed(key *tally.LedgerKey, k tally.SigningKey, priv ed25519.PrivateKey) []byte {
	return key.Seal(priv.Seed(), keyAD(k.Algorithm, k.KID, k.PublicKey))
}

// OpenSigningKey returns the private key of a stored signing key: its sealed seed must open under key
// with the key's own algorithm, kid and public key, and derive that public key. An error means the key
// must not be used: it was sealed with another ledger key, or its row was altered.
func OpenSigningKey(key *tally.LedgerKey, k tally.SigningKey) (ed25519.PrivateKey, error) {
	if k.Algorithm != algEdDSA || len(k.PublicKey) != ed25519.PublicKeySize {
		return nil, errors.New("not an Ed25519 key")
	}
	seed, err := key.Open(k.SealedPrivateKey, keyAD(k.Algorithm, k.KID, k.PublicKey))
	if err != nil {
		return nil, errors.New("its private key does not open with this ledger key (another ledger key, or an altered row)")
	}
	if len(seed) != ed25519.SeedSize {
		return nil, errors.New("its private key is not an Ed25519 seed")
	}
	priv := ed25519.NewKeyFromSeed(seed)
	if !priv.Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(k.PublicKey)) {
		return nil, errors.New("its public key does not match its private key")
	}
	return priv, nil
}

// storedInClear reports whether k holds its seed unencrypted, as Tally stored keys before they were
// sealed: 32 bytes from which its public key derives. Only such a key is known to be exposed; a key that
// merely does not open may be another replica's, sealed with a ledger key this one was not given.
func storedInClear(k tally.SigningKey) bool {
	if len(k.SealedPrivateKey) != ed25519.SeedSize || len(k.PublicKey) != ed25519.PublicKeySize {
		return false
	}
	pub := ed25519.NewKeyFromSeed(k.SealedPrivateKey).Public().(ed25519.PublicKey)
	return pub.Equal(ed25519.PublicKey(k.PublicKey))
}
