// Command tally is the Tally points ledger: the service Genesys Cloud calls, and the tools that run it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, errUsageShown) {
			fmt.Fprintln(os.Stderr, "tally:", err)
		}
		os.Exit(exitCode(err))
	}
}

// errUsageShown is returned after usage was printed for a bad command line.
var errUsageShown = errors.New("usage")

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	if errors.Is(err, errUsageShown) {
		return 2
	}
	return 1
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the ledger service", runServe},
		{"migrate", "apply database migrations", runMigrate},
		{"verify", "audit the whole ledger offline", runVerify},
		{"purge-events", "delete remembered event outcomes older than the retention", runPurgeEvents},
		{"clients", "manage OAuth clients (create, list, revoke)", runClients},
	}
}

// run is the whole program, callable from tests.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return errUsageShown
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "tally: unknown command %q\n", args[0])
	usage(stderr)
	return errUsageShown
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: tally <command> [flags]\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-13s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'tally <command> -h' for a command's flags.")
}
