package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// demoEnvSuffix is appended to the embedded database's path for the file that keeps the demo client's
// credentials. The store keeps only a hash of a client's secret, so without this file a second
// `serve --demo` could not show the secret again and would have to replace the client.
const demoEnvSuffix = ".demo.env"

// demoEnv is what the demo credentials file holds: shell assignments a user can source
// (`. ./tally.db.demo.env`) before copying the README's curl commands.
type demoEnv struct {
	ClientID, ClientSecret string
	URL                    string // where serve listened when it wrote the file
}

// readDemoEnv reads a file writeDemoEnv wrote. A missing file is fs.ErrNotExist; a file without both
// credentials is an error naming it.
func readDemoEnv(path string) (demoEnv, error) {
	f, err := os.Open(path)
	if err != nil {
		return demoEnv{}, err
	}
	defer f.Close()
	var e demoEnv
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		name, value, ok := strings.Cut(strings.TrimPrefix(line, "export "), "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		value = strings.Trim(value, "'")
		switch name {
		case "CLIENT_ID":
			e.ClientID = value
		case "CLIENT_SECRET":
			e.ClientSecret = value
		case "TALLY_URL":
			e.URL = value
		}
	}
	if err := sc.Err(); err != nil {
		return demoEnv{}, fmt.Errorf("read %s: %w", path, err)
	}
	if e.ClientID == "" || e.ClientSecret == "" {
		return demoEnv{}, fmt.Errorf("%s holds no CLIENT_ID and CLIENT_SECRET", path)
	}
	return e, nil
}

// writeDemoEnv replaces the file (mode 0600: it holds an admin secret) with e, atomically, so that a
// crash leaves the old file or the new one, never half of one. Client ids and secrets are base32 and
// base64url, which need no shell quoting; the quotes are for the URL's sake.
func writeDemoEnv(path string, e demoEnv) error {
	content := fmt.Sprintf(`# The OAuth client of 'tally serve --demo' on this database (admin scope: keep this file private).
# Load it into a shell with:  . %s
export CLIENT_ID='%s'
export CLIENT_SECRET='%s'
export TALLY_URL='%s'
`, sourcePath(path), e.ClientID, e.ClientSecret, e.URL)
	tmp := path + ".tmp"
	os.Remove(tmp) // left over by a crash; writeNewFile never writes over a file
	if err := writeNewFile(tmp, content); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// sourcePath is path as the shell's `.` finds it: a bare file name would be searched for in PATH.
func sourcePath(path string) string {
	if filepath.IsAbs(path) || strings.HasPrefix(path, "./") || strings.HasPrefix(path, "../") {
		return path
	}
	return "./" + path
}
