package api

import (
	"context"
	"time"

	"github.com/tally-ledger/tally"
)

// ReadReplica is a standby of the ledger's database that balance lookups may read, to spare the
// primary. postgres.DB implements it.
type ReadReplica interface {
	// Account is tally.Store's Account, on the standby.
	Account(ctx context.Context, id string) (tally.Account, error)
	// LapsedPoints is tally.LotStore's LapsedPoints, on the standby.
	LapsedPoints(ctx context.Context, accountID string, now time.Time) (int64, error)
	// ReplayLag is how far behind its primary the standby's data may be; an error when it cannot tell
	// (it is not streaming).
	ReplayLag(ctx context.Context) (time.Duration, error)
}

// balance reads a customer's account for a lookup, and how old the answer may be. It reads the read
// replica when there is one and it lags by no more than ReadMaxStaleness; otherwise, or when the replica
// fails, it reads the primary through the ledger. An answer from the replica is therefore never older
// than the staleness the operator allowed, and the lookup's as_of says how old it may be: it claims no
// freshness it lacks.
func (s *Server) balance(ctx context.Context, hash string) (tally.Account, time.Duration, error) {
	if s.ReadReplica != nil {
		lag, err := s.ReadReplica.ReplayLag(ctx)
		if err == nil && lag <= s.opts.ReadMaxStaleness {
			acct, err := s.ReadReplica.Account(ctx, hash)
			if err == nil {
				// Lapsed points are not spendable, whether or not the expiry job has posted them.
				acct.Lapsed, err = s.ReadReplica.LapsedPoints(ctx, hash, time.Now())
			}
			if code := tally.ErrorCode(err); err == nil || code == tally.ENOTFOUND {
				if s.metrics != nil {
					s.metrics.ReplicaReads.WithLabelValues("replica").Inc()
				}
				return acct, lag, err
			}
		}
		if s.metrics != nil {
			s.metrics.ReplicaReads.WithLabelValues("primary").Inc()
		}
	}
	acct, err := s.Ledger.Balance(ctx, hash)
	return acct, 0, err
}
