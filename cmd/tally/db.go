package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/sqlite"
)

// defaultDatabaseURL is the embedded store in the working directory, so that a first run needs nothing.
const defaultDatabaseURL = "sqlite:tally.db"

// dbFlag registers --db with its environment fallback.
func dbFlag(fs *flag.FlagSet) *string {
	def := os.Getenv("TALLY_DATABASE_URL")
	if def == "" {
		def = defaultDatabaseURL
	}
	return fs.String("db", def, "database URL: sqlite:PATH or postgres://... (env TALLY_DATABASE_URL)")
}

// openedStore is a store with what its kind needs to know.
type openedStore struct {
	tally.Store
	creds      tally.CredentialStore
	migrate    func(context.Context) error
	kind       string // "sqlite" or "postgres"
	sqlitePath string
}

// openStore opens the store a database URL names, without migrating it.
func openStore(ctx context.Context, url string) (*openedStore, error) {
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		path := strings.TrimPrefix(url, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return nil, fmt.Errorf("database URL %q names no file: expected sqlite:PATH", url)
		}
		db, err := sqlite.Open(ctx, path)
		if err != nil {
			return nil, fmt.Errorf("open %s: %w", url, err)
		}
		return &openedStore{Store: db, creds: db, migrate: db.Migrate, kind: "sqlite", sqlitePath: path}, nil
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		db, err := postgres.Open(ctx, url)
		if err != nil {
			return nil, fmt.Errorf("open PostgreSQL: %w", err)
		}
		return &openedStore{Store: db, creds: db, migrate: db.Migrate, kind: "postgres"}, nil
	}
	return nil, fmt.Errorf("unsupported database URL %q: expected sqlite:PATH or postgres://USER@HOST:PORT/DB", redact(url))
}

// openExisting is openStore for commands that only read: an embedded database that does not exist is
// an error (a mistyped path), not a new empty file.
func openExisting(ctx context.Context, url string) (*openedStore, error) {
	if err := mustExist(url); err != nil {
		return nil, err
	}
	return openStore(ctx, url)
}

// openExistingMigrated is openMigrated for commands that only read or change what is there: an embedded
// database that does not exist is a mistyped path, not a new empty file.
func openExistingMigrated(ctx context.Context, url string) (*openedStore, error) {
	if err := mustExist(url); err != nil {
		return nil, err
	}
	return openMigrated(ctx, url)
}

// openCurrent is openExisting for commands that audit: they read the ledger as it is, so they do not
// migrate it, and a schema that is not current is an error rather than something to read wrongly.
func openCurrent(ctx context.Context, url string) (*openedStore, error) {
	s, err := openExisting(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := requireCurrentSchema(ctx, s); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// requireCurrentSchema refuses a database whose migrations are not all applied.
func requireCurrentSchema(ctx context.Context, s *openedStore) error {
	if ok, err := s.MigrationsCurrent(ctx); err != nil {
		return err
	} else if !ok {
		return errors.New("the database schema is not current: run 'tally migrate' first")
	}
	return nil
}

// mustExist refuses an embedded database URL whose file does not exist.
func mustExist(url string) error {
	if path, ok := strings.CutPrefix(url, "sqlite:"); ok {
		path = strings.TrimPrefix(path, "//")
		if _, err := os.Stat(path); path != "" && errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no database at %s: check --db (or TALLY_DATABASE_URL); tally migrate (or tally serve) creates one", path)
		}
	}
	return nil
}

// openMigrated opens the store and applies pending migrations.
func openMigrated(ctx context.Context, url string) (*openedStore, error) {
	s, err := openStore(ctx, url)
	if err != nil {
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("migrate: %w", err)
	}
	return s, nil
}

// redact hides a password in a URL before it is shown.
func redact(url string) string {
	at := strings.LastIndex(url, "@")
	scheme := strings.Index(url, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return url
	}
	userinfo := url[scheme+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		return url[:scheme+3] + userinfo[:i] + ":xxxxx" + url[at:]
	}
	return url
}
