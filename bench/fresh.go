package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Fresh is an empty database made for one run: a temporary SQLite file, or a new schema in a
// PostgreSQL database.
type Fresh struct {
	URL  string // the database URL to open (PostgreSQL: with search_path set to the schema)
	Kind string // "sqlite" or "postgres"

	Schema string // PostgreSQL only
	base   string
	dir    string
}

// NewFresh makes an empty database beside the one baseURL names: for sqlite:PATH a file in a new
// temporary directory (PATH itself is not touched), for postgres:// a schema bench_<random hex>.
func NewFresh(ctx context.Context, baseURL string) (*Fresh, error) {
	switch {
	case strings.HasPrefix(baseURL, "sqlite:"):
		dir, err := os.MkdirTemp("", "tally-bench-")
		if err != nil {
			return nil, fmt.Errorf("temporary directory: %w", err)
		}
		return &Fresh{URL: "sqlite:" + filepath.Join(dir, "bench.db"), Kind: "sqlite", dir: dir}, nil
	case strings.HasPrefix(baseURL, "postgres://"), strings.HasPrefix(baseURL, "postgresql://"):
		var b [6]byte
		_, _ = rand.Read(b[:])
		schema := "bench_" + hex.EncodeToString(b[:])
		if err := pgExec(ctx, baseURL, "CREATE SCHEMA "+schema); err != nil {
			return nil, fmt.Errorf("create schema %s: %w", schema, err)
		}
		u, err := url.Parse(baseURL)
		if err != nil {
			return nil, err
		}
		q := u.Query()
		q.Set("search_path", schema)
		u.RawQuery = q.Encode()
		return &Fresh{URL: u.String(), Kind: "postgres", Schema: schema, base: baseURL}, nil
	}
	return nil, fmt.Errorf("unsupported database URL: expected sqlite:PATH or postgres://USER@HOST:PORT/DB")
}

// Drop removes the database.
func (f *Fresh) Drop(ctx context.Context) error {
	if f.Kind == "sqlite" {
		return os.RemoveAll(f.dir)
	}
	if err := pgExec(ctx, f.base, "DROP SCHEMA "+f.Schema+" CASCADE"); err != nil {
		return fmt.Errorf("drop schema %s: %w", f.Schema, err)
	}
	return nil
}

// pgExec runs statements on one short-lived connection. Pool parameters (pool_*), which a plain
// connection would send to the server as unknown settings, are left out of the URL.
func pgExec(ctx context.Context, dbURL string, statements ...string) error {
	conn, err := pgx.Connect(ctx, plainURL(dbURL))
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range statements {
		if _, err := conn.Exec(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

func plainURL(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return dbURL
	}
	q := u.Query()
	for k := range q {
		if strings.HasPrefix(k, "pool_") {
			q.Del(k)
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}
