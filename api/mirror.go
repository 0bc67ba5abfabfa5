package api

import (
	"context"
	"strings"

	"github.com/tally-ledger/tally/earning"
	"github.com/tally-ledger/tally/ledger"
)

// ContactMirror is the outbox of the Genesys contact mirror (genesysmirror.Outbox): Want asks for the
// account's balance, as of version or later, on the Genesys external contact contactID.
type ContactMirror interface {
	Want(ctx context.Context, account, contactID string, version int64) error
	// Refresh raises the version wanted for an account whose contact is mirrored already.
	Refresh(ctx context.Context, account string, version int64) error
}

// wantMirror queues a mirror of the balance after an event that named a Genesys external contact
// earned points. It runs after the write has committed, on replays too (a replay heals a queueing that
// failed the first time); a failure to queue is logged and costs the caller nothing, since the write
// stands and the next event of the customer queues the mirror again.
func (s *Server) wantMirror(ctx context.Context, ev earning.Event, rc ledger.Receipt) {
	if s.Mirror == nil || rc.Transaction.Seq == 0 || ev.Customer == "" || strings.HasPrefix(ev.Customer, hashPrefix) {
		return
	}
	if ev.Shape != earning.ShapeCustomerEnd && ev.Shape != earning.ShapeEventBridge {
		return
	}
	if err := s.Mirror.Want(ctx, rc.Transaction.AccountID, strings.TrimSpace(ev.Customer), rc.BalanceVersion); err != nil {
		s.log.Warn("genesys mirror: queue", "err", err)
	}
}
