package main

import (
	"context"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/postgres/pgtest"
)

// TestServeAnalyzesGrownTables: serve on a new PostgreSQL schema gives a table that grew its planner
// statistics by itself, so that a new deployment does not keep plans made for empty tables
// (postgres/analyze.go). The wait is generous: serve looks every second.
func TestServeAnalyzesGrownTables(t *testing.T) {
	ctx := context.Background()
	dbURL := pgtest.URL(t)
	t.Setenv("TALLY_CUSTOMER_SECRET", "statistics-test-customer-secret-0123456789")
	t.Setenv("TALLY_LEDGER_KEY", tally.GenerateLedgerKey())
	startServe(t, "--db", dbURL)

	db, err := postgres.Open(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Pool().Exec(ctx, `
		INSERT INTO accounts (id, customer_hash, kind, created_at)
		SELECT 'grown-' || g, 'grown-' || g, 'customer', now() FROM generate_series(1, 20000) AS g`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pages int64
		if err := db.Pool().QueryRow(ctx, `SELECT relpages FROM pg_class WHERE oid = 'accounts'::regclass`).Scan(&pages); err != nil {
			t.Fatal(err)
		}
		if pages > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("serve had not analyzed accounts 30 s after it grew to 20,000 rows")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
