package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/sqlite"
)

// wantOneLineError checks that a command failed with a one-line message containing every want.
func wantOneLineError(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("the command succeeded; want an error mentioning %q", want)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Fatalf("error is not one line: %q", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("error %q does not mention %q", msg, w)
		}
	}
}

func tempDB(t *testing.T) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "tally.db")
}

// mustKeyFile reads the ledger key that the CLI keeps beside an embedded database.
func mustKeyFile(t *testing.T, dbPath string) *tally.LedgerKey {
	t.Helper()
	b, err := os.ReadFile(dbPath + ".key")
	if err != nil {
		t.Fatal(err)
	}
	k, err := tally.ParseLedgerKey(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestCLIUnsupportedDatabaseURL(t *testing.T) {
	t.Parallel()
	for _, cmd := range [][]string{{"migrate"}, {"verify"}, {"clients", "list"}, {"rewards", "list"}, {"purge-events"}, {"serve", "--addr", "127.0.0.1:0"}} {
		_, err := cli(t, append(cmd, "--db", "mysql://x")...)
		wantOneLineError(t, err, "mysql://x", "sqlite:PATH", "postgres://")
	}
}

func TestCLIUnreachablePostgresIsOneLine(t *testing.T) {
	t.Parallel()
	_, err := cli(t, "migrate", "--db", "postgres://tally:s3cret@127.0.0.1:1/tally?connect_timeout=5")
	wantOneLineError(t, err, "unavailable")
	if strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("the error shows the password: %v", err)
	}
	if exitCode(err) != 1 {
		t.Fatalf("exit code %d, want 1", exitCode(err))
	}
}

func TestCLIVerify(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	if out := mustCLI(t, "verify", "--db", db, "--quiet"); !strings.HasPrefix(out, "ledger verified: ") {
		t.Fatalf("verify of a fresh database printed %q", out)
	}

	// Write a little history, then change one posting behind the ledger's back.
	store, l := mustOpenLedger(t, db, ledger.Options{})
	h := mustHasher(t, testCustomerSecret)
	victim, bystander := h.Hash("victim"), h.Hash("bystander")
	mid := mustWrite(t, l,
		ledger.Request{Kind: tally.KindAccrual, Key: "b1", Account: bystander, Amount: 10},
		ledger.Request{Kind: tally.KindAccrual, Key: "v1", Account: victim, Amount: 100},
		ledger.Request{Kind: tally.KindRedemption, Key: "v2", Account: victim, Amount: 30},
		ledger.Request{Kind: tally.KindAccrual, Key: "v3", Account: victim, Amount: 7},
	)[2]
	l.Close()
	if out := mustCLI(t, "verify", "--db", db, "--quiet"); !strings.Contains(out, "4 transactions") {
		t.Fatalf("verify printed %q", out)
	}
	out := mustCLI(t, "verify", "--db", db, "--quiet", "--json")
	var rep ledger.VerifyReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Transactions != 4 {
		t.Fatalf("verify --json printed %q (%v)", out, err)
	}
	seq := mid.Transaction.Seq
	if _, err := store.SQL().Exec(fmt.Sprintf("UPDATE postings SET amount = amount + 1 WHERE seq = %d AND idx = 0", seq)); err != nil {
		t.Fatal(err)
	}
	store.Close()

	out, err := cli(t, "verify", "--db", db, "--quiet")
	wantOneLineError(t, err, "FAILED", "account "+victim, fmt.Sprintf("transaction %d", seq))
	if exitCode(err) != 3 {
		t.Fatalf("verify of a tampered ledger: exit code %d, want 3", exitCode(err))
	}
	if out != "" {
		t.Fatalf("verify of a tampered ledger printed %q on stdout", out)
	}
}

func TestCLIVerifyMissingDatabase(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "typo.db")
	_, err := cli(t, "verify", "--db", "sqlite:"+path)
	wantOneLineError(t, err, "no database at "+path)
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("verify created %s: %v", path, err)
	}

	// A database that exists but was never migrated is named as such.
	db := tempDB(t)
	store, err := sqlite.Open(context.Background(), strings.TrimPrefix(db, "sqlite:"))
	if err != nil {
		t.Fatal(err)
	}
	store.Close()
	_, err = cli(t, "verify", "--db", db)
	wantOneLineError(t, err, "tally migrate")
}

func TestCLIClients(t *testing.T) {
	t.Parallel()
	db := tempDB(t)
	out := mustCLI(t, "clients", "create", "--db", db, "--name", "x", "--scopes", "ledger:read", "--json")
	var created struct {
		ID     string   `json:"client_id"`
		Secret string   `json:"client_secret"`
		Name   string   `json:"name"`
		Scopes []string `json:"scopes"`
	}
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.ID == "" || created.Secret == "" ||
		created.Name != "x" || len(created.Scopes) != 1 || created.Scopes[0] != "ledger:read" {
		t.Fatalf("clients create --json printed %q (%v)", out, err)
	}
	out = mustCLI(t, "clients", "create", "--db", db, "--name", "flows", "--scopes", "ledger:read, ledger:write")
	if !strings.Contains(out, "client_id:") || !strings.Contains(out, "client_secret:") || !strings.Contains(out, "ledger:read ledger:write") {
		t.Fatalf("clients create printed %q", out)
	}

	for _, bad := range []struct {
		args []string
		want []string
	}{
		{[]string{"--name", "x", "--scopes", "bogus"}, []string{`"bogus"`, "ledger:read", "ledger:write", "admin"}},
		{[]string{"--name", "x", "--scopes", "ledger:read,bogus"}, []string{`"bogus"`}},
		{[]string{"--scopes", "bogus"}, []string{"--name"}},
		{[]string{"--name", "x"}, []string{"--scopes"}},
		{[]string{"--name", " ", "--scopes", "admin"}, []string{"--name"}},
		{[]string{"--name", "caf\xe9", "--scopes", "admin"}, []string{"clients create: the client name is not valid UTF-8"}},
	} {
		out, err := cli(t, append([]string{"clients", "create", "--db", db}, bad.args...)...)
		wantOneLineError(t, err, bad.want...)
		if out != "" {
			t.Fatalf("clients create %q failed but printed %q", bad.args, out)
		}
	}

	out = mustCLI(t, "clients", "list", "--db", db)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "CLIENT_ID") || !strings.Contains(out, created.ID) {
		t.Fatalf("clients list printed:\n%s", out)
	}
	if strings.Contains(out, created.Secret) {
		t.Fatal("clients list shows a secret")
	}

	// Servers re-read a client's revocation every api.RevocationTTL, so its tokens stop working then, not
	// at their expiry: the message must say so.
	out = mustCLI(t, "clients", "revoke", "--db", db, created.ID)
	if want := "revoked " + created.ID + ": it can get no new tokens, and the tokens it already has stop working within 10s\n"; out != want {
		t.Fatalf("clients revoke printed %q, want %q", out, want)
	}
	var rows []struct {
		ID        string  `json:"client_id"`
		RevokedAt *string `json:"revoked_at"`
	}
	out = mustCLI(t, "clients", "list", "--db", db, "--json")
	if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("clients list --json printed %q (%v)", out, err)
	}
	for _, r := range rows {
		if (r.ID == created.ID) != (r.RevokedAt != nil) {
			t.Fatalf("after revoking %s, clients list --json says %s", created.ID, out)
		}
	}

	_, err := cli(t, "clients", "revoke", "--db", db, "no-such-client")
	wantOneLineError(t, err, `no client "no-such-client"`)
	_, err = cli(t, "clients", "revoke", "--db", db, "tly_\xff")
	wantOneLineError(t, err, "clients revoke: the client id is not valid UTF-8")
	_, err = cli(t, "clients", "revoke", "--db", db)
	wantOneLineError(t, err, "client_id")
	_, err = cli(t, "clients", "rotate", "--db", db)
	wantOneLineError(t, err, "create, list or revoke")
}

func TestCLIPurgeEvents(t *testing.T) {
	t.Parallel()
	db := tempDB(t)
	if out := mustCLI(t, "purge-events", "--db", db, "--retention", "1h"); out != "removed 0 event outcomes older than 1h0m0s\n" {
		t.Fatalf("purge-events printed %q", out)
	}
	_, err := cli(t, "purge-events", "--db", db, "--retention", "-1h")
	wantOneLineError(t, err, "--retention", "positive")
	_, err = cli(t, "purge-events", "--db", db, "--retention", "soon")
	wantOneLineError(t, err, "--retention", `"soon"`)
}

// TestCLIBadEnvironment checks that a malformed value from the environment is named by its variable.
// It sets the environment, so it does not run in parallel.
func TestCLIBadEnvironment(t *testing.T) {
	db := tempDB(t)
	t.Setenv("TALLY_EVENT_RETENTION", "abc")
	_, err := cli(t, "purge-events", "--db", db)
	wantOneLineError(t, err, "TALLY_EVENT_RETENTION", `"abc"`)
	_, err = cli(t, "serve", "--db", db, "--addr", "127.0.0.1:0")
	wantOneLineError(t, err, "TALLY_EVENT_RETENTION", `"abc"`)
	// The flag, when given, wins over the environment.
	mustCLI(t, "purge-events", "--db", db, "--retention", "2h")

	t.Setenv("TALLY_EVENT_RETENTION", "")
	t.Setenv("TALLY_MAX_IN_FLIGHT", "lots")
	_, err = cli(t, "serve", "--db", db, "--addr", "127.0.0.1:0")
	wantOneLineError(t, err, "TALLY_MAX_IN_FLIGHT", `"lots"`)
	_, err = cli(t, "serve", "--db", db, "--addr", "127.0.0.1:0", "--max-in-flight", "0")
	wantOneLineError(t, err, "--max-in-flight", "positive")
}

func TestCLIUsage(t *testing.T) {
	t.Parallel()
	if _, err := cli(t); !errors.Is(err, errUsageShown) || exitCode(err) != 2 {
		t.Fatalf("no command: %v (exit %d), want usage and exit 2", err, exitCode(err))
	}
	if _, err := cli(t, "frobnicate"); exitCode(err) != 2 {
		t.Fatalf("unknown command: %v", err)
	}
	if _, err := cli(t, "migrate", "--no-such-flag"); exitCode(err) != 2 {
		t.Fatalf("unknown flag: %v", err)
	}
	if _, err := cli(t, "help"); err != nil {
		t.Fatalf("help: %v", err)
	}
}
