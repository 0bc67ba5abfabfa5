package tally

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// CanonicalBytes is the byte form of a transaction that its hash covers: every stored field that carries
// meaning, in a fixed order, strings quoted so that no field can bleed into the next, postings in stored
// order. Changing it changes every hash: it is versioned by its first line.
func (t *Transaction) CanonicalBytes() []byte {
	b := make([]byte, 0, 256)
	b = append(b, "tally-tx-v1\n"...)
	b = appendField(b, "seq", strconv.FormatInt(t.Seq, 10))
	b = appendField(b, "kind", strconv.Quote(string(t.Kind)))
	b = appendField(b, "account", strconv.Quote(t.AccountID))
	b = appendField(b, "channel", strconv.Quote(t.Channel))
	b = appendField(b, "key", strconv.Quote(t.IdempotencyKey))
	b = appendField(b, "request", strconv.Quote(t.RequestHash))
	b = appendField(b, "amount", strconv.FormatInt(t.Amount, 10))
	b = appendField(b, "reason", strconv.Quote(t.Reason))
	b = appendField(b, "actor", strconv.Quote(t.Actor))
	b = appendField(b, "metadata", strconv.Quote(string(t.Metadata)))
	b = appendField(b, "reverses", strconv.FormatInt(t.ReversesSeq, 10))
	b = appendField(b, "created_at", strconv.FormatInt(t.CreatedAt.UnixMicro(), 10))
	for _, p := range t.Postings {
		b = appendField(b, "posting", strconv.Quote(p.AccountID)+" "+strconv.FormatInt(p.Amount, 10))
	}
	return b
}

func appendField(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, '=')
	b = append(b, value...)
	return append(b, '\n')
}

// ChainHash returns hex(SHA-256(prev || canonical bytes of t)), where prev is the raw bytes of the
// previous hash on the same customer account (none for the account's first transaction).
func ChainHash(prevHex string, t *Transaction) (string, error) {
	prev, err := hex.DecodeString(prevHex)
	if err != nil {
		return "", Errorf(EINVALID, "previous hash %q is not hex", prevHex)
	}
	h := sha256.New()
	h.Write(prev)
	h.Write(t.CanonicalBytes())
	return hex.EncodeToString(h.Sum(nil)), nil
}

// LedgerTime rounds a time to what both stores keep exactly (microseconds, UTC), so that a hash computed
// before a write matches the one recomputed from the stored row.
func LedgerTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}
