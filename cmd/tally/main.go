// Command tally is the Tally points ledger: the service Genesys Cloud calls, and the tools that run it.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// The first signal starts a graceful shutdown; forgetting the handler then lets a second one end the
	// process at once, for an operator who will not wait out the shutdown deadline.
	go func() {
		<-ctx.Done()
		stop()
	}()
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
		{"checkpoint", "append a signed checkpoint of the ledger head to a file", runCheckpoint},
		{"purge-events", "delete remembered event outcomes older than the retention", runPurgeEvents},
		{"expire", "post the expiry of lapsed points lots (the expiry job, once)", runExpire},
		{"lots", "points lots: activate pending points, list a customer's lots", runLots},
		{"clients", "manage OAuth clients (create, list, revoke)", runClients},
		{"rewards", "manage the reward catalog, stock, coupon codes and dead letters", runRewards},
		{"rules", "list, show and test the earning rules (list, show NAME, test --event FILE)", runRules},
		{"tiers", "show a customer's tier, or run the end-of-period tier review", runTiers},
		{"report", "finance reports: outstanding, rollforward, breakage (CSV or JSON)", runReport},
		{"customers", "forget a customer (erasure), list erasures", runCustomers},
		{"import", "import opening balances and historical accruals from CSV", runImport},
		{"webhooks", "manage webhook subscriptions for events out (create, list, update, delete, secret, deliveries)", runWebhooks},
		{"bench", "measure ledger and HTTP throughput", runBench},
		{"sim", "emulate Genesys Cloud against a running tally serve and check the invariants", runSim},
		{"keygen", "print a new ledger key for TALLY_LEDGER_KEY", runKeygen},
		{"webhook-secret", "print the secret a webhook receiver verifies deliveries with", runWebhookSecret},
		{"genesys", "export the Genesys Cloud artifacts (Data Actions, flows, trigger, Terraform)", runGenesys},
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
			if err := c.run(ctx, args[1:], stdout, stderr); err != nil {
				return oneLine(err)
			}
			return nil
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

// Line breaks inside an error message, with the indentation around them; a colon before a break
// introduces a list of causes.
var (
	introBreak = regexp.MustCompile(`:\s*\n\s*`)
	lineBreak  = regexp.MustCompile(`\s*\n\s*`)
)

// oneLine keeps err's message on one line, as a command-line tool's error should be: pgx, for one, puts
// each failed connection attempt on a line of its own.
func oneLine(err error) error {
	if !strings.Contains(err.Error(), "\n") {
		return err
	}
	return &oneLineError{err}
}

type oneLineError struct{ err error }

func (e *oneLineError) Error() string {
	msg := introBreak.ReplaceAllString(strings.TrimSpace(e.err.Error()), ": ")
	return lineBreak.ReplaceAllString(msg, "; ")
}
func (e *oneLineError) Unwrap() error { return e.err }
