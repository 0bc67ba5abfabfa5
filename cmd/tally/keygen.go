package main

import (
	"context"
	"fmt"
	"io"

	"github.com/tally-ledger/tally"
)

// runKeygen prints a new random ledger key, for TALLY_LEDGER_KEY.
func runKeygen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keygen", stderr)
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("keygen takes no arguments, got %q", fs.Arg(0))
	}
	fmt.Fprintln(stdout, tally.GenerateLedgerKey())
	return nil
}
