package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"strings"

	"github.com/tally-ledger/tally"
)

// customerHasher builds the hasher from TALLY_CUSTOMER_SECRET. On the embedded store without one, it
// generates a secret on first start and keeps it beside the database file (mode 0600), because losing it
// would orphan every account: the same customer would hash to a new account.
func customerHasher(store *openedStore, log *slog.Logger) (*tally.CustomerHasher, error) {
	if v := os.Getenv("TALLY_CUSTOMER_SECRET"); v != "" {
		h, err := tally.NewCustomerHasher([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("TALLY_CUSTOMER_SECRET: %w", err)
		}
		return h, nil
	}
	if store.kind != "sqlite" {
		return nil, errors.New("TALLY_CUSTOMER_SECRET is required with PostgreSQL: set it to a random string of at least 16 bytes and keep it safe")
	}
	path := store.sqlitePath + ".secret"
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		secret := strings.TrimSpace(string(b))
		h, err := tally.NewCustomerHasher([]byte(secret))
		if err != nil {
			return nil, fmt.Errorf("customer secret in %s: %w", path, err)
		}
		log.Info("customer secret loaded", "path", path)
		return h, nil
	case errors.Is(err, fs.ErrNotExist):
		raw := make([]byte, 32)
		if _, err := rand.Read(raw); err != nil {
			return nil, err
		}
		secret := hex.EncodeToString(raw)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("keep the customer secret: %w", err)
		}
		if _, err := f.WriteString(secret + "\n"); err != nil {
			f.Close()
			return nil, fmt.Errorf("keep the customer secret: %w", err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return nil, fmt.Errorf("keep the customer secret: %w", err)
		}
		if err := f.Close(); err != nil {
			return nil, err
		}
		log.Warn("generated a customer secret and kept it beside the database; back it up with the database, or set TALLY_CUSTOMER_SECRET", "path", path)
		return tally.NewCustomerHasher([]byte(secret))
	default:
		return nil, fmt.Errorf("read the customer secret: %w", err)
	}
}
