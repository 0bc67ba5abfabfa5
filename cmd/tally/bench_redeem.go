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
	target := benchTargetFlags(fs, "bench redeem", "ledger:read", "ledger:write", "admin")
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
	if err := target.check(); err != nil {
		return err
	}
	if *customers <= 0 || *d <= 0 || *units < 0 {
		return fmt.Errorf("bench redeem: --customers and --duration must be positive, --units not negative")
	}
	cfg := bench.RedeemConfig{URL: *target.url, ClientID: *target.id, ClientSecret: *target.secret, Customers: *customers, Concurrency: levels, Duration: *d, Units: *units}
	runs, err := bench.Redeem(ctx, cfg)
	if len(runs) == 0 {
		return err
	}
	return printRuns(err, func() error { return bench.PrintRedeem(stdout, cfg, runs) })
}
