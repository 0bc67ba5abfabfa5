package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/postgres/pgcluster"
)

// openCluster opens and migrates a DB on the cluster's multi-host URL.
func openCluster(t *testing.T, c *pgcluster.Cluster) *postgres.DB {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := postgres.Open(ctx, c.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return db
}

// accrueUntil writes one accrual, retrying EUNAVAILABLE (the answer while the database is away) with
// the same key until ctx ends.
func accrueUntil(ctx context.Context, l *ledger.Service, key string, amount int64) (ledger.Receipt, error) {
	for {
		rc, err := l.Accrue(ctx, ledger.Request{Channel: "failover", Key: key, Account: customer(1), Amount: amount})
		if tally.ErrorCode(err) != tally.EUNAVAILABLE || ctx.Err() != nil {
			return rc, err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestFailoverMultiHostURL writes through a multi-host URL (target_session_attrs=read-write), kills the
// primary with SIGKILL and promotes the synchronous standby: the pool finds the new primary by itself,
// and what was committed before the kill is there.
func TestFailoverMultiHostURL(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := pgcluster.New(t, pgcluster.Options{Standby: true})
	db := openCluster(t, c)
	l := ledger.New(db, ledger.Options{Key: testKey})
	defer l.Close()
	if _, err := ledger.OpenChain(ctx, db, testKey); err != nil {
		t.Fatal(err)
	}
	if _, err := accrueUntil(ctx, l, "before", 100); err != nil {
		t.Fatal(err)
	}
	if err := c.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Accrue(ctx, ledger.Request{Channel: "failover", Key: "during", Account: customer(1), Amount: 1}); tally.ErrorCode(err) != tally.EUNAVAILABLE {
		t.Fatalf("a write with no primary: %v, want EUNAVAILABLE", err)
	}
	if err := c.Standby.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err := accrueUntil(ctx, l, "after", 10)
	if err != nil {
		t.Fatalf("after the failover: %v", err)
	}
	if rc.Balance != 110 {
		t.Fatalf("balance after the failover = %d, want 110 (the accrual committed before the kill is lost?)", rc.Balance)
	}
	if rep, err := ledger.Verify(ctx, db.Audit(), ledger.VerifyOptions{Key: testKey}); err != nil || rep.Transactions != 2 {
		t.Fatalf("verify on the new primary: %+v %v", rep, err)
	}
}

// TestWriteOnReadOnlyServer: a write that meets a server turned read-only (a demoted primary) is
// EUNAVAILABLE, not an internal error, and the pool is emptied so that the next write connects afresh.
func TestWriteOnReadOnlyServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := pgcluster.New(t, pgcluster.Options{})
	db := openCluster(t, c)
	l := ledger.New(db, ledger.Options{Key: testKey})
	defer l.Close()
	if _, err := ledger.OpenChain(ctx, db, testKey); err != nil {
		t.Fatal(err)
	}
	if _, err := accrueUntil(ctx, l, "before", 100); err != nil {
		t.Fatal(err)
	}
	// The pooled connections stay open while the server turns read-only under them.
	if err := c.Primary.Exec(ctx, `ALTER SYSTEM SET default_transaction_read_only = on`); err != nil {
		t.Fatal(err)
	}
	if err := c.Primary.Exec(ctx, `SELECT pg_reload_conf()`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // backends apply a reload between statements
	_, err := l.Accrue(ctx, ledger.Request{Channel: "failover", Key: "read-only", Account: customer(1), Amount: 1})
	wantCode(t, err, tally.EUNAVAILABLE)
	if n := db.Pool().Stat().IdleConns(); n != 0 {
		t.Fatalf("%d idle connections to the read-only server are left in the pool", n)
	}
}

// TestReplayLag: a primary and a caught-up standby lag by nothing; a standby whose replay is paused
// behind what it received lags by the age of its last replayed transaction; a standby that lost its
// primary cannot tell (EUNAVAILABLE).
func TestReplayLag(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := pgcluster.New(t, pgcluster.Options{Standby: true})
	primary := openCluster(t, c)
	standby, err := postgres.Open(ctx, c.Standby.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer standby.Close()
	lag := func(db *postgres.DB) time.Duration {
		t.Helper()
		d, err := db.ReplayLag(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if d := lag(primary); d != 0 {
		t.Fatalf("a primary lags by %s", d)
	}
	mustExec(t, primary, `CREATE TABLE lag_probe (v int)`)
	mustExec(t, primary, `INSERT INTO lag_probe VALUES (1)`)
	for lag(standby) != 0 {
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.Standby.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	mustExec(t, primary, `INSERT INTO lag_probe VALUES (2)`) // received (synchronous), not replayed
	if d := lag(standby); d < 300*time.Millisecond {
		t.Fatalf("a standby paused 300 ms behind lags by %s", d)
	}
	if err := c.Standby.Exec(ctx, `SELECT pg_wal_replay_resume()`); err != nil {
		t.Fatal(err)
	}
	if err := c.Primary.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := standby.ReplayLag(ctx)
		if tally.ErrorCode(err) == tally.EUNAVAILABLE {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a standby without its primary: %v, want EUNAVAILABLE", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
