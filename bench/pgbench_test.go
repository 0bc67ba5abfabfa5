package bench

import (
	"slices"
	"testing"
	"time"
)

// pgbench 15's summary, as printed at the end of a -T run.
const pgbench15 = `pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: /tmp/tally-pgbench-1/accrual.sql
scaling factor: 1
query mode: prepared
number of clients: 16
number of threads: 2
maximum number of tries: 1
duration: 10 s
number of transactions actually processed: 37410
number of failed transactions: 3 (0.008%)
latency average = 4.277 ms
initial connection time = 21.345 ms
tps = 3741.123456 (without initial connection time)
`

func TestParsePgbench(t *testing.T) {
	r, err := ParsePgbench(pgbench15)
	if err != nil {
		t.Fatal(err)
	}
	want := PgbenchRun{TPS: 3741.123456, Transactions: 37410, Failed: 3, LatencyAvg: 4277 * time.Microsecond}
	if r != want {
		t.Errorf("got %+v, want %+v", r, want)
	}
}

func TestParsePgbenchWithoutTPS(t *testing.T) {
	if _, err := ParsePgbench("pgbench: error: connection to server failed\n"); err == nil {
		t.Error("no error for output without a tps line")
	}
}

func TestPgbenchArgs(t *testing.T) {
	args, env, err := pgbenchArgs("postgres://bench:pw@127.0.0.1:5433/tally?sslmode=disable", "bench_x")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"-h", "127.0.0.1", "-p", "5433", "-U", "bench", "-d", "tally"}; !slices.Equal(args, want) {
		t.Errorf("args %q, want %q", args, want)
	}
	if want := []string{"PGPASSWORD=pw", "PGSSLMODE=disable", "PGOPTIONS=-c search_path=bench_x"}; !slices.Equal(env, want) {
		t.Errorf("env %q, want %q", env, want)
	}
}
