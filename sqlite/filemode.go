package sqlite

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
)

// The database holds customers' balances, OAuth client hashes and sealed signing keys: only the user
// that runs Tally may read it. SQLite creates a new database file with mode 0644 (less the umask), and
// gives its -wal and -shm files the mode of the database file; so Open creates the file itself, 0600,
// before SQLite opens it, and tightens the files of an existing database that others may read.

// privateMode is the mode of the database file and the files SQLite keeps beside it.
const privateMode fs.FileMode = 0o600

// sidecars are the files SQLite keeps beside the database file, by suffix.
var sidecars = []string{"", "-wal", "-shm", "-journal"}

// makePrivate creates the database file at path (mode 0600) when it does not exist, and takes away the
// group and other permissions of an existing one and of its sidecar files, with a warning.
func makePrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, privateMode)
	switch {
	case err == nil:
		if err := f.Close(); err != nil {
			return fmt.Errorf("sqlite: create %s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	if runtime.GOOS == "windows" {
		return nil // file modes are not access control there
	}
	for _, suffix := range sidecars {
		p := path + suffix
		info, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("sqlite: %w", err)
		}
		if info.Mode().Perm()&0o077 == 0 {
			continue
		}
		if err := os.Chmod(p, privateMode); err != nil {
			return fmt.Errorf("sqlite: %s is readable by other users and cannot be made private: %w", p, err)
		}
		slog.Warn("sqlite: a database file was readable by other users; it is now readable by its owner only",
			"path", p, "was", info.Mode().Perm().String(), "now", privateMode.String())
	}
	return nil
}
