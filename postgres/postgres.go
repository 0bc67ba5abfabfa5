// Package postgres implements tally.Store on PostgreSQL with pgx and a connection pool.
//
// Every write method does its work in one statement or one pipelined round trip whatever the size of
// the batch (arrays through unnest and ANY), because the ledger group-commits hundreds of operations in
// one Update call.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"hash/fnv"
	"io/fs"
	"net/url"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/tally-ledger/tally"
)

var _ tally.Store = (*DB)(nil)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Pool defaults, used unless the URL says otherwise. PostgreSQL on a small machine peaks near eight
// concurrent transactions (see PERFORMANCE.md); a few more connections cover readers.
const (
	defaultMaxConns       = 16
	defaultConnectTimeout = 5 * time.Second
)

// DB is a tally.Store on a PostgreSQL database.
type DB struct {
	pool  *pgxpool.Pool
	sqlDB *sql.DB // over pool, for goose
	// unlockedAccounts makes LockAccounts read without locking. Only tests set it (export_test.go), to
	// show that the linearizability checks notice a ledger without its account lock.
	unlockedAccounts bool
}

// Open returns a DB for a postgres:// or postgresql:// URL. Parameters that pgxpool knows
// (pool_max_conns, ...) configure the pool; other unknown ones, such as search_path, are sent to the
// server as run-time parameters. Open does not connect: the first operation does, and Ping checks.
func Open(ctx context.Context, rawURL string) (*DB, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, tally.Errorf(tally.EINVALID, "database URL must start with postgres:// or postgresql://")
	}
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, tally.Errorf(tally.EINVALID, "invalid database URL: %v", err)
	}
	if !u.Query().Has("pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = defaultConnectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, classify(ctx, "open", err)
	}
	return &DB{pool: pool, sqlDB: stdlib.OpenDBFromPool(pool)}, nil
}

// Pool returns the connection pool, for tests and tools that need plain SQL.
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// Close closes every connection.
func (db *DB) Close() error {
	err := db.sqlDB.Close()
	db.pool.Close()
	return err
}

// Ping checks that the database answers.
func (db *DB) Ping(ctx context.Context) error {
	return classify(ctx, "ping", db.pool.Ping(ctx))
}

// Migrate applies every embedded migration that the database lacks. The goose version table and the
// ledger tables land in the first schema of the connection's search_path. Concurrent Migrate calls on
// one schema (replicas starting together) are serialized by an advisory lock keyed by the schema.
func (db *DB) Migrate(ctx context.Context) error {
	schema, err := db.currentSchema(ctx)
	if err != nil {
		return err
	}
	h := fnv.New64a()
	h.Write([]byte("tally-migrate\x00" + schema))
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(h.Sum64())),
		lock.WithLockTimeout(1, 300), // probe every second, for five minutes
	)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	p, err := db.migrations(goose.WithSessionLocker(locker))
	if err != nil {
		return err
	}
	if _, err := p.Up(ctx); err != nil {
		return classify(ctx, "migrate", err)
	}
	return nil
}

// MigrationsCurrent reports whether every embedded migration is applied. Unlike goose's HasPending it
// never writes (goose would create its version table).
func (db *DB) MigrationsCurrent(ctx context.Context) (bool, error) {
	p, err := db.migrations()
	if err != nil {
		return false, err
	}
	var exists bool
	if err := db.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, goose.DefaultTablename).Scan(&exists); err != nil {
		return false, classify(ctx, "migrations current", err)
	}
	if !exists {
		return false, nil
	}
	// goose deletes the row of a migration it rolls back, so is_applied rows are the applied set.
	rows, err := db.pool.Query(ctx, `SELECT DISTINCT version_id FROM `+goose.DefaultTablename+` WHERE is_applied`)
	if err != nil {
		return false, classify(ctx, "migrations current", err)
	}
	defer rows.Close()
	applied := make(map[int64]bool)
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			return false, classify(ctx, "migrations current", err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return false, classify(ctx, "migrations current", err)
	}
	for _, s := range p.ListSources() {
		if !applied[s.Version] {
			return false, nil
		}
	}
	return true, nil
}

func (db *DB) migrations(opts ...goose.ProviderOption) (*goose.Provider, error) {
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db.sqlDB, fsys, opts...)
	if err != nil {
		return nil, fmt.Errorf("postgres: migrations: %w", err)
	}
	return p, nil
}

// currentSchema returns the schema that unqualified CREATE statements use: the first schema of the
// search_path that exists.
func (db *DB) currentSchema(ctx context.Context) (string, error) {
	var schema *string
	if err := db.pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return "", classify(ctx, "migrate", err)
	}
	if schema == nil || strings.TrimSpace(*schema) == "" {
		return "", tally.Errorf(tally.EINVALID, "no schema of the search_path exists; create it before migrating")
	}
	return *schema, nil
}
