// Package sqlite implements tally.Store on an embedded SQLite database, through the pure-Go driver
// modernc.org/sqlite.
//
// One connection writes, so that writes queue in the process rather than in SQLite's busy loop, and every
// write transaction begins IMMEDIATE, so that writers in other processes on the same file queue too. A
// pool of read-only connections serves reads, which WAL lets run beside the writer. Commits are durable
// (synchronous=FULL): a write acknowledged to a caller survives a power cut.
//
// Times are stored as INTEGER unix microseconds and read back in UTC; see tally.LedgerTime.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/tally-ledger/tally"
)

var _ tally.Store = (*DB)(nil)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// DB is a Tally store on one SQLite file. It is safe for concurrent use.
type DB struct {
	path   string
	writer *sql.DB // exactly one connection; transactions begin IMMEDIATE
	reader *sql.DB // query_only connections

	migrator *goose.Provider // on writer: applies migrations
	checker  *goose.Provider // on reader: reports pending migrations without writing

	maxAttempts int // of a write transaction that meets SQLITE_BUSY

	stmtMu      sync.Mutex
	accountStmt *sql.Stmt // the balance read, prepared once: compiling it was most of a lookup's cost
}

// config holds what tests tune; Open uses defaultConfig.
type config struct {
	busyTimeout time.Duration // how long SQLite itself waits for another process's lock
	maxAttempts int           // write attempts before Update gives up with EUNAVAILABLE
}

var defaultConfig = config{busyTimeout: 5 * time.Second, maxAttempts: 10}

// Open opens the database file at path, creating it if needed, readable by its owner only (see
// makePrivate). Call Migrate before using a new file.
func Open(ctx context.Context, path string) (*DB, error) {
	return open(ctx, path, defaultConfig)
}

func open(ctx context.Context, path string, cfg config) (_ *DB, err error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if err := makePrivate(path); err != nil {
		return nil, err
	}
	busy := "busy_timeout(" + strconv.FormatInt(cfg.busyTimeout.Milliseconds(), 10) + ")"
	db := &DB{path: path, maxAttempts: max(cfg.maxAttempts, 1)}
	defer func() {
		if err != nil {
			db.Close()
		}
	}()

	// secure_delete zeroes the space a write frees, so that an old version of a row (an account as it was
	// before a write, or before an erasure re-keyed it) does not linger in the file's free space.
	db.writer, err = sql.Open("sqlite", dsn(path, "immediate",
		busy, "journal_mode(WAL)", "synchronous(FULL)", "foreign_keys(1)", "secure_delete(1)"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.writer.SetMaxOpenConns(1)
	db.writer.SetMaxIdleConns(1)
	db.writer.SetConnMaxLifetime(0)
	db.writer.SetConnMaxIdleTime(0)
	// Connecting runs the pragmas: the file is in WAL mode before any reader opens it.
	if err := db.writer.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, storeErr(err))
	}

	db.reader, err = sql.Open("sqlite", dsn(path, "", busy, "query_only(1)"))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	db.reader.SetMaxOpenConns(readers)
	db.reader.SetMaxIdleConns(readers)
	if err := db.reader.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, storeErr(err))
	}

	migrations, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	opts := []goose.ProviderOption{goose.WithLogger(goose.NopLogger()), goose.WithDisableGlobalRegistry(true)}
	if db.migrator, err = goose.NewProvider(goose.DialectSQLite3, db.writer, migrations, opts...); err != nil {
		return nil, fmt.Errorf("sqlite: migrations: %w", err)
	}
	if db.checker, err = goose.NewProvider(goose.DialectSQLite3, db.reader, migrations, opts...); err != nil {
		return nil, fmt.Errorf("sqlite: migrations: %w", err)
	}
	return db, nil
}

// dsn builds a modernc.org/sqlite data source name: a file: URI (so that any character of the path is
// escaped) whose query carries the pragmas that every new connection runs.
func dsn(path, txlock string, pragmas ...string) string {
	q := url.Values{}
	for _, p := range pragmas {
		q.Add("_pragma", p)
	}
	if txlock != "" {
		q.Set("_txlock", txlock)
	}
	// A relative path would be read as the URI's authority: make it absolute.
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

// Path returns the path of the database file.
func (db *DB) Path() string { return db.path }

// SQL returns the read-write handle (a single connection), for tools and tests that need plain SQL.
// A statement on it waits while an Update is running, and an Update waits while rows read from it
// are open.
func (db *DB) SQL() *sql.DB { return db.writer }

// Close closes the database.
func (db *DB) Close() error {
	// The goose providers hold nothing but these handles (Provider.Close would close them).
	var errs []error
	db.stmtMu.Lock()
	if db.accountStmt != nil {
		errs = append(errs, db.accountStmt.Close())
		db.accountStmt = nil
	}
	db.stmtMu.Unlock()
	for _, h := range []*sql.DB{db.reader, db.writer} {
		if h != nil {
			errs = append(errs, h.Close())
		}
	}
	return errors.Join(errs...)
}

// Ping checks that the database file answers a query.
func (db *DB) Ping(ctx context.Context) error {
	var one int
	if err := db.reader.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return storeErr(err)
	}
	return nil
}

// Migrate applies every embedded migration not applied yet, each in its own transaction.
func (db *DB) Migrate(ctx context.Context) error {
	if _, err := db.migrator.Up(ctx); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", storeErr(err))
	}
	return nil
}

// MigrationsCurrent reports whether every embedded migration is applied. It never writes: a file that
// goose has never touched is simply not current.
func (db *DB) MigrationsCurrent(ctx context.Context) (bool, error) {
	var n int
	err := db.reader.QueryRowContext(ctx,
		`SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, goose.DefaultTablename).Scan(&n)
	if err != nil {
		return false, storeErr(err)
	}
	if n == 0 {
		return false, nil
	}
	pending, err := db.checker.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("sqlite: migration status: %w", storeErr(err))
	}
	return !pending, nil
}
