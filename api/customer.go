package api

import (
	"strings"

	"github.com/tally-ledger/tally"
)

// hashPrefix marks a customer value that is already a Tally customer hash, so that a flow can pass back
// the customer_hash a lookup returned and have it taken as is.
const hashPrefix = "th_"

const maxRawCustomerLen = 256

// customerHash turns the customer value of a request (a raw identifier as Genesys sends it, or a
// prefixed Tally hash) into the customer hash the ledger keys accounts by.
func (s *Server) customerHash(v string) (string, error) {
	// Checked before hashing: distinct byte strings must stay distinct customers, and a NUL or a
	// non-UTF-8 byte is no customer identifier Genesys sends.
	if err := tally.CheckText("customer_hash", v); err != nil {
		return "", err
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return "", tally.Errorf(tally.EINVALID, "customer_hash is required")
	}
	if strings.HasPrefix(v, hashPrefix) {
		h := strings.TrimPrefix(v, hashPrefix)
		if !tally.IsCustomerHash(h) {
			return "", tally.Errorf(tally.EINVALID, "a value starting with %q must be followed by 64 lowercase hex digits", hashPrefix)
		}
		return h, nil
	}
	if len(v) > maxRawCustomerLen {
		return "", tally.Errorf(tally.EINVALID, "customer_hash must be at most %d bytes", maxRawCustomerLen)
	}
	return s.Hasher.Hash(v), nil
}

// publicHash is how a customer hash is shown to callers.
func publicHash(h string) string {
	if h == "" {
		return ""
	}
	return hashPrefix + h
}
