package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"github.com/tally-ledger/tally/spool"
)

// spoolConfig says where accruals are kept while the store is unavailable.
type spoolConfig struct {
	path     string // the file spool; "" for the default, "off" to turn the spool off
	natsURL  string // when set, the spool is a JetStream stream on this server instead of a file
	stream   string // that stream's name
	maxBytes int64
}

// spoolReplayWorkers is how many goroutines replay the spool (one customer's entries always on one).
const spoolReplayWorkers = 4

// spoolReplayEvery is how often serve looks at the spool and drains it when the store is available.
const spoolReplayEvery = time.Second

func spoolFlags(fs *flag.FlagSet) func() (spoolConfig, error) {
	path := fs.String("spool", envDefault("TALLY_SPOOL", ""), "file that keeps accruals while the database is unavailable, replayed when it is back (env TALLY_SPOOL; default DB.spool beside an embedded database, tally.spool in the working directory with PostgreSQL; off turns the spool off: accruals then answer 503 during an outage)")
	natsURL := fs.String("nats", envDefault("TALLY_NATS_URL", ""), "NATS server with JetStream: keep the spool in its TALLY_SPOOL stream, shared by every replica, instead of a file (env TALLY_NATS_URL)")
	stream := fs.String("nats-stream", envDefault("TALLY_NATS_STREAM", spool.DefaultStream), "name of the JetStream stream of the spool, for several Tally ledgers on one NATS server (env TALLY_NATS_STREAM)")
	maxBytes := intFlag(fs, "spool-max-bytes", "TALLY_SPOOL_MAX_BYTES", spool.DefaultMaxBytes, "size limit of the spool in bytes: beyond it accruals answer 503")
	return func() (spoolConfig, error) {
		n, err := maxBytes()
		if err != nil {
			return spoolConfig{}, err
		}
		if n <= 0 {
			return spoolConfig{}, errors.New("--spool-max-bytes must be positive")
		}
		return spoolConfig{path: *path, natsURL: *natsURL, stream: *stream, maxBytes: int64(n)}, nil
	}
}

// openSpool opens the spool c names over the store s: nil when it is off.
func openSpool(ctx context.Context, s *openedStore, c spoolConfig, log *slog.Logger) (spool.Spool, error) {
	if c.path == "off" {
		log.Warn("spool off: accruals are refused (503) while the database is unavailable")
		return nil, nil
	}
	if c.natsURL != "" {
		ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		js, err := spool.OpenJetStream(ctx, c.natsURL, spool.JetStreamOptions{Stream: c.stream, MaxBytes: c.maxBytes, Workers: spoolReplayWorkers})
		if err != nil {
			return nil, err
		}
		log.Info("spool", "backend", "jetstream", "stream", c.stream)
		return js, nil
	}
	path := c.path
	if path == "" {
		path = "tally.spool"
		if s.kind == "sqlite" {
			path = s.sqlitePath + ".spool"
		}
	}
	f, err := spool.OpenFile(path, spool.FileOptions{MaxBytes: c.maxBytes, Workers: spoolReplayWorkers})
	if err != nil {
		return nil, fmt.Errorf("spool: %w (set --spool to a writable file, or --spool off)", err)
	}
	log.Info("spool", "backend", "file", "file", path)
	return f, nil
}
