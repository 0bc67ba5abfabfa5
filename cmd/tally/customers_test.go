package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// TestCLIForget forgets a customer whose heads a checkpoint in the file beside the database recorded,
// then checks that verify (which reads that file) stays green, and that forgetting again says so.
func TestCLIForget(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	path := strings.TrimPrefix(db, "sqlite:")
	const secret = "cli-forget-secret-0123456789"
	if err := os.WriteFile(path+".secret", []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := mustHasher(t, secret)
	store, l := mustOpenLedger(t, db, ledger.Options{})
	for i, c := range []string{"ann@example.com", "bob@example.com", "ann@example.com"} {
		mustWrite(t, l, ledger.Request{Kind: tally.KindAccrual, Account: h.Hash(c), Key: fmt.Sprint("k", i), Amount: 10})
	}
	l.Close()
	store.Close()
	mustCLI(t, "checkpoint", "--db", db)

	_, err := cli(t, "customers", "forget", "--db", db, "ann@example.com")
	wantOneLineError(t, err, "--reason")
	out := mustCLI(t, "customers", "forget", "--db", db, "ann@example.com", "--reason", "GDPR request 9", "--actor", "dpo")
	if !strings.HasPrefix(out, "forgotten: erasure 1, 2 transactions") || strings.Contains(out, "ann") {
		t.Fatalf("forget printed %q", out)
	}
	if out := mustCLI(t, "verify", "--db", db, "--quiet"); !strings.HasPrefix(out, "ledger verified: ") || !strings.Contains(out, "erasures: 1, each sealed by the ledger key; 1 checkpoint roots") {
		t.Fatalf("verify after forgetting printed %q", out)
	}
	mustCLI(t, "checkpoint", "--db", db)
	if out := mustCLI(t, "verify", "--db", db, "--quiet"); !strings.HasPrefix(out, "ledger verified: 6 accounts, 3 transactions") {
		t.Fatalf("verify after forgetting and a new checkpoint printed %q", out)
	}
	if out := mustCLI(t, "customers", "forget", "--db", db, "ann@example.com", "--reason", "again"); !strings.HasPrefix(out, "nothing to forget") {
		t.Fatalf("forgetting again printed %q", out)
	}
	out = mustCLI(t, "customers", "erasures", "--db", db)
	if !strings.Contains(out, "\tdpo\tth_") || !strings.Contains(out, "GDPR request 9") || strings.Count(out, "\n") != 1 || strings.Contains(out, h.Hash("ann@example.com")) {
		t.Fatalf("erasures printed %q", out)
	}
}

// TestCLIImport imports a file twice (the second run imports nothing again), and reports rejected rows
// by line with exit status 4.
func TestCLIImport(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	path := strings.TrimPrefix(db, "sqlite:")
	if err := os.WriteFile(path+".secret", []byte("cli-import-secret-0123456789\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "opening.csv")
	if err := os.WriteFile(file, []byte("customer_id,points,kind,reference\nann,100,opening,A-1\nbob,50,accrual,\nbad,-1,accrual,\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := cli(t, "import", "--db", db, file, "--actor", "ops")
	if exitCode(err) != exitRejected || !strings.Contains(out, "3 rows: 2 imported (150 points), 0 imported before, 1 rejected") ||
		!strings.Contains(out, "line 4: points must be") {
		t.Fatalf("first import: %q, %v", out, err)
	}
	out, err = cli(t, "import", "--db", db, "--quiet", file)
	if exitCode(err) != exitRejected || !strings.Contains(out, "0 imported (0 points), 2 imported before, 1 rejected") {
		t.Fatalf("second import: %q, %v", out, err)
	}
	if out := mustCLI(t, "verify", "--db", db, "--quiet"); !strings.HasPrefix(out, "ledger verified: 6 accounts, 2 transactions") {
		t.Fatalf("verify printed %q", out)
	}
	good := filepath.Join(t.TempDir(), "good.csv")
	if err := os.WriteFile(good, []byte("customer_id,points\ncarl,5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := mustCLI(t, "import", "--db", db, good); !strings.HasPrefix(out, "1 rows: 1 imported") {
		t.Fatalf("clean import printed %q", out)
	}
	_, err = cli(t, "import", "--db", db, filepath.Join(t.TempDir(), "missing.csv"))
	wantOneLineError(t, err, "missing.csv")
}

// TestCLIWebhooks administers a subscription from the command line; an accrual written afterwards
// waits in its outbox.
func TestCLIWebhooks(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	_, err := cli(t, "webhooks", "create", "--db", db, "--url", "https://crm.example.com/tally", "--events", "points.earned,points.stolen")
	wantOneLineError(t, err, "points.stolen")
	out := mustCLI(t, "webhooks", "create", "--db", db, "--url", "https://crm.example.com/tally", "--events", "points.earned, points.expiring_soon", "--expiring-days", "14")
	id, _, _ := strings.Cut(out, "\t")
	if !strings.HasPrefix(id, "whs_") || !strings.Contains(out, "expiring_days=14") || !strings.Contains(out, "secret (give it") {
		t.Fatalf("create printed %q", out)
	}
	secret := strings.TrimSpace(out[strings.LastIndex(out, ": ")+2:])
	if got := strings.TrimSpace(mustCLI(t, "webhooks", "secret", "--db", db, id)); got != secret {
		t.Fatalf("secret %q, create said %q", got, secret)
	}
	if out := mustCLI(t, "webhooks", "update", id, "--db", db, "--active", "false"); !strings.Contains(out, "\tinactive\t") {
		t.Fatalf("update printed %q", out)
	}
	mustCLI(t, "webhooks", "update", id, "--db", db, "--active", "true")
	if rotated := strings.TrimSpace(mustCLI(t, "webhooks", "rotate-secret", "--db", db, id)); rotated == secret || len(rotated) != 64 {
		t.Fatalf("rotated secret %q", rotated)
	}

	store, l := mustOpenLedger(t, db, ledger.Options{})
	ann := mustHasher(t, "cli-webhooks-secret-0123456789").Hash("ann")
	mustWrite(t, l, ledger.Request{Kind: tally.KindAccrual, Account: ann, Key: "k1", Amount: 10})
	l.Close()
	store.Close()
	if out := mustCLI(t, "webhooks", "deliveries", "--db", db, id, "--status", "pending"); !strings.Contains(out, "\tpoints.earned\tpending\t0 attempts") {
		t.Fatalf("deliveries printed %q", out)
	}
	if out := mustCLI(t, "webhooks", "list", "--db", db); strings.Count(out, "\n") != 1 || !strings.Contains(out, id) {
		t.Fatalf("list printed %q", out)
	}
	mustCLI(t, "webhooks", "delete", "--db", db, id)
	_, err = cli(t, "webhooks", "delete", "--db", db, id)
	wantOneLineError(t, err, "no webhook subscription")
}

// TestImportProgress: a bar redrawn in place on a terminal, plain lines now and then elsewhere, nothing
// with --quiet.
func TestImportProgress(t *testing.T) {
	t.Parallel()
	var tty strings.Builder
	bar := &importProgress{w: &tty, tty: true, total: 4, last: time.Now().Add(time.Hour)}
	bar.update(1) // drawn just now (last in the future): nothing yet
	bar.last = time.Now().Add(-time.Hour)
	bar.update(2)
	bar.finish()
	if got := tty.String(); got != "\r["+strings.Repeat("=", 20)+strings.Repeat(" ", 20)+"] 2/4 rows\r["+strings.Repeat("=", 40)+"] 2/2 rows\n" {
		t.Fatalf("terminal progress %q", got)
	}
	var log strings.Builder
	plain := newImportProgress(&log, 10, false)
	plain.last = time.Now().Add(time.Hour)
	plain.update(3)
	plain.last = time.Now().Add(-time.Hour)
	plain.update(4)
	plain.finish()
	if got := log.String(); got != "import: 4 of about 10 rows\n" {
		t.Fatalf("plain progress %q", got)
	}
	var quiet strings.Builder
	q := newImportProgress(&quiet, 10, true)
	q.last = q.last.Add(-time.Minute)
	q.update(5)
	q.finish()
	if quiet.Len() != 0 {
		t.Fatalf("quiet progress %q", quiet.String())
	}
}
