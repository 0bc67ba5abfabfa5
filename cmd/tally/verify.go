package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tally-ledger/tally/ledger"
)

func runVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("verify", stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	quiet := fs.Bool("quiet", false, "print no progress")
	allowUnsealed := fs.Bool("allow-unsealed", false, "accept a ledger without a chain seal (written before the ledger key existed): every hash is checked as unkeyed")
	checkpoints := fs.String("checkpoints", "", "a checkpoint file (tally checkpoint, serve --checkpoint-file): prove the ledger still holds what each checkpoint covered")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	s, err := openKeyed(ctx, *db, openCurrent)
	if err != nil {
		return err
	}
	defer s.Close()
	opts := ledger.VerifyOptions{Key: s.key, AllowUnsealed: *allowUnsealed}
	defaulted := false
	if *checkpoints == "" && s.kind == "sqlite" {
		// The file serve and tally checkpoint keep beside an embedded database, when there is one.
		if def, _ := checkpointPath(s.openedStore, ""); fileExists(def) {
			*checkpoints, defaulted = def, true
		}
	}
	if *checkpoints != "" {
		opts.Checkpoints, err = readCheckpoints(*checkpoints)
		switch {
		case defaulted && errors.Is(err, errNoCheckpoint): // serve made it, and has taken none yet
			*checkpoints = ""
		case err != nil:
			return err
		}
	}
	start := time.Now()
	last := start
	progress := func(done, total int64) {
		if *quiet || time.Since(last) < time.Second && done != total {
			return
		}
		last = time.Now()
		fmt.Fprintf(stderr, "verify: %d of %d transactions checked\n", done, total)
	}
	opts.Progress = progress
	rep, err := ledger.Verify(ctx, s.Audit(), opts)
	var breach *ledger.Breach
	if errors.As(err, &breach) {
		return &exitError{code: 3, err: fmt.Errorf("verify FAILED: %w", breach)}
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(stdout, rep)
	}
	fmt.Fprintf(stdout, "ledger verified: %d accounts, %d transactions, %d postings, all chains intact, balances sum to zero (%s)\n",
		rep.Accounts, rep.Transactions, rep.Postings, time.Since(start).Round(time.Millisecond))
	switch {
	case rep.Checkpoints > 0:
		fmt.Fprintf(stdout, "checkpoints: %d proven (%s), the newest is %d\n", rep.Checkpoints, *checkpoints, rep.LastCheckpoint)
	default:
		fmt.Fprintln(stdout, "checkpoints: none given, so newest transactions deleted with every trace would not show (--checkpoints FILE)")
	}
	if !rep.Sealed && rep.Transactions > 0 {
		fmt.Fprintln(stdout, "chains: NOT SEALED, every hash checked as unkeyed (--allow-unsealed)")
	}
	if rep.Erasures > 0 {
		fmt.Fprintf(stdout, "erasures: %d, each sealed by the ledger key; %d checkpoint roots taken before them name forgotten ids and were not recomputed (their heads were checked)\n",
			rep.Erasures, rep.ErasedRoots)
	}
	return nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
