package postgres_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/postgres/pgtest"
)

// growAccounts adds n customer accounts in one statement, as a busy first minute would.
func growAccounts(tb testing.TB, db *postgres.DB, from, n int) {
	tb.Helper()
	mustExec(tb, db, `
		INSERT INTO accounts (id, customer_hash, kind, created_at)
		SELECT 'grown-' || g, 'grown-' || g, 'customer', now() FROM generate_series($1::int, $2::int) AS g`,
		from, from+n-1)
}

// unanalyzedGrowth lists the tables of the schema whose size doubled since their last analysis (or that
// were never analyzed and reached 8 pages): the ones whose cached plans may be stale.
func unanalyzedGrowth(tb testing.TB, db *postgres.DB) []string {
	tb.Helper()
	rows, err := db.Pool().Query(context.Background(), `
		SELECT c.relname FROM pg_class c
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
			AND pg_relation_size(c.oid) / current_setting('block_size')::int >= GREATEST(2 * c.relpages, 8)
		ORDER BY c.relname`)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			tb.Fatal(err)
		}
		out = append(out, name)
	}
	if err := rows.Err(); err != nil {
		tb.Fatal(err)
	}
	return out
}

func TestAnalyzeGrownFollowsDoubling(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)

	// Freshly migrated: nothing is big enough to be worth statistics.
	if got, err := db.AnalyzeGrown(ctx); err != nil || len(got) != 0 {
		t.Fatalf("fresh schema: analyzed %v (%v), want nothing", got, err)
	}
	growAccounts(t, db, 1, 20000)
	analyzeAll(t, db)
	// Not doubled since: nothing to do.
	if got, err := db.AnalyzeGrown(ctx); err != nil || len(got) != 0 {
		t.Fatalf("second call: analyzed %v (%v), want nothing", got, err)
	}
	growAccounts(t, db, 20001, 30000)
	analyzeAll(t, db)
}

// analyzeAll calls AnalyzeGrown and checks that no table is left with statistics for less than half
// its size. (Autovacuum may have analyzed some table first, so the tables it names are not checked.)
func analyzeAll(tb testing.TB, db *postgres.DB) {
	tb.Helper()
	if _, err := db.AnalyzeGrown(context.Background()); err != nil {
		tb.Fatal(err)
	}
	if stale := unanalyzedGrowth(tb, db); len(stale) != 0 {
		tb.Fatalf("after AnalyzeGrown these tables still lack statistics for their size: %v", stale)
	}
}

// TestAnalyzeGrownReplansCachedStatements is the fresh-deployment case: the ledger's statements are
// prepared (pgx caches them per connection) and planned while the tables are empty, the tables then grow,
// and AnalyzeGrown must make PostgreSQL drop those plans for ones that use the indexes. Generic plans are
// forced so that the plans are the ones PostgreSQL would cache after five executions.
func TestAnalyzeGrownReplansCachedStatements(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, err := url.Parse(pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("pool_max_conns", "1") // every statement on one connection, whose plans the test inspects
	q.Set("plan_cache_mode", "force_generic_plan")
	u.RawQuery = q.Encode()
	db, err := postgres.Open(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	// The first writes, on empty tables, prepare and plan the ledger's statements.
	mustAccrue(t, db, accrual{channel: "api", key: "k1", account: customer(1), amount: 5}, accrual{channel: "api", key: "k2", account: customer(2), amount: 5})
	growAccounts(t, db, 1, 20000)
	mustExec(t, db, `
		INSERT INTO processed_events (channel, event_id, request_hash, state, created_at)
		SELECT 'grown', 'e-' || g, 'h', 'done', now() FROM generate_series(1, 20000) AS g`)
	analyzeAll(t, db)

	conn, err := db.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	plans := []struct {
		name, like, args, table string
	}{
		{"lock accounts", `%FROM accounts%FOR UPDATE%`, `(ARRAY['grown-1', 'grown-2'])`, "accounts"},
		{"update accounts", `%UPDATE accounts a%FROM unnest%`, `(ARRAY['grown-1'], ARRAY[1::bigint], ARRAY[1::bigint], ARRAY[''], ARRAY['active'], ARRAY[0::bigint], ARRAY[0::bigint], ARRAY[0::bigint], ARRAY[NULL::timestamptz])`, "accounts"},
		{"save outcomes", `%UPDATE processed_events p%FROM unnest%`, `(ARRAY['grown'], ARRAY['e-1'], ARRAY['x'], ARRAY[0::bigint], ARRAY[''::bytea])`, "processed_events"},
	}
	for _, p := range plans {
		var stmt string
		if err := conn.QueryRow(ctx, `SELECT name FROM pg_prepared_statements WHERE statement LIKE $1`, p.like).Scan(&stmt); err != nil {
			t.Fatalf("%s: the prepared statement was not found on the connection: %v", p.name, err)
		}
		rows, err := conn.Query(ctx, `EXPLAIN EXECUTE `+stmt+p.args)
		if err != nil {
			t.Fatalf("%s: explain: %v", p.name, err)
		}
		var plan []string
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, line)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: explain: %v", p.name, err)
		}
		if text := strings.Join(plan, "\n"); strings.Contains(text, "Seq Scan on "+p.table) {
			t.Errorf("%s: the cached plan still scans %s of 20,000 rows whole:\n%s", p.name, p.table, text)
		}
	}
}
