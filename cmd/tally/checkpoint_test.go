package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// TestCLICheckpoint follows the attack through the command line: a checkpoint kept outside the
// database, then an insider deletes a customer's newest redemption and covers every trace in the
// database; verify with the checkpoints names the account and the checkpoint.
func TestCLICheckpoint(t *testing.T) {
	t.Parallel()
	db := tempDB(t)
	path := strings.TrimPrefix(db, "sqlite:")
	if out := mustCLI(t, "migrate", "--db", db); !strings.Contains(out, "chains sealed") {
		t.Fatalf("migrate printed %q", out)
	}
	store, l := mustOpenLedger(t, db, ledger.Options{})
	defer store.Close()
	h := mustHasher(t, testCustomerSecret)
	victim := h.Hash("victim")
	mustWrite(t, l,
		ledger.Request{Kind: tally.KindAccrual, Key: "b1", Account: h.Hash("bystander"), Amount: 10},
		ledger.Request{Kind: tally.KindAccrual, Key: "v1", Account: victim, Amount: 100},
		ledger.Request{Kind: tally.KindRedemption, Key: "v2", Account: victim, Amount: 30},
	)
	l.Close()

	out := mustCLI(t, "checkpoint", "--db", db)
	file := path + ".checkpoints"
	if !strings.Contains(out, "checkpoint 1: 2 accounts, 3 transactions") || !strings.Contains(out, file) {
		t.Fatalf("checkpoint printed %q", out)
	}
	if fi, err := os.Stat(file); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("checkpoint file: %v, %v; want mode 0600", fi, err)
	}
	if out := mustCLI(t, "verify", "--db", db, "--quiet", "--checkpoints", file); !strings.Contains(out, "checkpoints: 1 proven") {
		t.Fatalf("verify printed %q", out)
	}

	// The insider deletes the newest redemption and puts everything else back in order.
	var seq int64
	if err := store.SQL().QueryRow(`SELECT MAX(seq) FROM transactions WHERE account_id = ?`, victim).Scan(&seq); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"DELETE FROM processed_events WHERE tx_seq = {seq}",
		"UPDATE lots SET remaining = remaining + (SELECT u.points FROM lot_uses u WHERE u.debit_seq = {seq} AND u.lot_seq = lots.seq) WHERE seq IN (SELECT lot_seq FROM lot_uses WHERE debit_seq = {seq})",
		"DELETE FROM lot_uses WHERE debit_seq = {seq}",
		"DELETE FROM postings WHERE seq = {seq}",
		// The lots the redemption took from get their points back.
		"UPDATE lots SET remaining = remaining + (SELECT u.points FROM lot_uses u WHERE u.debit_seq = {seq} AND u.lot_seq = lots.seq) WHERE seq IN (SELECT lot_seq FROM lot_uses WHERE debit_seq = {seq})",
		"DELETE FROM lot_uses WHERE debit_seq = {seq}",
		"DELETE FROM transactions WHERE seq = {seq}",
		"UPDATE accounts SET balance = balance + 30, balance_version = balance_version - 1, last_tx_hash = (SELECT hash FROM transactions WHERE seq = (SELECT MAX(seq) FROM transactions WHERE account_id = '{a}')) WHERE id = '{a}'",
		"UPDATE account_shards SET balance = 0 WHERE account_id = 'system:redemptions'",
	} {
		if _, err := store.SQL().Exec(strings.NewReplacer("{seq}", fmt.Sprint(seq), "{a}", victim).Replace(q)); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	// The database alone looks intact (the checkpoint file moved away: verify uses the one beside an
	// embedded database by default)...
	if err := os.Rename(file, file+".away"); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "verify", "--db", db, "--quiet")
	if err := os.Rename(file+".away", file); err != nil {
		t.Fatal(err)
	}
	// ...and with it, by default as with the flag, the deletion shows.
	_, err := cli(t, "verify", "--db", db, "--quiet")
	wantOneLineError(t, err, "FAILED", "account "+victim, "checkpoint 1")
	_, err = cli(t, "verify", "--db", db, "--quiet", "--checkpoints", file)
	wantOneLineError(t, err, "FAILED", "account "+victim, "checkpoint 1", "deleted")
	if exitCode(err) != 3 {
		t.Fatalf("exit code %d, want 3", exitCode(err))
	}
	_, err = cli(t, "checkpoint", "--db", db)
	wantOneLineError(t, err, "refused", "account "+victim)

	// A damaged checkpoint file is named, not skipped.
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte("not json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = cli(t, "verify", "--db", db, "--checkpoints", bad)
	wantOneLineError(t, err, bad, "line 1")

	// Without the ledger key verify refuses rather than inventing one.
	if err := os.Rename(path+".key", path+".key.moved"); err != nil {
		t.Fatal(err)
	}
	_, err = cli(t, "verify", "--db", db)
	wantOneLineError(t, err, "no ledger key", "TALLY_LEDGER_KEY")
	if _, err := os.Stat(path + ".key"); err == nil {
		t.Fatal("verify created a ledger key")
	}
}

// TestServeCheckpoints: serve checkpoints the ledger head while it changes, into its checkpoint file.
func TestServeCheckpoints(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "tally.db")
	file := filepath.Join(dir, "cp.jsonl")
	mustCLI(t, "migrate", "--db", db)
	id, secret := createClient(t, db, "ledger:write")
	s := startServe(t, "--db", db, "--checkpoint-every", "50ms", "--checkpoint-file", file)
	tok := fetchToken(t, s.base, id, secret)
	h, _ := tally.NewCustomerHasher(mustRead(t, filepath.Join(dir, "tally.db.secret")))
	status, body, err := postJSON(s.base, "/v1/ledger/transaction/process", tok, accrualRequest("k1", h.Hash("c"), 5))
	if err != nil || status != http.StatusCreated {
		t.Fatalf("accrual: %d %s %v", status, body, err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		if b, _ := os.ReadFile(file); strings.Contains(string(b), `"transactions":1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("serve wrote no checkpoint covering the accrual within a minute")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	if out := mustCLI(t, "verify", "--db", db, "--quiet", "--checkpoints", file); !strings.Contains(out, "proven") {
		t.Fatalf("verify printed %q", out)
	}
	if _, err := parseServe([]string{"--checkpoint-every", "-1s"}, os.Stderr); err == nil {
		t.Fatal("a negative --checkpoint-every was accepted")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return []byte(strings.TrimSpace(string(b)))
}

// TestServeRefusesAnotherLedgerKey: serve started with a key that is not the ledger's says so and stops,
// instead of refusing every write.
func TestServeRefusesAnotherLedgerKey(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite:" + filepath.Join(dir, "tally.db")
	mustCLI(t, "migrate", "--db", db)
	t.Setenv("TALLY_LEDGER_KEY", tally.GenerateLedgerKey())
	cfg, err := parseServe([]string{"--addr", "127.0.0.1:0", "--db", db, "--checkpoint-every", "0"}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	err = serve(context.Background(), cfg, slogDiscard(), io.Discard, nil)
	wantOneLineError(t, err, "ledger key does not match")
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestCheckpointFileTornLine: a last line left torn by a crash is skipped when reading, and cut off
// before the next checkpoint is appended, so that the file stays readable.
func TestCheckpointFileTornLine(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "cp.jsonl")
	key := tally.RandomLedgerKey()
	cp := tally.Checkpoint{No: 1, Root: "ab"}
	key.SignCheckpoint(&cp)
	cf, err := openCheckpointFile(path)
	if err != nil || cf.last != nil {
		t.Fatalf("a new file: %+v, %v", cf, err)
	}
	if err := cf.append(cp); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"no":2,"created_at":"2026-`) // the crash
	f.Close()
	cf, err = openCheckpointFile(path)
	if err != nil || cf.last == nil || cf.last.No != 1 {
		t.Fatalf("reopened after a torn line: %+v, %v", cf, err)
	}
	cp2 := tally.Checkpoint{No: 2, Root: "cd"}
	key.SignCheckpoint(&cp2)
	if err := cf.append(cp2); err != nil {
		t.Fatal(err)
	}
	cps, err := readCheckpoints(path)
	if err != nil || len(cps) != 2 || cps[1] != cp2 {
		t.Fatalf("the file after the torn line was cut: %v, %v", cps, err)
	}
	// A damaged line in the middle is an error naming it: the file is evidence.
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(path, append([]byte("garbage\n"), b...), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readCheckpoints(path); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("a damaged first line: %v, want an error naming line 1", err)
	}
}

// TestVerifyEmptyDefaultCheckpointFile: the checkpoint file serve creates beside an embedded database
// before its first checkpoint does not fail verify; named with --checkpoints, it does.
func TestVerifyEmptyDefaultCheckpointFile(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	file := strings.TrimPrefix(db, "sqlite:") + ".checkpoints"
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustCLI(t, "verify", "--db", db, "--quiet"); !strings.Contains(out, "checkpoints: none given") {
		t.Fatalf("verify printed %q", out)
	}
	_, err := cli(t, "verify", "--db", db, "--quiet", "--checkpoints", file)
	wantOneLineError(t, err, "holds no checkpoint")
}
