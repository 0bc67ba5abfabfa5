package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

func runMigrate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("migrate", stderr)
	sealExisting := fs.Bool("seal-existing", false, "seal the chains of a ledger that holds transactions written before the ledger key existed (once, when upgrading; check it with 'tally verify --allow-unsealed' first)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	s, err := openMigrated(ctx, *db)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintln(stdout, "migrations are current")
	// Sealing the chains here, before any upgraded replica writes, keeps every transaction written so
	// far verifiable with its unkeyed hash and every later one keyed. Without a key at hand (PostgreSQL
	// with TALLY_LEDGER_KEY unset) the first write of serve seals them instead.
	if s.kind != "sqlite" && os.Getenv("TALLY_LEDGER_KEY") == "" {
		fmt.Fprintln(stdout, "chains not sealed: TALLY_LEDGER_KEY is not set (serve seals them at its first write)")
		return nil
	}
	key, err := ledgerKey(s, nil)
	if err != nil {
		return err
	}
	open := ledger.OpenChain
	if *sealExisting {
		open = ledger.SealExisting
	}
	chain, err := open(ctx, s.Store, key)
	if errors.Is(err, ledger.ErrUnsealed) {
		return errors.New(tally.ErrorMessage(err))
	}
	if err != nil {
		return err
	}
	if v1 := chain.Seal().V1Through; v1 > 0 {
		fmt.Fprintf(stdout, "chains sealed: transactions up to %d keep their unkeyed (v1) hashes; take a checkpoint now to anchor them\n", v1)
	} else {
		fmt.Fprintln(stdout, "chains sealed: every transaction is hashed with the ledger key")
	}
	return nil
}
