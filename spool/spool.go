// Package spool keeps requests durably while the ledger's store cannot take them, and hands them back,
// in arrival order, once it can. It knows nothing of the ledger: an Entry is the raw request and who sent
// it, which is all a replay needs to rebuild the very same ledger request through the same code as a live
// one (so that the store's idempotency, not the spool, decides whether an entry was already applied).
//
// Two backends implement Spool: File, an append-only local file with group fsync (the default), and
// JetStream, a NATS JetStream work-queue stream shared by every replica.
package spool

import (
	"context"
	"errors"
	"time"
)

// Entry is one spooled request.
type Entry struct {
	Body     []byte    `json:"body"`     // the request body, byte for byte as received
	Customer string    `json:"customer"` // the customer it is for: entries of one customer replay in order
	Client   string    `json:"client"`   // the OAuth client that sent it
	Received time.Time `json:"received"` // when it was received, UTC
}

// Stats describe what a spool holds.
type Stats struct {
	Depth  int64     // entries not yet replayed
	Oldest time.Time // Received of the oldest entry not yet replayed; zero when Depth is 0
}

// ErrFull is returned by Append when the spool has reached its size limit: the entry is not kept.
var ErrFull = errors.New("spool: full")

// ErrBroken is returned by Append after a write or fsync of the spool failed: the spool cannot tell what
// reached the disk, so it refuses further entries rather than acknowledge what may not be durable.
var ErrBroken = errors.New("spool: broken by an earlier write failure")

// ErrClosed is returned by the methods of a closed spool.
var ErrClosed = errors.New("spool: closed")

// Spool is a durable queue of entries.
type Spool interface {
	// Append keeps e. It returns nil only once e is durable (fsynced, or acknowledged by the JetStream
	// server); ErrFull when the spool is at its limit; ErrBroken, ErrClosed or another error when it
	// cannot keep it. Safe for concurrent use.
	Append(ctx context.Context, e Entry) error
	// Replay hands the entries to apply in arrival order (entries of one customer strictly in order; a
	// backend may apply entries of different customers concurrently) until the spool is empty or apply
	// fails. An entry is removed only after apply returned nil for it; one whose apply failed, and every
	// later entry of its customer, stays for the next Replay, which returns the first error. apply must be
	// idempotent: after a crash an entry may be handed over again.
	Replay(ctx context.Context, apply func(Entry) error) error
	// Stats reports the depth and the oldest entry.
	Stats(ctx context.Context) (Stats, error)
	// Close releases the spool. Entries already appended stay for the next Open.
	Close() error
}
