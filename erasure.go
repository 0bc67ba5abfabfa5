package tally

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"time"
)

// Erasure is the record of one customer forgotten (the right to erasure): the customer's account was
// re-keyed from the customer hash, which anyone holding the customer secret can recompute from the raw id,
// to a random pseudonym that nothing links to the raw id. The record names the pseudonym, never the raw id
// or the old hash.
//
// The hash chains cover each transaction's account id, so re-keying rewrites the account's chain: every
// transaction of it is hashed again, under the ledger key, with the pseudonym, and the heads that
// checkpoints recorded for the account are rewritten to match. The signed roots of checkpoints taken
// before the erasure commit to the old id and cannot be recomputed without it; the record says which
// (those numbered up to CheckpointThrough), and MAC, under the ledger key, stops someone who can write
// the database but lacks the key from inventing erasures to excuse altered checkpoints.
type Erasure struct {
	No                int64     `json:"no"`
	AccountID         string    `json:"account_id"` // the pseudonym
	Actor             string    `json:"actor"`
	Reason            string    `json:"reason"`
	ErasedAt          time.Time `json:"erased_at"`
	Transactions      int64     `json:"transactions"`       // how many transactions were re-keyed
	CheckpointThrough int64     `json:"checkpoint_through"` // the newest checkpoint taken before the erasure
	MAC               string    `json:"-"`
}

func (e *Erasure) macBytes() []byte {
	b := make([]byte, 0, 256)
	b = append(b, "tally-erasure-v1\n"...)
	b = appendField(b, "account", strconv.Quote(e.AccountID))
	b = appendField(b, "actor", strconv.Quote(e.Actor))
	b = appendField(b, "reason", strconv.Quote(e.Reason))
	b = appendField(b, "erased_at", strconv.FormatInt(e.ErasedAt.UnixMicro(), 10))
	b = appendField(b, "transactions", strconv.FormatInt(e.Transactions, 10))
	b = appendField(b, "checkpoint_through", strconv.FormatInt(e.CheckpointThrough, 10))
	return b
}

// SealErasure sets e.MAC.
func (k *LedgerKey) SealErasure(e *Erasure) { e.MAC = k.MAC(e.macBytes()) }

// VerifyErasure reports whether e was sealed under this key and is unchanged since.
func (k *LedgerKey) VerifyErasure(e Erasure) bool {
	return hmac.Equal([]byte(k.MAC(e.macBytes())), []byte(e.MAC))
}

// NewPseudonym returns a random account id of the same form as a customer hash (64 hex digits), so that
// a forgotten account looks like any other and is served by the same code.
func NewPseudonym() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return hex.EncodeToString(b)
}

// RecordedHead is a head that checkpoint Checkpoint recorded.
type RecordedHead struct {
	Checkpoint int64
	Head
}

// ErasureState is what an erasure reads of a customer account, in the transaction that re-keys it.
type ErasureState struct {
	Account        Account
	Transactions   []Transaction  // the account's chain, by seq, with postings
	Heads          []RecordedHead // the heads checkpoints recorded for it, by checkpoint
	LastCheckpoint int64          // the newest checkpoint recorded
}

// Rekeying is how to re-key an account: the pseudonym, each transaction's new hash, the rewritten
// recorded heads (in the order read), the account's new last hash, and the sealed record to keep.
type Rekeying struct {
	NewID  string
	Hashes map[int64]string
	// RequestHashes replace the request hashes of the account's transactions and of their outcomes: a
	// request hash covers the account id, so anyone who could hash the raw id could test it against the
	// old ones. A retry of a request made before the erasure therefore no longer matches its outcome
	// (EIDEMPOTENCY) rather than being replayed, which would tell the caller the forgotten account.
	RequestHashes map[int64]string
	Heads         []RecordedHead
	LastTxHash    string
	Erasure       Erasure
}

// ErasureStore re-keys forgotten customers' accounts.
type ErasureStore interface {
	// Erase, in one transaction that excludes ledger writes to the account and checkpoints: locks the
	// customer account id (ENOTFOUND when there is none), reads its state, calls plan, and then moves the
	// account and every row that names it (transactions, postings, redemptions, recorded heads, the
	// outcomes of its transactions, events waiting to be delivered) to plan's pseudonym, with plan's
	// hashes; drops what would link the pseudonym to the customer (the contact mirror row, which holds the
	// sealed raw contact id); stores plan's erasure record and returns it with its number.
	Erase(ctx context.Context, id string, plan func(ErasureState) (Rekeying, error)) (Erasure, error)
	// Erasures lists the erasure records by number.
	Erasures(ctx context.Context) ([]Erasure, error)
}
