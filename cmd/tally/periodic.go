package main

import (
	"context"
	"time"
)

// runEvery calls job each time interval has passed, until ctx ends: the loop of serve's background jobs.
// A job that overruns its interval delays the next call rather than overlapping it (a ticker drops the
// ticks it cannot deliver).
func runEvery(ctx context.Context, interval time.Duration, job func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		job()
	}
}
