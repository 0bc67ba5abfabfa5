package postgres

import (
	"context"
	"time"

	"github.com/tally-ledger/tally"
)

// ReplayLag reports how far behind its primary the database's data may be, for reads from a standby.
// A server that is not in recovery (a primary, or a promoted standby) lags by nothing. A standby that
// streams from its primary and has replayed all it received lags by nothing either: it holds what the
// primary has sent it. One that streams but is still replaying lags by the age of the last transaction
// it replayed. A standby that is not streaming cannot know what it misses: ReplayLag then returns
// EUNAVAILABLE, and the caller must not present its data as current.
func (db *DB) ReplayLag(ctx context.Context) (time.Duration, error) {
	var (
		inRecovery, streaming, caughtUp bool
		age                             *float64
	)
	err := db.pool.QueryRow(ctx, `
		SELECT pg_is_in_recovery(),
		       COALESCE((SELECT status = 'streaming' FROM pg_stat_wal_receiver), false),
		       COALESCE(pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn(), false),
		       EXTRACT(EPOCH FROM clock_timestamp() - pg_last_xact_replay_timestamp())::float8`).
		Scan(&inRecovery, &streaming, &caughtUp, &age)
	switch {
	case err != nil:
		return 0, classify(ctx, "replay lag", err)
	case !inRecovery:
		return 0, nil
	case !streaming:
		return 0, tally.Errorf(tally.EUNAVAILABLE, "the standby is not streaming from its primary")
	case caughtUp:
		return 0, nil
	case age == nil:
		return 0, tally.Errorf(tally.EUNAVAILABLE, "the standby has replayed no transaction yet")
	}
	return max(0, time.Duration(*age*float64(time.Second))), nil
}
