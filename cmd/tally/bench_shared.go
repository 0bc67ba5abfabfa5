package main

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/tally-ledger/tally"
)

// What the bench subcommands share: how the in-process ones open their store, how the HTTP ones name
// their server and client, and how every one prints what it measured.

// openBenchStore opens and migrates the store a benchmark runs on. It returns the store itself, not the
// CLI's wrapper, so that the benchmark finds its KeepStatistics as serve does.
func openBenchStore(ctx context.Context, url string) (tally.Store, error) {
	s, err := openMigrated(ctx, url)
	if err != nil {
		return nil, err
	}
	return s.Store, nil
}

// benchTarget is the running tally serve an HTTP benchmark calls, and the OAuth client it calls it as.
type benchTarget struct {
	cmd             string   // the subcommand, for its errors
	scopes          []string // what the client needs
	url, id, secret *string
}

// benchTargetFlags registers --url, --client-id and --client-secret for cmd, whose client needs scopes.
func benchTargetFlags(fs *flag.FlagSet, cmd string, scopes ...string) *benchTarget {
	last := len(scopes) - 1
	return &benchTarget{
		cmd: cmd, scopes: scopes,
		url: fs.String("url", "http://127.0.0.1:8080", "base URL of a running tally serve (loopback only)"),
		id:  fs.String("client-id", "", "OAuth client id with "+strings.Join(scopes[:last], ", ")+" and "+scopes[last]+" (required)"),
		secret: fs.String("client-secret", envDefault("TALLY_BENCH_CLIENT_SECRET", ""),
			"its secret (env TALLY_BENCH_CLIENT_SECRET)"),
	}
}

// check requires the client's credentials, saying how to get them.
func (t *benchTarget) check() error {
	if *t.id == "" || *t.secret == "" {
		return fmt.Errorf("%s: --client-id and --client-secret are required (tally clients create --scopes %s)", t.cmd, strings.Join(t.scopes, ","))
	}
	return nil
}

// printRuns prints what a benchmark measured, also when it stopped on an error (the runs it finished
// stand), and returns the benchmark's error, else the printer's.
func printRuns(err error, print func() error) error {
	if perr := print(); err == nil {
		err = perr
	}
	return err
}
