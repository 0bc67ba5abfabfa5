package main

import (
	"context"
	"fmt"
	"io"
	"time"
)

// defaultEventRetention is how long event outcomes are remembered for idempotent replays. Explicit
// transactions' outcomes are kept for good: they are the API's promise of a replay for every key.
const defaultEventRetention = 30 * 24 * time.Hour

func runPurgeEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("purge-events", stderr)
	retentionFlag := durationFlag(fs, "retention", "TALLY_EVENT_RETENTION", defaultEventRetention,
		"remove event outcomes older than this (explicit transactions' outcomes are kept)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	retention, err := retentionFlag()
	if err != nil {
		return err
	}
	if retention <= 0 {
		return fmt.Errorf("--retention must be positive")
	}
	s, err := openMigrated(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	n, err := s.PurgeOutcomes(ctx, time.Now().Add(-retention))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed %d event outcomes older than %s\n", n, retention)
	return nil
}
