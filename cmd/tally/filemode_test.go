//go:build unix

package main

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestServeKeepsFilesPrivate: on the embedded store, serve creates the database (with its WAL and
// shared-memory files), the customer secret and the ledger key readable by their owner only (umask 022
// would give 0644), and makes them so again when they were loosened. It changes the process's umask, so it
// must not run in parallel with other tests.
func TestServeKeepsFilesPrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	t.Cleanup(func() { syscall.Umask(old) })
	t.Setenv("TALLY_CUSTOMER_SECRET", "")
	t.Setenv("TALLY_LEDGER_KEY", "")
	path := filepath.Join(t.TempDir(), "tally.db")
	files := []string{path, path + "-wal", path + "-shm", path + ".secret", path + ".key"}
	wantPrivate := func(when string) {
		t.Helper()
		for _, p := range files {
			info, err := os.Stat(p)
			if err != nil {
				t.Errorf("%s: %s: %v", when, filepath.Base(p), err)
			} else if got := info.Mode().Perm(); got != 0o600 {
				t.Errorf("%s: %s has mode %v, want -rw-------", when, filepath.Base(p), got)
			}
		}
	}

	s := startServe(t, "--db", "sqlite:"+path, "--issuer", "https://tally.test", "--demo") // --demo writes
	wantPrivate("first start")
	id, secret := demoCredentials(t, s.out.String())
	token := fetchToken(t, s.base, id, secret)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	// Files copied or restored with a looser mode are tightened at the next start.
	for _, p := range files {
		if err := os.Chmod(p, 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	s = startServe(t, "--db", "sqlite:"+path, "--issuer", "https://tally.test")
	wantPrivate("restart")
	// The ledger key kept beside the database opens the stored signing key: a token issued before the
	// restart is still accepted.
	lookup(t, s.base, token, demoCustomer)
}
