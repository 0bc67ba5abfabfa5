package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/bench"
)

// benchLots is `tally bench lots`: a redemption consuming many lots, and the expiry job over many lapsed
// lots while accruals go on (PostgreSQL).
func benchLots(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench lots", flag.ContinueOnError)
	fs.SetOutput(stderr)
	db := dbFlag(fs)
	redeemers := fs.Int("redeem-customers", 20, "customers redeemed whole, one at a time")
	perRedeem := fs.Int("redeem-lots", 1000, "open lots each of them holds")
	accounts := fs.Int("expiry-accounts", 1000, "accounts holding the lapsed lots")
	lots := fs.Int("expiry-lots", 1_000_000, "lapsed lots the expiry job expires")
	conc := fs.Int("concurrency", 16, "accrual writers beside the expiry job")
	baseline := fs.Duration("baseline", 10*time.Second, "how long the accruals run alone first")
	inFlight := fs.Int("lots-in-flight", 0, "lapsed lots of the expiries in flight at once (0: the job's default)")
	rate := fs.Int("expiry-rate", 0, "lapsed lots the job expires per second at most (0: the job's default; negative: unpaced)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if *redeemers < 0 || *perRedeem <= 0 || *accounts <= 0 || *lots < 0 || *conc <= 0 || *baseline <= 0 {
		return fmt.Errorf("bench lots: counts must be positive")
	}
	cfg := bench.LotsConfig{DB: *db, RedeemCustomers: *redeemers, LotsPerRedeem: *perRedeem, ExpiryAccounts: *accounts,
		ExpiryLots: *lots, Concurrency: *conc, Baseline: *baseline, LotsInFlight: *inFlight, ExpiryRate: *rate}
	res, err := bench.Lots(ctx, cfg, func(ctx context.Context, url string) (tally.Store, error) {
		s, err := openMigrated(ctx, url)
		if err != nil {
			return nil, err
		}
		return s.Store, nil
	})
	if err != nil {
		return err
	}
	return bench.PrintLots(stdout, cfg, res)
}
