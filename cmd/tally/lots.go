package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// openLotsLedger opens a migrated store and a ledger over it with the ledger key, for the lifecycle
// commands that write. Closing the store closes the ledger.
func openLotsLedger(ctx context.Context, db string) (*keyedStore, *ledger.Service, error) {
	s, err := openKeyed(ctx, db, openMigrated)
	if err != nil {
		return nil, nil, err
	}
	if _, err := ledger.OpenChain(ctx, s.Store, s.key); err != nil {
		s.Close()
		return nil, nil, fmt.Errorf("the ledger key does not open this ledger: %w", err)
	}
	workers := 1
	if s.kind == "postgres" {
		workers = 2
	}
	return s, s.ledger(ledger.Options{Workers: workers}), nil
}

// runExpire is `tally expire`: one run of the expiry job.
func runExpire(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("expire", stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	rate := fs.Int("rate", ledger.DefaultExpiryRate, "lapsed lots expired per second at most, so that live writes keep their rate (a negative number: as fast as the ledger takes them)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if err := takesNoArgs(fs, "expire"); err != nil {
		return err
	}
	s, l, err := openLotsLedger(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	start := time.Now()
	if *rate == 0 {
		return fmt.Errorf("--rate must not be 0 (a negative number runs the job unpaced)")
	}
	rep, err := l.ExpireLapsed(ctx, ledger.ExpireOptions{Rate: *rate})
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, rep)
	}
	fmt.Fprintf(stdout, "expired %d points of %d lapsed lots in %d accounts: %d expiry transactions posted (%s)\n",
		rep.Points, rep.Lots, rep.Accounts, rep.Transactions, time.Since(start).Round(time.Millisecond))
	return nil
}

// runLots is `tally lots`: activate pending points, list a customer's lots.
func runLots(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	usage := func() error {
		fmt.Fprintln(stderr, `usage: tally lots <command> [flags]

commands:
  activate          activate every pending lot that is due (what serve does on a timer)
  activate SEQ      activate the pending lot of transaction SEQ now
  list CUSTOMER     print a customer's open lots (id or customer hash) as JSON, in the order debits use them
  expire            run the expiry job (same as tally expire)
  warn              write the points.expiring_soon events that webhook subscriptions ask for (serve does it hourly)`)
		return errUsageShown
	}
	if len(args) == 0 {
		return usage()
	}
	fs, db := dbFlagSet("lots "+args[0], stderr)
	if err := fs.Parse(args[1:]); err != nil {
		return errUsageShown
	}
	switch args[0] {
	case "expire":
		return runExpire(ctx, args[1:], stdout, stderr)
	case "activate":
		s, l, err := openLotsLedger(ctx, *db)
		if err != nil {
			return err
		}
		defer s.Close()
		if fs.NArg() == 0 {
			n, err := l.ActivateDue(ctx, 0)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "activated %d pending lots\n", n)
			return nil
		}
		seq, err := strconv.ParseInt(fs.Arg(0), 10, 64)
		if err != nil || seq <= 0 {
			return fmt.Errorf("SEQ must be a transaction number, got %q", fs.Arg(0))
		}
		lot, err := l.Activate(ctx, seq)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "lot %d: %d of %d points spendable\n", lot.Seq, lot.Remaining, lot.Points)
		return nil
	case "warn":
		if err := takesNoArgs(fs, "lots warn"); err != nil {
			return err
		}
		s, l, err := openLotsLedger(ctx, *db)
		if err != nil {
			return err
		}
		defer s.Close()
		n, err := l.WarnExpiring(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d expiring-soon warnings written or already written\n", n)
		return nil
	case "list":
		if fs.NArg() != 1 {
			return errors.New("lots list takes one customer (id or customer hash)")
		}
		s, err := openMigrated(ctx, *db)
		if err != nil {
			return err
		}
		defer s.Close()
		account := fs.Arg(0)
		if !tally.IsCustomerHash(account) {
			h, err := customerHasher(s, slog.New(slog.NewTextHandler(stderr, nil)))
			if err != nil {
				return err
			}
			account = h.Hash(account)
		}
		lots, err := s.AccountLots(ctx, account)
		if err != nil {
			return err
		}
		if lots == nil {
			lots = []tally.Lot{}
		}
		return printIndentedJSON(stdout, lots)
	}
	return usage()
}

// lotsLoop is serve's lifecycle job: every interval it activates the pending lots that are due and
// posts the expiries of lapsed lots. Both are safe on every replica at once.
func lotsLoop(ctx context.Context, l *ledger.Service, every time.Duration, expiryRate int, log *slog.Logger) {
	const warnEvery = time.Hour
	var lastWarned time.Time
	runEvery(ctx, every, func() {
		if n, err := l.ActivateDue(ctx, 0); err != nil && ctx.Err() == nil {
			log.Warn("activation of pending lots failed", "err", err)
		} else if n > 0 {
			log.Info("activated pending lots", "count", n)
		}
		if rep, err := l.ExpireLapsed(ctx, ledger.ExpireOptions{Rate: expiryRate}); err != nil && ctx.Err() == nil {
			log.Warn("expiry job failed", "err", err)
		} else if rep.Transactions > 0 {
			log.Info("expired lapsed points", "accounts", rep.Transactions, "lots", rep.Lots, "points", rep.Points)
		}
		// Warnings look up to a subscription's expiring_days ahead; once an hour is soon enough for a
		// warning counted in days, and each (lot, days) warning is written once whoever writes it.
		if time.Since(lastWarned) >= warnEvery {
			if _, err := l.WarnExpiring(ctx); err != nil && ctx.Err() == nil {
				log.Warn("expiring-soon warnings failed", "err", err)
			} else {
				lastWarned = time.Now()
			}
		}
	})
}
