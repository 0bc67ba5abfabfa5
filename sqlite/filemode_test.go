//go:build unix

package sqlite

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// withUmask sets the process's umask for the test. The umask is process-wide: tests that call it must
// not run in parallel with others (none in this package does).
func withUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

// wantPrivate fails unless each file exists with mode 0600.
func wantPrivate(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(p), err)
			continue
		}
		if got := info.Mode().Perm(); got != 0o600 {
			t.Errorf("%s has mode %v, want -rw-------", filepath.Base(p), got)
		}
	}
}

func TestNewDatabaseFilesArePrivate(t *testing.T) {
	for _, mask := range []int{0o022, 0o002, 0} {
		t.Run(fmt.Sprintf("umask %03o", mask), func(t *testing.T) {
			withUmask(t, mask)
			path := filepath.Join(t.TempDir(), "tally.db")
			db := mustOpenAt(t, path, defaultConfig) // migrates: the WAL is written
			wantPrivate(t, path, path+"-wal", path+"-shm")
			MustExec(t, db, `CREATE TABLE scratch (x)`)
			MustExec(t, db, `INSERT INTO scratch VALUES (zeroblob(100000))`)
			MustExec(t, db, `PRAGMA wal_checkpoint(TRUNCATE)`)
			MustExec(t, db, `INSERT INTO scratch VALUES (1)`)
			wantPrivate(t, path, path+"-wal", path+"-shm")
		})
	}
}

// TestExistingDatabaseFilesAreTightened: a database created by an older Tally (0644, and its WAL and
// shared-memory files beside it while another connection holds it open) becomes 0600 when opened.
func TestExistingDatabaseFilesAreTightened(t *testing.T) {
	withUmask(t, 0o022)
	path := filepath.Join(t.TempDir(), "tally.db")
	old, err := sql.Open("sqlite", path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	if _, err := old.Exec(`CREATE TABLE scratch (x); INSERT INTO scratch VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if info, err := os.Stat(p); err != nil || info.Mode().Perm() != 0o644 {
			t.Fatalf("setup: %s is %v (%v), want -rw-r--r--", p, info.Mode().Perm(), err)
		}
	}
	mustOpenAt(t, path, defaultConfig)
	wantPrivate(t, path, path+"-wal", path+"-shm")
}
