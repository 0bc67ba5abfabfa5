package main

import (
	"errors"
	"io/fs"
	"os"
	"strings"
	"testing"

	"github.com/tally-ledger/tally"
)

// TestSecretsNotRegeneratedForAWrittenDatabase: a database written with its secrets given in the
// environment, opened later without them, gets no new secret file beside it (the customers would hash
// to new accounts, the chains would not verify): a one-line error names what is missing. A fresh
// database still gets its secrets generated.
func TestSecretsNotRegeneratedForAWrittenDatabase(t *testing.T) {
	t.Setenv("TALLY_LEDGER_KEY", tally.GenerateLedgerKey())
	t.Setenv("TALLY_CUSTOMER_SECRET", "secret-from-the-environment-0123456789")
	db := tempDB(t)
	path := strings.TrimPrefix(db, "sqlite:")
	s := startServe(t, "--db", db, "--issuer", "https://tally.test", "--demo") // --demo writes an accrual
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	t.Setenv("TALLY_LEDGER_KEY", "")
	t.Setenv("TALLY_CUSTOMER_SECRET", "")
	_, err := cli(t, "migrate", "--db", db)
	wantOneLineError(t, err, "no ledger key, and this database was written with one", "TALLY_LEDGER_KEY", path+".key")
	_, err = cli(t, "serve", "--db", db, "--addr", "127.0.0.1:0")
	wantOneLineError(t, err, "no customer secret, and this database was written with one", "TALLY_CUSTOMER_SECRET")
	for _, f := range []string{path + ".key", path + ".secret"} {
		if _, err := os.Stat(f); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want no file", f, err)
		}
	}

	fresh := tempDB(t)
	mustCLI(t, "migrate", "--db", fresh)
	mustKeyFile(t, strings.TrimPrefix(fresh, "sqlite:"))
}
