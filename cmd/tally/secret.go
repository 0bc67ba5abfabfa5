package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strings"

	"github.com/tally-ledger/tally"
)

// customerHasher builds the hasher from TALLY_CUSTOMER_SECRET. On the embedded store without one, it
// generates a secret on first start and keeps it beside the database file (mode 0600), because losing it
// would orphan every account: the same customer would hash to a new account.
func customerHasher(store *openedStore, log *slog.Logger) (*tally.CustomerHasher, error) {
	secret, err := outsideSecret(store, log, outsideSecretSpec{
		env: "TALLY_CUSTOMER_SECRET", suffix: ".secret", what: "customer secret",
		generate:   func() string { return randomHex(32) },
		pgRequired: "TALLY_CUSTOMER_SECRET is required with PostgreSQL: set it to a random string of at least 16 bytes and keep it safe",
		// Every account is a customer hashed with it: a new secret would orphan them all.
		inUse: func() (bool, error) { return holdsTransactions(store) },
	})
	if err != nil {
		return nil, err
	}
	return newCustomerHasher(secret)
}

// existingCustomerHasher is customerHasher for commands that look customers up or write for them: a
// missing secret is an error, never a new one, which would hash every customer to an account that is
// not there.
func existingCustomerHasher(store *openedStore) (*tally.CustomerHasher, error) {
	secret, err := outsideSecret(store, nil, outsideSecretSpec{
		env: "TALLY_CUSTOMER_SECRET", suffix: ".secret", what: "customer secret", mustExist: true,
		pgRequired: "TALLY_CUSTOMER_SECRET is required with PostgreSQL: the secret serve hashes customer ids with",
	})
	if err != nil {
		return nil, err
	}
	return newCustomerHasher(secret)
}

func newCustomerHasher(secret string) (*tally.CustomerHasher, error) {
	h, err := tally.NewCustomerHasher([]byte(secret))
	if err != nil {
		return nil, fmt.Errorf("customer secret: %w", err)
	}
	return h, nil
}

// ledgerKey loads the key kept outside the database (tally.LedgerKey) from TALLY_LEDGER_KEY. On the
// embedded store without one, it generates a key on first start and keeps it beside the database file
// (mode 0600): back it up with the database, and apart from it.
func ledgerKey(store *openedStore, log *slog.Logger) (*tally.LedgerKey, error) {
	return loadLedgerKey(store, log, true)
}

// existingLedgerKey is ledgerKey for commands that audit: a missing key is an error, never a new one.
func existingLedgerKey(store *openedStore) (*tally.LedgerKey, error) {
	return loadLedgerKey(store, nil, false)
}

func loadLedgerKey(store *openedStore, log *slog.Logger, create bool) (*tally.LedgerKey, error) {
	secret, err := outsideSecret(store, log, outsideSecretSpec{
		env: "TALLY_LEDGER_KEY", suffix: ".key", what: "ledger key",
		generate:   tally.GenerateLedgerKey,
		mustExist:  !create,
		pgRequired: "TALLY_LEDGER_KEY is required with PostgreSQL: create one with 'tally keygen' and keep it outside the database",
		// A sealed ledger's chains are keyed with its key: a new one would fail every check.
		inUse: func() (bool, error) { return sealedOrWritten(store) },
	})
	if err != nil {
		return nil, err
	}
	k, err := tally.ParseLedgerKey(secret)
	if err != nil {
		return nil, fmt.Errorf("ledger key: %w", err)
	}
	return k, nil
}

// outsideSecretSpec describes one secret that Tally keeps outside its database.
type outsideSecretSpec struct {
	env        string        // the environment variable that gives it
	suffix     string        // appended to the embedded database's path for the file that keeps it
	what       string        // its name in messages
	generate   func() string // a new value
	pgRequired string        // the error when it is missing on PostgreSQL
	mustExist  bool          // a missing file is an error rather than generated
	// inUse, when set, tells whether the database already depends on the secret: then a missing file
	// is an error too, since a new secret would not be the one the ledger was written with.
	inUse func() (bool, error)
}

// outsideSecret returns the secret from its environment variable, else (embedded store only) from its
// file beside the database, generating the file on first start.
func outsideSecret(store *openedStore, log *slog.Logger, spec outsideSecretSpec) (string, error) {
	if v := os.Getenv(spec.env); v != "" {
		return v, nil
	}
	if store.kind != "sqlite" {
		return "", errors.New(spec.pgRequired)
	}
	path := store.sqlitePath + spec.suffix
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := keepPrivate(path, spec.what, log); err != nil {
			return "", err
		}
		if log != nil {
			log.Info(spec.what+" loaded", "path", path)
		}
		return strings.TrimSpace(string(b)), nil
	case errors.Is(err, fs.ErrNotExist) && spec.mustExist:
		return "", fmt.Errorf("no %s: set %s, or keep the %s beside the database at %s", spec.what, spec.env, spec.what, path)
	case errors.Is(err, fs.ErrNotExist):
		if spec.inUse != nil {
			used, err := spec.inUse()
			if err != nil {
				return "", err
			}
			if used {
				return "", fmt.Errorf("no %s, and this database was written with one: set %s to it, or restore %s (a new one would not match what the database holds)", spec.what, spec.env, path)
			}
		}
		secret := spec.generate()
		if err := writeNewFile(path, secret+"\n"); err != nil {
			return "", fmt.Errorf("keep the %s: %w", spec.what, err)
		}
		if log != nil {
			log.Warn("generated a "+spec.what+" and kept it beside the database; back it up, or set "+spec.env, "path", path)
		}
		return secret, nil
	default:
		return "", fmt.Errorf("read the %s: %w", spec.what, err)
	}
}

// keepPrivate takes away the group and other permissions of a secret's file, with a warning: a file
// copied or restored with a looser mode would let other users of the machine read the secret.
func keepPrivate(path, what string, log *slog.Logger) error {
	info, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("read the %s: %w", what, err)
	}
	if runtime.GOOS == "windows" || info.Mode().Perm()&0o077 == 0 {
		return nil // on Windows file modes are not access control
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("the %s file %s is readable by other users and cannot be made private: %w", what, path, err)
	}
	if log != nil {
		log.Warn("the "+what+" file was readable by other users; it is now readable by its owner only",
			"path", path, "was", info.Mode().Perm().String())
	}
	return nil
}

// writeNewFile creates path (mode 0600; never over an existing file) with content, durably.
func writeNewFile(path, content string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(content); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func randomHex(n int) string {
	raw := make([]byte, n)
	if _, err := rand.Read(raw); err != nil {
		panic(err)
	}
	return hex.EncodeToString(raw)
}
