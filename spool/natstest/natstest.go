// Package natstest opens JetStream spools for tests, each on a stream of its own that is deleted when the
// test ends. The NATS server comes from TALLY_TEST_NATS_URL (scripts/nats-up prints one); without one (or
// when it cannot be reached) tests skip, except in CI (CI=true), where they fail.
package natstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally/spool"
)

// EnvURL names the environment variable holding the NATS server's URL.
const EnvURL = "TALLY_TEST_NATS_URL"

// URL returns the test NATS server's URL, or skips (fails in CI) the test when there is none.
func URL(tb testing.TB) string {
	tb.Helper()
	url := os.Getenv(EnvURL)
	if url == "" {
		unavailable(tb, EnvURL+" is not set")
	}
	return url
}

// Stream returns a stream name no other test uses.
func Stream(tb testing.TB) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "TALLY_SPOOL_TEST_" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// Open opens a JetStream spool on a stream of the test's own (opts.Stream when set, else a new one),
// closed and deleted when the test ends.
func Open(tb testing.TB, opts spool.JetStreamOptions) *spool.JetStream {
	tb.Helper()
	url := URL(tb)
	if opts.Stream == "" {
		opts.Stream = Stream(tb)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := spool.OpenJetStream(ctx, url, opts)
	if err != nil {
		unavailable(tb, err.Error())
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = s.DeleteStream(ctx)
		_ = s.Close()
	})
	return s
}

// unavailable fails the test in CI and skips it elsewhere.
func unavailable(tb testing.TB, why string) {
	tb.Helper()
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		tb.Fatalf("natstest: JetStream tests must run in CI: %s (scripts/nats-up prints a URL for %s)", why, EnvURL)
	}
	tb.Skipf("natstest: skipping JetStream test: %s (set %s, e.g. from scripts/nats-up)", why, EnvURL)
}
