package tally

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strconv"
	"strings"
	"time"
)

// Chain versions. A transaction's hash covers its canonical bytes, whose first line names the version.
//   - v1: hex(SHA-256(prev || bytes)). Anyone who can write the database can recompute a whole v1 chain
//     after changing it, so v1 is kept only for transactions written before the ledger key existed.
//   - v2: hex(HMAC-SHA-256(chain key, prev || bytes)), keyed by the LedgerKey kept outside the database:
//     a changed or recomputed chain does not verify without the key.
const (
	chainV1 = "tally-tx-v1\n"
	chainV2 = "tally-tx-v2\n"
)

// CanonicalBytes is the v1 byte form of a transaction that its hash covers (see canonicalBytes).
func (t *Transaction) CanonicalBytes() []byte { return t.canonicalBytes(chainV1) }

// canonicalBytes is every stored field that carries meaning, in a fixed order, strings quoted so that no
// field can bleed into the next, postings in stored order, after a first line naming the version.
func (t *Transaction) canonicalBytes(version string) []byte {
	b := make([]byte, 0, 256)
	b = append(b, version...)
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

// ChainHash returns the v1 hash: hex(SHA-256(prev || canonical bytes of t)), where prev is the raw bytes
// of the previous hash on the same customer account (none for the account's first transaction).
func ChainHash(prevHex string, t *Transaction) (string, error) {
	return chainHash(sha256.New(), prevHex, t, chainV1)
}

func chainHash(h hash.Hash, prevHex string, t *Transaction, version string) (string, error) {
	prev, err := hex.DecodeString(prevHex)
	if err != nil {
		return "", Errorf(EINVALID, "previous hash %q is not hex", prevHex)
	}
	h.Write(prev)
	h.Write(t.canonicalBytes(version))
	return hex.EncodeToString(h.Sum(nil)), nil
}

// ChainSeal records where the unkeyed (v1) part of the ledger ends: transactions numbered up to
// V1Through were written before the ledger key existed and keep their v1 hashes; every later one is v2.
// MAC binds the number to the ledger key, so that someone who can write the database cannot move the
// boundary up to pass off a recomputed v1 chain. A ledger created with a key has V1Through 0.
type ChainSeal struct {
	V1Through int64
	MAC       string
}

func sealBytes(v1Through int64) []byte {
	return []byte("tally-chain-seal-v1\nv1_through=" + strconv.FormatInt(v1Through, 10) + "\n")
}

// NewChainSeal seals the chains at v1Through, the highest sequence number handed out before the key.
func (k *LedgerKey) NewChainSeal(v1Through int64) ChainSeal {
	return ChainSeal{V1Through: v1Through, MAC: k.MAC(sealBytes(v1Through))}
}

// Encode is the seal as stored: "V1THROUGH MAC".
func (s ChainSeal) Encode() string { return strconv.FormatInt(s.V1Through, 10) + " " + s.MAC }

// DecodeChainSeal reads what Encode wrote.
func DecodeChainSeal(v string) (ChainSeal, error) {
	n, mac, ok := strings.Cut(v, " ")
	through, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || through < 0 {
		return ChainSeal{}, Errorf(EINVALID, "the chain seal %q is malformed", v)
	}
	return ChainSeal{V1Through: through, MAC: mac}, nil
}

// Chain hashes transactions under one ledger key and seal.
type Chain struct {
	key  *LedgerKey
	seal ChainSeal
}

// NewChain checks the seal's MAC under key and returns the hasher; EINVALID when the seal was not made
// with this key (it was forged, or the key is not the ledger's).
func NewChain(key *LedgerKey, seal ChainSeal) (*Chain, error) {
	if !hmac.Equal([]byte(key.MAC(sealBytes(seal.V1Through))), []byte(seal.MAC)) {
		return nil, Errorf(EINVALID, "the chain seal (v1 through %d) does not match the ledger key: the seal was altered, or this is not the ledger's key", seal.V1Through)
	}
	return &Chain{key: key, seal: seal}, nil
}

// Seal returns the chain's seal.
func (c *Chain) Seal() ChainSeal { return c.seal }

// Hash returns the hash of t following prevHex on its account: v1 for transactions numbered up to the
// seal, keyed v2 for every later one. t.Seq must be set.
func (c *Chain) Hash(prevHex string, t *Transaction) (string, error) {
	if t.Seq <= c.seal.V1Through {
		return ChainHash(prevHex, t)
	}
	return chainHash(c.key.chainMAC(), prevHex, t, chainV2)
}

// LedgerTime rounds a time to what both stores keep exactly (microseconds, UTC), so that a hash computed
// before a write matches the one recomputed from the stored row.
func LedgerTime(t time.Time) time.Time {
	return t.UTC().Truncate(time.Microsecond)
}

// String describes the seal for messages.
func (s ChainSeal) String() string { return fmt.Sprintf("v1 through transaction %d", s.V1Through) }
