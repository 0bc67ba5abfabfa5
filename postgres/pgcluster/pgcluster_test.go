package pgcluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-ledger/tally/postgres/pgcluster"
)

// TestFailover kills the primary of a synchronous pair and promotes the standby: a row committed on the
// primary before the kill is on the new primary, and the multi-host URL reaches it.
func TestFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := pgcluster.New(t, pgcluster.Options{Standby: true})
	if err := c.Primary.Exec(ctx, `CREATE TABLE t (v int); INSERT INTO t VALUES (42)`); err != nil {
		t.Fatal(err)
	}
	if err := c.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := c.Standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, `INSERT INTO t VALUES (43) RETURNING (SELECT sum(v) FROM t)`).Scan(&v); err != nil || v != 42 {
		t.Fatalf("after failover: %d %v", v, err)
	}
}

// TestKillRestart kills a lone primary and starts it again: what was committed survives crash recovery.
func TestKillRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := pgcluster.New(t, pgcluster.Options{})
	if err := c.Primary.Exec(ctx, `CREATE TABLE t (v int); INSERT INTO t VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	if err := c.Primary.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, c.Primary.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v int
	if err := conn.QueryRow(ctx, `SELECT sum(v) FROM t`).Scan(&v); err != nil || v != 7 {
		t.Fatalf("after restart: %d %v", v, err)
	}
}
