package report_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/postgres/pgtest"
	"github.com/tally-ledger/tally/report"
	"github.com/tally-ledger/tally/sqlite"
)

// The reports over a ledger of 1,000,000 transactions, 100,000 customers, two years (BENCHMARKS.md,
// "Points lifecycle: reports"):
//
//	go test ./report -run '^$' -bench Reports -benchtime 5x -timeout 30m
//
// The ledger is written in SQL, below the ledger service (no hash chains: reports do not read them): in
// every run of ten transactions of one customer, seven accruals of 10 points (each a lot expiring a year
// after it was earned; the last of a run is pending in the final 50,000 transactions), then two
// redemptions and an expiry of 10 that consume the run's first three lots. One transaction a minute.
const (
	benchTransactions = 1_000_000
	benchCustomers    = 100_000
)

var benchStart = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// postgresSeed fills a fresh schema.
var postgresSeed = []string{
	`INSERT INTO accounts (id, customer_hash, kind, created_at)
	 SELECT lpad(to_hex(i), 64, '0'), lpad(to_hex(i), 64, '0'), 'customer', '2024-01-01Z' FROM generate_series(1, 100000) i`,
	`INSERT INTO transactions (seq, kind, account_id, channel, idempotency_key, request_hash, amount, created_at, hash)
	 SELECT s, CASE WHEN s % 10 < 7 THEN 'accrual' WHEN s % 10 < 9 THEN 'redemption' ELSE 'expiry' END,
	        lpad(to_hex((s / 10) % 100000 + 1), 64, '0'), 'bench', s::text, '', 10,
	        timestamptz '2024-01-01Z' + s * interval '1 minute', ''
	 FROM generate_series(0, 999999) s`,
	`INSERT INTO postings (seq, idx, account_id, amount)
	 SELECT seq, 0, account_id, CASE WHEN kind = 'accrual' THEN 10 ELSE -10 END FROM transactions`,
	`INSERT INTO postings (seq, idx, account_id, amount)
	 SELECT seq, 1, CASE kind WHEN 'accrual' THEN 'system:issuance' WHEN 'redemption' THEN 'system:redemptions' ELSE 'system:expired' END,
	        CASE WHEN kind = 'accrual' THEN -10 ELSE 10 END FROM transactions`,
	`INSERT INTO lots (seq, account_id, points, remaining, pending_until, expires_at, created_at)
	 SELECT seq, account_id, 10, CASE WHEN seq % 10 < 3 THEN 0 ELSE 10 END,
	        CASE WHEN seq % 10 = 6 AND seq >= 950000 THEN created_at + interval '30 days' END,
	        created_at + interval '1 year', created_at
	 FROM transactions WHERE kind = 'accrual'`,
	`INSERT INTO lot_uses (debit_seq, lot_seq, points) SELECT seq, seq - 7, 10 FROM transactions WHERE kind <> 'accrual'`,
	`UPDATE accounts a SET balance = s.balance, pending = s.pending
	 FROM (SELECT account_id, SUM(remaining) AS balance, COALESCE(SUM(remaining) FILTER (WHERE pending_until IS NOT NULL), 0) AS pending
	       FROM lots GROUP BY account_id) s
	 WHERE a.id = s.account_id`,
	`ANALYZE`,
}

// sqliteSeed is postgresSeed in SQLite's words (times in microseconds).
var sqliteSeed = []string{
	`WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < 100000)
	 INSERT INTO accounts (id, customer_hash, kind, created_at) SELECT printf('%064x', i), printf('%064x', i), 'customer', 1704067200000000 FROM g`,
	`WITH RECURSIVE g(s) AS (SELECT 0 UNION ALL SELECT s + 1 FROM g WHERE s < 999999)
	 INSERT INTO transactions (seq, kind, account_id, channel, idempotency_key, request_hash, amount, created_at, hash)
	 SELECT s, CASE WHEN s % 10 < 7 THEN 'accrual' WHEN s % 10 < 9 THEN 'redemption' ELSE 'expiry' END,
	        printf('%064x', (s / 10) % 100000 + 1), 'bench', s, '', 10, 1704067200000000 + s * 60000000, '' FROM g`,
	`INSERT INTO postings (seq, idx, account_id, amount)
	 SELECT seq, 0, account_id, CASE WHEN kind = 'accrual' THEN 10 ELSE -10 END FROM transactions`,
	`INSERT INTO postings (seq, idx, account_id, amount)
	 SELECT seq, 1, CASE kind WHEN 'accrual' THEN 'system:issuance' WHEN 'redemption' THEN 'system:redemptions' ELSE 'system:expired' END,
	        CASE WHEN kind = 'accrual' THEN -10 ELSE 10 END FROM transactions`,
	`INSERT INTO lots (seq, account_id, points, remaining, pending_until, expires_at, created_at)
	 SELECT seq, account_id, 10, CASE WHEN seq % 10 < 3 THEN 0 ELSE 10 END,
	        CASE WHEN seq % 10 = 6 AND seq >= 950000 THEN created_at + 30 * 86400000000 END,
	        created_at + 366 * 86400000000, created_at
	 FROM transactions WHERE kind = 'accrual'`,
	`INSERT INTO lot_uses (debit_seq, lot_seq, points) SELECT seq, seq - 7, 10 FROM transactions WHERE kind <> 'accrual'`,
	`UPDATE accounts SET
	   balance = (SELECT COALESCE(SUM(remaining), 0) FROM lots WHERE lots.account_id = accounts.id AND remaining > 0),
	   pending = (SELECT COALESCE(SUM(remaining), 0) FROM lots WHERE lots.account_id = accounts.id AND remaining > 0
	              AND pending_until IS NOT NULL)
	 WHERE kind = 'customer'`,
	`ANALYZE`,
}

func BenchmarkReports(b *testing.B) {
	ctx := context.Background()
	b.Run("postgres", func(b *testing.B) {
		// One connection, and no parallel workers, so that the one backend process's CPU time is the
		// database's whole share of a report (see cpuOf).
		db, err := postgres.Open(ctx, pgtest.URL(b)+"&pool_max_conns=1&max_parallel_workers_per_gather=0")
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if err := db.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		var pid int
		if err := db.Pool().QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
			b.Fatal(err)
		}
		backend = pid
		for _, q := range postgresSeed {
			if _, err := db.Pool().Exec(ctx, q); err != nil {
				b.Fatalf("%s: %v", q, err)
			}
		}
		benchReports(b, db)
	})
	b.Run("sqlite", func(b *testing.B) {
		backend = 0
		db, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "tally.db"))
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		if err := db.Migrate(ctx); err != nil {
			b.Fatal(err)
		}
		for _, q := range sqliteSeed {
			if _, err := db.SQL().Exec(q); err != nil {
				b.Fatalf("%s: %v", q, err)
			}
		}
		benchReports(b, db)
	})
}

// backend is the PostgreSQL backend process serving the benchmark (0 on SQLite, which runs in-process).
var backend int

// cpuTime is the CPU time (user and system) this process and the PostgreSQL backend have used: on a
// machine that others share, wall time per report says little, CPU time much more.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	d := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	if backend != 0 {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", backend))
		if err != nil {
			b.Fatal(err)
		}
		// Fields 14 and 15 (utime, stime) in clock ticks, after the ")" that ends the command name.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		d += time.Duration(u+s) * 10 * time.Millisecond // USER_HZ = 100 on Linux
	}
	return d
}

func benchReports(b *testing.B, store tally.Store) {
	ctx := context.Background()
	now := benchStart.Add(benchTransactions * time.Minute)
	value, _ := report.ParsePointValue("0.01", "EUR")
	for _, c := range []struct {
		name string
		make func() (report.Report, error)
	}{
		{"outstanding", func() (report.Report, error) { return report.BuildOutstanding(ctx, store, value, now) }},
		{"rollforward-month", func() (report.Report, error) {
			return report.BuildRollForward(ctx, store, report.RollForwardQuery{From: benchStart, To: now, Period: report.Month, Value: value}, now)
		}},
		{"breakage", func() (report.Report, error) { return report.BuildBreakage(ctx, store, value, now) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			cpu := cpuTime(b)
			for i := 0; i < b.N; i++ {
				r, err := c.make()
				if err != nil {
					b.Fatal(err)
				}
				if !r.Balanced() {
					b.Fatalf("%s does not reconcile", c.name)
				}
				if err := r.Write(io.Discard, report.CSV); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N)/1e6, "cpu-ms/op")
		})
	}
}
