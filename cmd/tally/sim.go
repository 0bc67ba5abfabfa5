package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tally-ledger/tally/sim"
)

// runSim runs the Genesys emulator against a running tally serve and checks the ledger's invariants.
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("sim", stderr)
	var cfg sim.Config
	fs.StringVar(&cfg.Target, "target", "http://127.0.0.1:8080", "base URL of the Tally the emulator calls")
	fs.BoolVar(&cfg.AllowRemote, "allow-remote", false, "allow a target that is not on this machine (the run writes customers and rewards there)")
	fs.StringVar(&cfg.ClientID, "client-id", envDefault("TALLY_SIM_CLIENT_ID", ""), "OAuth client id with ledger:read, ledger:write and admin (env TALLY_SIM_CLIENT_ID)")
	fs.StringVar(&cfg.ClientSecret, "client-secret", envDefault("TALLY_SIM_CLIENT_SECRET", ""), "its secret (env TALLY_SIM_CLIENT_SECRET)")
	fs.IntVar(&cfg.Customers, "customers", 50, "customers interacting")
	fs.DurationVar(&cfg.Duration, "duration", 0, "length of the run (default 10s when --events is not given)")
	fs.IntVar(&cfg.Events, "events", 0, "end the run after this many conversations (0: at --duration only)")
	fs.IntVar(&cfg.Concurrency, "concurrency", 8, "customers acting at once")
	fs.Float64Var(&cfg.Duplicates, "duplicates", 0.3, "share of events delivered more than once (half at once, half late), and of redemptions sent again")
	channels := fs.String("channels", "webchat,sms,voice,email", "comma-separated channels customers use: webchat, sms, voice, email, callback")
	fs.BoolVar(&cfg.HonourExpiry, "honour-expires-in", false, "renew the token when its expires_in has passed, not only after a 401")
	fs.DurationVar(&cfg.LookupTimeout, "lookup-timeout", 3*time.Second, "the flow's timeout of a balance lookup (the guide's 3000 ms)")
	fs.IntVar(&cfg.FlowRetries, "flow-retries", 2, "retries of a flow after a failed or timed-out Data Action, before its fallback path")
	fs.DurationVar(&cfg.ActionTimeout, "action-timeout", 10*time.Second, "timeout of the other Data Actions")
	fs.DurationVar(&cfg.MaxRetryAfter, "max-retry-after", 10*time.Second, "the longest Retry-After (429, 503) waited for")
	fs.Int64Var(&cfg.RewardCost, "reward-cost", 20, "point cost of the run's limited reward (the unlimited one costs twice as much)")
	fs.Int64Var(&cfg.Stock, "stock", 0, "units of the run's limited reward (default: a fifth of --customers)")
	db := fs.String("db", "", "the target's database (sqlite:PATH or postgres://...): run the ledger verification at the end; it needs the ledger key (TALLY_LEDGER_KEY, or the key file beside a SQLite database)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	progress := fs.Bool("progress", false, "show a progress bar on standard error even when it is not a terminal")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sim: unexpected argument %q", fs.Arg(0))
	}
	for _, c := range strings.Split(*channels, ",") {
		if c = strings.TrimSpace(c); c != "" {
			cfg.Channels = append(cfg.Channels, c)
		}
	}
	if *db != "" {
		url := *db
		cfg.Verify = func(ctx context.Context) (string, error) { return verifyLedger(ctx, url) }
	}
	if *progress || isTerminal(stderr) {
		cfg.Progress = progressBar(stderr)
	}
	rep, err := sim.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	if *asJSON {
		err = printIndentedJSON(stdout, rep)
	} else {
		err = rep.Print(stdout)
	}
	if err != nil {
		return err
	}
	if failed := rep.Failed(); len(failed) > 0 {
		return &exitError{code: 3, err: fmt.Errorf("sim: invariant failed: %s", strings.Join(failed, "; "))}
	}
	return nil
}

// verifyLedger runs `tally verify` on the target's database and returns its verdict.
func verifyLedger(ctx context.Context, db string) (string, error) {
	var out bytes.Buffer
	if err := runVerify(ctx, []string{"--db", db, "--quiet"}, &out, io.Discard); err != nil {
		return "", err
	}
	return strings.TrimSpace(out.String()), nil
}

// isTerminal reports whether w is a terminal (a character device), where a progress bar belongs.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// progressBar draws the run's progress on one line of w, redrawn in place.
func progressBar(w io.Writer) func(done float64, events, requests int64) {
	const width = 30
	finished := false
	return func(done float64, events, requests int64) {
		if finished {
			return
		}
		n := int(done * width)
		fmt.Fprintf(w, "\r[%s%s] %3.0f%%  %d conversations  %d requests", strings.Repeat("#", n), strings.Repeat(".", width-n), done*100, events, requests)
		if done >= 1 {
			finished = true
			fmt.Fprintln(w, "  checking the invariants...")
		}
	}
}
