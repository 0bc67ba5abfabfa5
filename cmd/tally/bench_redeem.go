package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tally-ledger/tally/bench"
)

// benchRedeem measures portal redemptions over HTTP, or a flash sale of one reward with --units.
func benchRedeem(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench redeem", stderr)
	u := fs.String("url", "http://127.0.0.1:8080", "base URL of a running tally serve (loopback only)")
	id := fs.String("client-id", "", "OAuth client id with ledger:read, ledger:write and admin (required)")
	secret := fs.String("client-secret", envDefault("TALLY_BENCH_CLIENT_SECRET", ""), "its secret (env TALLY_BENCH_CLIENT_SECRET)")
	customers := fs.Int("customers", 2000, "customers redeeming, each funded and given a portal session first")
	conc := fs.String("concurrency", "16,64", "comma-separated client counts, one run (and one new reward) each")
	d := fs.Duration("duration", 10*time.Second, "length of each run (a flash sale ends sooner when sold out)")
	units := fs.Int("units", 0, "units of the reward (a flash sale; 0: unlimited)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	levels, err := intList("concurrency", *conc)
	if err != nil {
		return err
	}
	if *id == "" || *secret == "" {
		return fmt.Errorf("bench redeem: --client-id and --client-secret are required (tally clients create --scopes ledger:read,ledger:write,admin)")
	}
	if *customers <= 0 || *d <= 0 || *units < 0 {
		return fmt.Errorf("bench redeem: --customers and --duration must be positive, --units not negative")
	}
	cfg := bench.RedeemConfig{URL: *u, ClientID: *id, ClientSecret: *secret, Customers: *customers, Concurrency: levels, Duration: *d, Units: *units}
	runs, err := bench.Redeem(ctx, cfg)
	if len(runs) > 0 {
		if perr := bench.PrintRedeem(stdout, cfg, runs); err == nil {
			err = perr
		}
	}
	return err
}
