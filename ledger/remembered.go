package ledger

import (
	"context"

	"github.com/tally-ledger/tally"
)

// Fingerprint returns the idempotency key r is remembered under and the hash of what it asks for, as
// Write stores them, or the EINVALID error Write would refuse r with. Two requests with one key and
// different fingerprints are one request reusing another's key: a caller that keeps requests to write
// later (the accrual spool) uses it to refuse such a request at once rather than acknowledge it.
func (r Request) Fingerprint() (tally.OutcomeKey, string, error) {
	if err := r.normalize(); err != nil {
		return tally.OutcomeKey{}, "", err
	}
	return r.outcomeKey(), r.hash(), nil
}

// Remembered returns the answer remembered for r's key, as Write would replay it, without writing:
// found is false when the key holds no answer yet; the error is EIDEMPOTENCY when it holds the answer
// to another request, a remembered refusal when that is what it holds, or the store's error.
func (s *Service) Remembered(ctx context.Context, r Request) (rc Receipt, found bool, err error) {
	k, hash, err := r.Fingerprint()
	if err != nil {
		return Receipt{}, false, err
	}
	o, err := s.store.Outcome(ctx, k.Channel, k.Key)
	switch {
	case tally.ErrorCode(err) == tally.ENOTFOUND:
		return Receipt{}, false, nil
	case err != nil:
		return Receipt{}, false, err
	case o.RequestHash != hash:
		return Receipt{}, true, errKeyReused(k)
	}
	res := replay(o)
	return res.receipt, true, res.err
}
