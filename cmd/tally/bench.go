package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/bench"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("bench needs a subcommand: ledger, pgbench, http, redeem or lots")
	}
	switch args[0] {
	case "ledger":
		return benchLedger(ctx, args[1:], stdout, stderr)
	case "pgbench":
		return benchPgbench(ctx, args[1:], stdout, stderr)
	case "http":
		return benchHTTP(ctx, args[1:], stdout, stderr)
	case "redeem":
		return benchRedeem(ctx, args[1:], stdout, stderr)
	case "lots":
		return benchLots(ctx, args[1:], stdout, stderr)
	}
	return fmt.Errorf("unknown bench subcommand %q: expected ledger, pgbench, http, redeem or lots", args[0])
}

func benchLedger(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("bench ledger", stderr)
	op := fs.String("op", "accrual", "accrual or redemption")
	customers := fs.Int("customers", 10000, "customers the writes are spread over")
	conc := fs.String("concurrency", "1,16,64", "comma-separated goroutine counts, one run each")
	d := fs.Duration("duration", 10*time.Second, "length of each run")
	count := fs.Int("count", 0, "end each run after this many writes (0: at --duration only)")
	hot := fs.Bool("hot", false, "every goroutine writes to one customer")
	workers := fs.Int("workers", 0, "ledger batch workers (default 1 on SQLite, 2 on PostgreSQL, as serve)")
	batchMax := fs.Int("batch-max", 256, "most writes in one database transaction")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the runs to this file")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	levels, err := intList("concurrency", *conc)
	if err != nil {
		return err
	}
	if *customers <= 0 || *d <= 0 || *batchMax <= 0 {
		return fmt.Errorf("bench ledger: --customers, --duration and --batch-max must be positive")
	}
	if *workers < 0 || *count < 0 {
		return fmt.Errorf("bench ledger: --workers and --count must not be negative")
	}
	cfg := bench.LedgerConfig{
		DB: *db, Op: tally.Kind(*op), Customers: *customers, Hot: *hot, Concurrency: levels,
		Duration: *d, Count: *count, Workers: *workers, MaxBatch: *batchMax,
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	runs, err := bench.Ledger(ctx, cfg, openBenchStore)
	return printRuns(err, func() error { return bench.PrintLedger(stdout, cfg, runs) })
}

func benchPgbench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, db := dbFlagSet("bench pgbench", stderr)
	clients := fs.String("clients", "1,16,64", "comma-separated client counts, one run each")
	d := fs.Duration("duration", 10*time.Second, "length of each run (whole seconds)")
	accounts := fs.Int("accounts", 10000, "account rows")
	hot := fs.Bool("hot", false, "every client on one account row")
	mode := fs.String("mode", "prepared", "pgbench query mode: simple, extended or prepared (pgx prepares its statements)")
	bin := fs.String("pgbench", "", "path of the pgbench binary (default: PATH, then /usr/lib/postgresql/*/bin)")
	cpu := fs.Bool("cpu", false, "measure the CPU time per transaction of pgbench and of its PostgreSQL backends (local server, Linux /proc)")
	script := fs.String("script", "accrual", "the row work of one accrual, or of one portal redemption (redemption)")
	if err := fs.Parse(args); err != nil {
		return errUsageShown
	}
	levels, err := intList("clients", *clients)
	if err != nil {
		return err
	}
	if *accounts <= 0 || *d < time.Second {
		return fmt.Errorf("bench pgbench: --accounts must be positive and --duration at least 1s")
	}
	cfg := bench.PgbenchConfig{DB: *db, Binary: *bin, Clients: levels, Duration: *d, Accounts: *accounts, Hot: *hot, Mode: *mode, WatchCPU: *cpu, Script: *script}
	runs, err := bench.Pgbench(ctx, cfg)
	return printRuns(err, func() error { return bench.PrintPgbench(stdout, cfg, runs) })
}

func benchHTTP(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench http", stderr)
	target := benchTargetFlags(fs, "bench http", "ledger:read", "ledger:write")
	op := fs.String("op", "accrual", "accrual, lookup, mixed (lookups at --rate while accruals run), or warmup (the warm-up alone)")
	customers := fs.Int("customers", 10000, "customers the requests are spread over")
	conc := fs.String("concurrency", "16,64", "comma-separated accrual client counts, one run each")
	d := fs.Duration("duration", 10*time.Second, "length of each run")
	count := fs.Int("count", 0, "end each accrual run after this many requests (0: at --duration only)")
	rate := fs.Float64("rate", 2000, "lookups per second, sent at a fixed rate whatever the latency")
	warmup := fs.Bool("warmup", true, "first send one accrual per customer from 64 clients, so that every account exists (reported as the warm-up row)")
	serverPID := fs.Int("server-pid", 0, "process id of the server: report its CPU time per request (Linux /proc)")
	watchDB := fs.String("watch-db", "", "postgres:// URL of the server's database: report its backends' CPU time per request (local server)")
	body := fs.String("body", "event", "what an accrual sends: event (the guide's webhook event, which the default earning rule turns into an accrual) or transaction (an explicit accrual)")
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
	if *customers <= 0 || *d <= 0 || *count < 0 {
		return fmt.Errorf("bench http: --customers and --duration must be positive, --count not negative")
	}
	cfg := bench.HTTPConfig{
		URL: *target.url, ClientID: *target.id, ClientSecret: *target.secret, Op: *op, Customers: *customers, Concurrency: levels,
		Duration: *d, Count: *count, Rate: *rate, Warmup: *warmup, Body: *body,
		ServerPID: *serverPID, WatchDB: *watchDB,
	}
	runs, err := bench.HTTP(ctx, cfg)
	if len(runs) == 0 {
		return err
	}
	return printRuns(err, func() error { return bench.PrintHTTP(stdout, cfg, runs) })
}

// intList parses a comma-separated list of positive whole numbers such as 1,16,64.
func intList(name, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("--%s: %q is not a list of positive whole numbers such as 1,16,64", name, s)
		}
		out = append(out, n)
	}
	return out, nil
}
