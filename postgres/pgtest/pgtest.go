// Package pgtest gives each test its own PostgreSQL schema, so that tests run in parallel on one
// database. The database comes from TALLY_TEST_DATABASE_URL; without one (or when it cannot be reached)
// tests skip, except in CI (CI=true), where they fail.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-ledger/tally/postgres"
)

// EnvURL names the environment variable holding the test database URL, e.g.
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable.
const EnvURL = "TALLY_TEST_DATABASE_URL"

// URL creates a fresh schema t_<random hex>, drops it when the test ends, and returns the database URL
// with search_path set to it.
func URL(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(EnvURL)
	if base == "" {
		unavailable(tb, EnvURL+" is not set")
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("pgtest: %s is not a URL: %v", EnvURL, err)
	}

	var b [8]byte
	_, _ = rand.Read(b[:])
	schema := "t_" + hex.EncodeToString(b[:])
	if err := exec(base, `CREATE SCHEMA `+schema); err != nil {
		unavailable(tb, "cannot create a schema in the test database: "+err.Error())
	}
	tb.Cleanup(func() {
		if err := exec(base, `DROP SCHEMA `+schema+` CASCADE`); err != nil {
			tb.Errorf("pgtest: drop schema %s: %v", schema, err)
		}
	})

	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// Open returns a migrated DB on a fresh schema, closed when the test ends. Its pool holds at most
// eight connections unless the URL says otherwise, so that parallel tests stay under the server's
// max_connections.
func Open(tb testing.TB) *postgres.DB {
	tb.Helper()
	ctx := context.Background()
	u, err := url.Parse(URL(tb))
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	if q := u.Query(); !q.Has("pool_max_conns") {
		q.Set("pool_max_conns", "8")
		u.RawQuery = q.Encode()
	}
	db, err := postgres.Open(ctx, u.String())
	if err != nil {
		tb.Fatalf("pgtest: open: %v", err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	if err := db.Migrate(ctx); err != nil {
		tb.Fatalf("pgtest: migrate: %v", err)
	}
	return db
}

// Replicas returns n DBs on one fresh, migrated schema, each with its own pool of at most four
// connections: the stores of n replicas sharing one database.
func Replicas(tb testing.TB, n int) []*postgres.DB {
	tb.Helper()
	ctx := context.Background()
	u, err := url.Parse(URL(tb))
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "4")
	u.RawQuery = q.Encode()
	dbs := make([]*postgres.DB, n)
	for i := range dbs {
		db, err := postgres.Open(ctx, u.String())
		if err != nil {
			tb.Fatalf("pgtest: open: %v", err)
		}
		tb.Cleanup(func() { _ = db.Close() })
		dbs[i] = db
	}
	if err := dbs[0].Migrate(ctx); err != nil {
		tb.Fatalf("pgtest: migrate: %v", err)
	}
	return dbs
}

// exec runs one statement on a short-lived connection. Pool parameters (pool_*), which a plain
// connection would send to the server as unknown settings, are left out.
func exec(dbURL, sql string) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return err
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, u.String())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// unavailable fails the test in CI and skips it elsewhere.
func unavailable(tb testing.TB, why string) {
	tb.Helper()
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		tb.Fatalf("pgtest: PostgreSQL tests must run in CI: %s (set %s)", why, EnvURL)
	}
	tb.Skipf("pgtest: skipping PostgreSQL test: %s (set %s to run it)", why, EnvURL)
}
