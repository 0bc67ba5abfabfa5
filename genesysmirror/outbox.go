package genesysmirror

import (
	"context"
	"time"

	"github.com/tally-ledger/tally"
)

// Outbox records that a customer's contact should be mirrored. Only the sealed contact id reaches the
// store: the ledger key seals it with the customer hash as additional data, so a sealed id copied to
// another account's row does not open.
type Outbox struct {
	Store tally.MirrorStore
	Key   *tally.LedgerKey
}

// Want asks for account's balance, as of version or later, on the external contact contactID.
func (o *Outbox) Want(ctx context.Context, account, contactID string, version int64) error {
	if contactID == "" {
		return tally.Errorf(tally.EINVALID, "no external contact id")
	}
	return o.Store.WantMirror(ctx, account, o.Key.Seal([]byte(contactID), []byte(account)), version, time.Now())
}

// Refresh asks again for account's balance, as of version or later, when its contact is mirrored.
func (o *Outbox) Refresh(ctx context.Context, account string, version int64) error {
	return o.Store.RefreshMirror(ctx, account, version, time.Now())
}

// open returns the contact id of a row.
func (o *Outbox) open(m tally.ContactMirror) (string, error) {
	b, err := o.Key.Open(m.ContactSealed, []byte(m.AccountID))
	return string(b), err
}
