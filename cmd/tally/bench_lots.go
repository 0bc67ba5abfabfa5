package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tally-ledger/tally/bench"
)

// benchLots measures the points lifecycle through the ledger (issue 9): redemptions that consume many
// lots, and the expiry job over many lots beside accruals.
func benchLots(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("bench lots", stderr)
	levels := fs.String("lots", "10,100,1000", "comma-separated open lots per customer, one redemption run each")
	customers := fs.Int("customers", 20, "customers per redemption run (each redeems once a point, then everything)")
	expiry := fs.Int("expiry-lots", 0, "lots for the expiry job (0: skip that part); half lapse before the job runs alone, half before it runs beside accruals")
	perAccount := fs.Int("lots-per-account", 10, "lots per account in the expiry part")
	clients := fs.Int("accrual-clients", 16, "accrual clients beside the expiry job")
	d := fs.Duration("duration", 10*time.Second, "how long the accruals run without the expiry job, for comparison")
	workers := fs.Int("workers", 0, "ledger batch workers (default 1 on SQLite, 2 on PostgreSQL, as serve)")
	verify := fs.Bool("verify", true, "verify the ledger (tally verify's checks) after each part")
	rate := fs.Int("expiry-rate", 0, "lapsed lots the job expires per second at most (0: the job's default; negative: unpaced)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	var lots []int
	if *levels != "" && *levels != "0" {
		var err error
		if lots, err = intList("lots", *levels); err != nil {
			return err
		}
	}
	if *customers <= 0 || *perAccount <= 0 || *clients <= 0 || *d <= 0 || *expiry < 0 || *workers < 0 {
		return fmt.Errorf("bench lots: --customers, --lots-per-account, --accrual-clients and --duration must be positive")
	}
	cfg := bench.LotsConfig{DB: *db, LotsPerCustomer: lots, Customers: *customers, ExpiryLots: *expiry,
		LotsPerAccount: *perAccount, AccrualClients: *clients, Duration: *d, Workers: *workers, Verify: *verify, Log: stderr, ExpiryRate: *rate}
	redeems, exp, err := bench.Lots(ctx, cfg, openBenchStore)
	return printRuns(err, func() error { return bench.PrintLots(stdout, redeems, exp) })
}
