package postgres

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
)

// Plans on a database that is still growing.
//
// pgx prepares every statement once per connection, and PostgreSQL gives a prepared statement a generic
// plan after five executions. A generic plan made while a table was empty (or analyzed while small)
// reads the table whole and joins it by hashing, and PostgreSQL keeps that plan until the table's
// statistics change. A fresh deployment under load therefore scanned tables of tens of thousands of rows
// in every batch until autovacuum analyzed them, if it runs at all: 4 times the PostgreSQL CPU per event
// of an analyzed database, and a third of pgbench's rate (BENCHMARKS.md). ANALYZE right after the
// migrations makes it worse: statistics of empty tables turn even the primary-key lookups into
// sequential scans. Forcing custom plans (plan_cache_mode) fixes the plans but plans every execution
// again: 40-60% more PostgreSQL CPU per event than generic plans on an analyzed database.
//
// So the server analyzes each of its tables whenever it has doubled in size since its last analysis.
// That is often while the database is young and rarely afterwards (about twenty times between 8 pages
// and 100 GB), and a cached plan never serves a table more than about twice the size it was made for.

// analyzeMinPages is the size below which a table is left alone. The planner assumes 10 pages for a table
// that was never analyzed; analyzing a smaller one would only replace that assumption with a smaller
// figure, and a sequential scan of a few pages costs about what an index scan does.
const analyzeMinPages = 8

// StatisticsInterval is how often a server looks for tables that doubled since their last ANALYZE. At a
// few thousand writes a second a fresh table doubles about that often; the look costs a catalog query.
const StatisticsInterval = time.Second

// AnalyzeGrown runs ANALYZE on each table of the current schema that has doubled in size (in pages)
// since its last analysis, or that was never analyzed and has reached analyzeMinPages. Tables the
// connection's role does not own are skipped: PostgreSQL would refuse to analyze them. It returns the
// tables it analyzed.
func (db *DB) AnalyzeGrown(ctx context.Context) ([]string, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT n.nspname, c.relname
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind = 'r' AND pg_has_role(c.relowner, 'USAGE')
			AND pg_relation_size(c.oid) / current_setting('block_size')::int >= GREATEST(2 * c.relpages, $1)
		ORDER BY c.relname`,
		analyzeMinPages)
	if err != nil {
		return nil, classify(ctx, "analyze", err)
	}
	tables, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (pgx.Identifier, error) {
		var schema, name string
		err := row.Scan(&schema, &name)
		return pgx.Identifier{schema, name}, err
	})
	if err != nil {
		return nil, classify(ctx, "analyze", err)
	}
	var done []string
	for _, t := range tables {
		if _, err := db.pool.Exec(ctx, "ANALYZE "+t.Sanitize()); err != nil {
			return done, classify(ctx, "analyze", err)
		}
		done = append(done, t[1])
	}
	return done, nil
}

// KeepStatistics calls AnalyzeGrown every interval until ctx is done. A failed round is logged and
// tried again at the next tick: stale statistics slow the server down but never make it wrong.
func (db *DB) KeepStatistics(ctx context.Context, every time.Duration, log *slog.Logger) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		tables, err := db.AnalyzeGrown(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			log.Warn("refreshing planner statistics", "err", err)
		} else if len(tables) > 0 {
			log.Info("planner statistics refreshed", "tables", tables)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
