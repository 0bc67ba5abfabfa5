package tally

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
)

// CustomerHasher turns raw customer identifiers (a Genesys external contact id, an e-mail) into the
// customer_hash that the ledger stores. The raw identifier is never stored: only
// hex(HMAC-SHA-256(secret, raw id)), so a leaked database does not reveal who the customers are without
// also leaking the secret.
type CustomerHasher struct {
	secret []byte
}

// MinSecretLen is the shortest secret accepted, in bytes.
const MinSecretLen = 16

// NewCustomerHasher returns a hasher keyed by secret.
func NewCustomerHasher(secret []byte) (*CustomerHasher, error) {
	if len(secret) < MinSecretLen {
		return nil, errors.New("customer secret must be at least 16 bytes")
	}
	return &CustomerHasher{secret: append([]byte(nil), secret...)}, nil
}

// Hash returns the customer hash of a raw identifier.
func (h *CustomerHasher) Hash(rawID string) string {
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte(rawID))
	return hex.EncodeToString(m.Sum(nil))
}

// IsCustomerHash reports whether s has the form of a customer hash (64 lowercase hex digits).
func IsCustomerHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
