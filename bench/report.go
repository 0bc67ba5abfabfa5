package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// PrintLedger writes one row per concurrency level.
func PrintLedger(w io.Writer, cfg LedgerConfig, runs []LedgerRun) error {
	if len(runs) == 0 {
		return nil
	}
	fmt.Fprintf(w, "ledger %s: store=%s workers=%d customers=%d hot=%t duration=%s\n",
		cfg.Op, runs[0].Kind, runs[0].Workers, cfg.Customers, cfg.Hot, cfg.Duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "concurrency\tops/s\tp50\tp99\tmax\tmean batch\tfailed\tCPU per op: server\tpostgres\tledger + load gen\tmachine busy\t")
	for _, r := range runs {
		fmt.Fprintf(tw, "%d\t%.0f\t%s\t%s\t%s\t%.1f\t%s\t%s\t\n", r.Concurrency, r.Rate(),
			ms(r.Latency.Percentile(50)), ms(r.Latency.Percentile(99)), ms(r.Latency.Max()), r.MeanBatch, failures(r.Result), cpuColumns(&r.CPU, r.OK))
	}
	return tw.Flush()
}

// PrintPgbench writes one row per client count.
func PrintPgbench(w io.Writer, cfg PgbenchConfig, runs []PgbenchRun) error {
	mode := cfg.Mode
	if mode == "" {
		mode = "simple"
	}
	script := cfg.Script
	if script == "" {
		script = "accrual"
	}
	fmt.Fprintf(w, "pgbench %s.sql: accounts=%d hot=%t mode=%s duration=%s\n", script, cfg.Accounts, cfg.Hot, mode, cfg.Duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "clients\ttps\tlatency avg\ttransactions\tfailed\tCPU per transaction: server\tpostgres\tload gen (pgbench)\tmachine busy\t")
	for _, r := range runs {
		fmt.Fprintf(tw, "%d\t%.0f\t%s\t%d\t%d\t%s\t\n", r.Clients, r.TPS, ms(r.LatencyAvg), r.Transactions, r.Failed, cpuColumns(r.CPU, r.Transactions))
	}
	return tw.Flush()
}

// PrintHTTP writes one row per run and kind of request.
func PrintHTTP(w io.Writer, cfg HTTPConfig, runs []HTTPRun) error {
	fmt.Fprintf(w, "http %s: url=%s customers=%d duration=%s\n", cfg.Op, cfg.URL, cfg.Customers, cfg.Duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "request\tload\treq/s\tp50\tp99\tmax\tstatuses\tCPU per request: server\tpostgres\tload gen\tmachine busy\t")
	for _, r := range runs {
		load := fmt.Sprintf("%d clients", r.Concurrency)
		if r.Op == "lookup" {
			load = fmt.Sprintf("%.0f/s open", r.Offered)
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\t\n", r.Op, load, r.Rate(),
			ms(r.Latency.Percentile(50)), ms(r.Latency.Percentile(99)), ms(r.Latency.Max()), statuses(r.Outcomes), cpuColumns(r.CPU, r.CPUOps))
	}
	return tw.Flush()
}

// cpuColumns shows the CPU time of a run per operation (server, PostgreSQL, load generator) and the
// share of the machine that was busy, or dashes when it was not measured.
func cpuColumns(c *CPU, ops int) string {
	if c == nil || ops <= 0 {
		return "-\t-\t-\t-"
	}
	// Zero means not watched (no server process, no PostgreSQL database).
	per := func(d time.Duration) string {
		if d == 0 {
			return "-"
		}
		return fmt.Sprintf("%.0fµs", float64(PerOp(d, ops))/float64(time.Microsecond))
	}
	return fmt.Sprintf("%s\t%s\t%s\t%.0f%%", per(c.Server), per(c.Postgres), per(c.Client), 100*c.Busy)
}

// ms shows a duration in milliseconds with a precision that suits it.
func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f >= 100:
		return fmt.Sprintf("%.0fms", f)
	case f >= 10:
		return fmt.Sprintf("%.1fms", f)
	}
	return fmt.Sprintf("%.2fms", f)
}

// failures lists the failed outcomes, e.g. "0" or "12 (EUNAVAILABLE 12)".
func failures(r Result) string {
	n := r.Failed()
	if n == 0 {
		return "0"
	}
	var parts []string
	for _, l := range sortedLabels(r.Outcomes) {
		if l != "ok" {
			parts = append(parts, fmt.Sprintf("%s %d", l, r.Outcomes[l]))
		}
	}
	return fmt.Sprintf("%d (%s)", n, strings.Join(parts, ", "))
}

// statuses lists every outcome, e.g. "201:5230 429:12".
func statuses(o map[string]int) string {
	var parts []string
	for _, l := range sortedLabels(o) {
		parts = append(parts, fmt.Sprintf("%s:%d", l, o[l]))
	}
	return strings.Join(parts, " ")
}

func sortedLabels(o map[string]int) []string {
	var labels []string
	for l := range o {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	return labels
}
