package tally

import (
	"context"
	"time"
)

// MirrorStore is the outbox of the Genesys contact mirror (package genesysmirror): one row per account
// whose balance and tier should be copied to a Genesys external contact. Rows are coalesced: a row says
// "the contact should show at least balance version WantedVersion", and a worker that sends the account's
// current balance settles every write up to the version it read. Leases work as FulfillmentStore's do, so
// that two replicas never send one row at once.
//
// The Genesys external contact id is a raw customer identifier: the store keeps it only sealed
// (LedgerKey.Seal with the account id as additional data), and never sees it in clear.
//
// Every method returns a *Error with code EUNAVAILABLE when the database cannot be reached or reports a
// transient fault.
type MirrorStore interface {
	// WantMirror records that account's contact (sealed) should show balance version version or later:
	// it creates the row, or replaces its sealed contact and raises its WantedVersion (never lowers it).
	// A raised row is due at once. EINVALID for an empty account or sealed contact, or a version below 1.
	WantMirror(ctx context.Context, account string, contactSealed []byte, version int64, now time.Time) error
	// RefreshMirror raises the WantedVersion of account's row, when it has one, to version (never lowers
	// it), due at once when raised: any later write of a mirrored customer is mirrored too. An account
	// without a row is left alone.
	RefreshMirror(ctx context.Context, account string, version int64, now time.Time) error
	// LeaseMirrors takes up to limit rows that are due (WantedVersion > SentVersion, NextAttemptAt <=
	// now) and not leased (no lease, or one that ended before now), oldest due first, and leases them to
	// owner until until. Concurrent callers never receive the same row while its lease runs
	// (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: one write transaction). EINVALID for an empty owner
	// or a limit below 1.
	LeaseMirrors(ctx context.Context, owner string, now, until time.Time, limit int) ([]ContactMirror, error)
	// FinishMirror records what became of a leased row and ends the lease, while owner still holds it;
	// otherwise it changes nothing and returns ECONFLICT. ENOTFOUND when the row does not exist.
	FinishMirror(ctx context.Context, account, owner string, r MirrorResult) error
}

// ContactMirror is one row of the mirror outbox.
type ContactMirror struct {
	AccountID     string
	ContactSealed []byte
	WantedVersion int64
	SentVersion   int64
	NextAttemptAt time.Time
	Attempts      int
	LastError     string
	UpdatedAt     time.Time
}

// MirrorResult is what FinishMirror records.
type MirrorResult struct {
	// SentVersion is the balance version the contact now shows (0 when nothing was sent): SentVersion
	// becomes the larger of it and the row's.
	SentVersion int64
	// Error is why the attempt failed ("" when it succeeded); a failure counts one more attempt.
	Error string
	// RetryAt is when the row is due again if it is still wanted.
	RetryAt time.Time
	// At is the time of the attempt.
	At time.Time
}

// CheckMirrorWant refuses a WantMirror call that could not be mirrored.
func CheckMirrorWant(account string, contactSealed []byte, version int64) error {
	if account == "" {
		return Errorf(EINVALID, "a contact mirror needs an account")
	}
	if len(contactSealed) == 0 {
		return Errorf(EINVALID, "a contact mirror needs a sealed contact id")
	}
	if version <= 0 {
		return Errorf(EINVALID, "a contact mirror needs a positive balance version")
	}
	return nil
}
