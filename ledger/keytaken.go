package ledger

import (
	"context"

	"github.com/tally-ledger/tally"
)

// explainConflict tells the caller of a write refused with ECONFLICT by the store which transaction
// holds its key, when that is why. It happens when a key names a transaction but its outcome row is
// gone (deleted by hand, or purged by a version of Tally that purged explicit transactions' outcomes
// too): the claim succeeds, and the transactions table's unique key stops the second write. Without
// the remembered receipt the write cannot be replayed, so the answer is a conflict that names the
// transaction, never a second write. Any other conflict is returned as it is.
func (s *Service) explainConflict(o *op, err error) error {
	if tally.ErrorCode(err) != tally.ECONFLICT {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.BatchTimeout)
	defer cancel()
	t, lookupErr := s.store.TransactionByKey(ctx, o.req.Channel, o.req.Key)
	if lookupErr != nil {
		return err
	}
	if t.RequestHash != o.reqHash {
		e := tally.Errorf(tally.EIDEMPOTENCY, "idempotency key %q was already used by transaction %d with a different request",
			o.req.Key, t.Seq)
		e.Err = err
		return e
	}
	e := tally.Errorf(tally.ECONFLICT, "idempotency key %q was applied as transaction %d; its answer is no longer kept, "+
		"so it is not replayed (read transaction %d instead), and it is not applied again", o.req.Key, t.Seq, t.Seq)
	e.Err = err
	return e
}
