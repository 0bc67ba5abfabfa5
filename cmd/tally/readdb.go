package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/postgres"
)

// readReplica is the --read-db standby; nil when there is none.
type readReplica struct{ db *postgres.DB }

// openReadReplica opens the standby that --read-db names, or returns nil without one. It does not
// migrate (a standby is read-only: it has the primary's schema) and does not connect: a standby that is
// down or behind only sends lookups back to the primary.
func openReadReplica(ctx context.Context, url string, maxStaleness time.Duration, log *slog.Logger) (*readReplica, error) {
	if url == "" {
		return nil, nil
	}
	if !strings.HasPrefix(url, "postgres://") && !strings.HasPrefix(url, "postgresql://") {
		return nil, fmt.Errorf("--read-db must be a postgres:// URL of a standby of --db, got %q", redact(url))
	}
	db, err := postgres.Open(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open --read-db: %w", err)
	}
	log.Info("balance lookups read the standby while it lags by no more than the staleness allowed", "max_staleness", maxStaleness.String())
	return &readReplica{db: db}, nil
}

// replica returns it as the api's ReadReplica: a nil interface when there is none.
func (r *readReplica) replica() api.ReadReplica {
	if r == nil {
		return nil
	}
	return r.db
}

func (r *readReplica) Close() error { return r.db.Close() }
