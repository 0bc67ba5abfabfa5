package main

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally/spool"
	"github.com/tally-ledger/tally/spool/natstest"
)

// TestServeReplaysSpoolAtStart: accruals a previous run left in the file spool are applied when serve
// starts, once, and the spool is emptied.
func TestServeReplaysSpoolAtStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "tally.db")
	path := filepath.Join(dir, "left.spool")
	sp, err := spool.OpenFile(path, spool.FileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"left-1", "left-2", "left-1"} { // the last: a retry the caller sent again
		body, _ := json.Marshal(accrualRequest(key, "carol", 21))
		if err := sp.Append(context.Background(), spool.Entry{Body: body, Customer: "carol", Client: "earlier", Received: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	sp.Close()

	s := startServe(t, "--db", db, "--spool", path)
	id, secret := createClient(t, db, "ledger:read")
	tok := fetchToken(t, s.base, id, secret)
	waitForBalance(t, s.base, tok, "carol", 42, "the spool left by an earlier run was not replayed")
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if info, err := os.Stat(path); err != nil || info.Size() != 0 {
		t.Fatalf("the replayed spool: %v, %v; want an empty file", info, err)
	}
}

// TestServeReplaysJetStreamAtStart: with --nats, accruals left in the stream (by this replica or another)
// are applied once serve runs.
func TestServeReplaysJetStreamAtStart(t *testing.T) {
	t.Parallel()
	stream := natstest.Stream(t)
	js := natstest.Open(t, spool.JetStreamOptions{Stream: stream})
	for _, key := range []string{"js-1", "js-2"} {
		body, _ := json.Marshal(accrualRequest(key, "dana", 5))
		if err := js.Append(context.Background(), spool.Entry{Body: body, Customer: "dana", Client: "other-replica", Received: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
	}
	db := tempDB(t)
	s := startServe(t, "--db", db, "--nats", natstest.URL(t), "--nats-stream", stream)
	id, secret := createClient(t, db, "ledger:read")
	tok := fetchToken(t, s.base, id, secret)
	waitForBalance(t, s.base, tok, "dana", 10, "the JetStream spool was not replayed")
}

// TestServeSpoolFlags: the spool's flags and their environment fallbacks.
func TestServeSpoolFlags(t *testing.T) {
	t.Setenv("TALLY_NATS_URL", "nats://127.0.0.1:4999")
	c, err := parseServe(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.spool.natsURL != "nats://127.0.0.1:4999" || c.spool.path != "" || c.spool.maxBytes != spool.DefaultMaxBytes || c.spool.stream != spool.DefaultStream {
		t.Fatalf("defaults: %+v", c.spool)
	}
	c, err = parseServe([]string{"--spool", "off", "--nats", "nats://h:1", "--nats-stream", "S", "--spool-max-bytes", "1000"}, io.Discard)
	if err != nil || c.spool != (spoolConfig{path: "off", natsURL: "nats://h:1", stream: "S", maxBytes: 1000}) {
		t.Fatalf("flags: %+v, %v", c.spool, err)
	}
	for _, bad := range []string{"0", "-1", "lots"} {
		if _, err := parseServe([]string{"--spool-max-bytes", bad}, io.Discard); err == nil || !strings.Contains(err.Error(), "spool-max-bytes") {
			t.Fatalf("--spool-max-bytes %s: %v", bad, err)
		}
	}
}

// waitForBalance waits up to 30 seconds for serve at base to answer customer's balance as want: a
// replayed spool is applied in the background.
func waitForBalance(t *testing.T, base, tok, customer string, want float64, failure string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for lookup(t, base, tok, customer)["balance"] != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", failure, lookup(t, base, tok, customer))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
