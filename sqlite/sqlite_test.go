package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
)

// MustOpenDB returns a migrated database in a temporary directory, closed when the test ends.
func MustOpenDB(tb testing.TB) *DB {
	tb.Helper()
	return mustOpenAt(tb, filepath.Join(tb.TempDir(), "tally.db"), defaultConfig)
}

func mustOpenAt(tb testing.TB, path string, cfg config) *DB {
	tb.Helper()
	db, err := open(context.Background(), path, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return db
}

// MustUpdate runs fn in a write transaction that must commit.
func MustUpdate(tb testing.TB, db *DB, fn func(ctx context.Context, tx tally.WriteTx) error) {
	tb.Helper()
	if err := db.Update(context.Background(), fn); err != nil {
		tb.Fatal(err)
	}
}

// MustExec runs plain SQL on the database, as a tamperer would.
func MustExec(tb testing.TB, db *DB, query string, args ...any) {
	tb.Helper()
	if _, err := db.SQL().Exec(query, args...); err != nil {
		tb.Fatal(err)
	}
}

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 123456000, time.UTC)

// accrual is a transaction of amount points from issuance to account, with seq and key left to fill in.
func accrual(account string, amount int64) tally.Transaction {
	return tally.Transaction{
		Kind: tally.KindAccrual, AccountID: account, Channel: "api", RequestHash: "rh", Amount: amount,
		Reason: "test", Actor: "tester", CreatedAt: t0, Hash: "h",
		Postings: []tally.Posting{{AccountID: tally.AccountIssuance, Amount: -amount}, {AccountID: account, Amount: amount}},
	}
}

// MustAccrue writes accruals to account in one transaction and returns them as stored.
func MustAccrue(tb testing.TB, db *DB, account string, amounts ...int64) []tally.Transaction {
	tb.Helper()
	var txs []tally.Transaction
	MustUpdate(tb, db, func(ctx context.Context, tx tally.WriteTx) error {
		txs = nil
		if err := tx.EnsureAccounts(ctx, []string{account}, t0); err != nil {
			return err
		}
		seqs, err := tx.NextSeqs(ctx, len(amounts))
		if err != nil {
			return err
		}
		for i, a := range amounts {
			t := accrual(account, a)
			t.Seq = seqs[i]
			t.IdempotencyKey = fmt.Sprintf("%s-%d", account, seqs[i])
			txs = append(txs, t)
		}
		return tx.InsertTransactions(ctx, txs)
	})
	return txs
}

func TestOpen_Pragmas(t *testing.T) {
	db := MustOpenDB(t)
	for pragma, want := range map[string]string{
		"journal_mode": "wal", "synchronous": "2", "foreign_keys": "1", "busy_timeout": "5000",
	} {
		var got string
		if err := db.SQL().QueryRow("PRAGMA " + pragma).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("PRAGMA %s = %s, want %s", pragma, got, want)
		}
	}
	if err := db.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "missing", "tally.db"))
	if err == nil {
		db.Close()
		t.Fatal("opened a database in a directory that does not exist")
	}

	path := filepath.Join(t.TempDir(), "tally #1?.db")
	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Path() != path {
		t.Fatalf("Path() = %q, want %q", db.Path(), path)
	}
	if ok, err := db.MigrationsCurrent(ctx); err != nil || ok {
		t.Fatalf("MigrationsCurrent before Migrate = %v, %v; want false", ok, err)
	}
	if ok, err := db.MigrationsCurrent(ctx); err != nil || ok {
		t.Fatalf("MigrationsCurrent twice before Migrate = %v, %v; want false", ok, err)
	}
	for range 2 {
		if err := db.Migrate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := db.MigrationsCurrent(ctx); err != nil || !ok {
		t.Fatalf("MigrationsCurrent after Migrate = %v, %v; want true", ok, err)
	}
	for _, id := range tally.SystemAccounts {
		a, err := db.Account(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if a.Balance != 0 || a.Status != tally.StatusActive || a.CreatedAt.Location() != time.UTC {
			t.Errorf("system account %+v", a)
		}
	}
	if _, err := db.Account(ctx, "nobody"); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("unknown account: %v", err)
	}
	if _, err := db.Transaction(ctx, 1); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("unknown transaction: %v", err)
	}
}

// TestUpdate_Busy holds the file's write lock from another handle, as another process would.
func TestUpdate_Busy(t *testing.T) {
	ctx := context.Background()
	holder := MustOpenDB(t)
	impatient := mustOpenAt(t, holder.Path(), config{busyTimeout: 10 * time.Millisecond, maxAttempts: 3})

	lock := func() (release func()) {
		conn, err := holder.SQL().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		return func() {
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				t.Error(err)
			}
			conn.Close()
		}
	}

	release := lock()
	calls := 0
	err := impatient.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error { calls++; return nil })
	if tally.ErrorCode(err) != tally.EUNAVAILABLE {
		t.Fatalf("Update under a held lock = %v, want EUNAVAILABLE", err)
	}
	if _, err := impatient.PurgeOutcomes(ctx, t0); tally.ErrorCode(err) != tally.EUNAVAILABLE {
		t.Fatalf("PurgeOutcomes under a held lock = %v, want EUNAVAILABLE", err)
	}
	// Reads go on beside the writer.
	if _, err := impatient.Account(ctx, tally.AccountIssuance); err != nil {
		t.Fatal(err)
	}
	release()

	patient := mustOpenAt(t, holder.Path(), config{busyTimeout: 10 * time.Millisecond, maxAttempts: 100})
	release = lock()
	released := make(chan struct{})
	go func() {
		defer close(released)
		time.Sleep(150 * time.Millisecond)
		release()
	}()
	err = patient.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		_, err := tx.NextSeqs(ctx, 1)
		return err
	})
	<-released
	if err != nil {
		t.Fatalf("Update after the lock is released: %v", err)
	}
}

func TestHistory(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	var amounts []int64
	for i := range 25 {
		amounts = append(amounts, int64(i+1))
	}
	MustAccrue(t, db, "alice", amounts[:10]...)
	MustAccrue(t, db, "bob", 1000)
	MustAccrue(t, db, "alice", amounts[10:]...)

	var got []tally.Transaction
	before := int64(0)
	for page := 0; ; page++ {
		txs, err := db.History(ctx, "alice", before, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(txs) == 0 {
			break
		}
		if page > 3 {
			t.Fatal("paging does not end")
		}
		got = append(got, txs...)
		before = txs[len(txs)-1].Seq
	}
	if len(got) != 25 {
		t.Fatalf("%d transactions over all pages, want 25", len(got))
	}
	for i, tr := range got {
		if tr.AccountID != "alice" || tr.Amount != int64(25-i) || len(tr.Postings) != 2 || tr.Postings[1].Amount != tr.Amount {
			t.Fatalf("history[%d] = %+v", i, tr)
		}
		if i > 0 && tr.Seq >= got[i-1].Seq {
			t.Fatalf("history not newest first at %d: %d after %d", i, tr.Seq, got[i-1].Seq)
		}
	}
	if txs, err := db.History(ctx, "alice", got[0].Seq, 1); err != nil || len(txs) != 1 || txs[0].Seq != got[1].Seq {
		t.Fatalf("History before %d = %+v, %v", got[0].Seq, txs, err)
	}
	for _, c := range []struct {
		account string
		limit   int
	}{{"nobody", 10}, {"alice", 0}} {
		txs, err := db.History(ctx, c.account, 0, c.limit)
		if err != nil || txs == nil || len(txs) != 0 {
			t.Fatalf("History(%s, limit %d) = %v, %v; want an empty page", c.account, c.limit, txs, err)
		}
	}
}

func TestPurgeOutcomes(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	at := func(channel, key string, d time.Duration) tally.Outcome {
		return tally.Outcome{OutcomeKey: tally.OutcomeKey{Channel: channel, Key: key}, CreatedAt: t0.Add(d)}
	}
	MustUpdate(t, db, func(ctx context.Context, tx tally.WriteTx) error {
		// Explicit transactions' outcomes are never purged, however old, nor is a channel that only looks
		// like an event's (written before explicit channels were plain tokens): SQLite's LIKE would match it.
		all := []tally.Outcome{at("EVENT:w", "old", -2*time.Hour), at("api", "old", -2*time.Hour),
			at("event:w", "edge", 0), at("event:w", "new", time.Hour), at("event:w", "old-done", -2*time.Hour),
			at("event:w", "old-pending", -time.Hour)}
		if _, err := tx.ClaimOutcomes(ctx, all); err != nil {
			return err
		}
		return tx.SaveOutcomes(ctx, []tally.Outcome{all[0], all[1], all[2], all[3], all[4]})
	})
	n, err := db.PurgeOutcomes(ctx, t0)
	if err != nil || n != 2 {
		t.Fatalf("PurgeOutcomes = %d, %v; want 2", n, err)
	}
	for key, code := range map[string]tally.Code{"event:w/old-done": tally.ENOTFOUND, "event:w/edge": "",
		"event:w/new": "", "api/old": "", "EVENT:w/old": ""} {
		channel, key, _ := strings.Cut(key, "/")
		if _, err := db.Outcome(ctx, channel, key); tally.ErrorCode(err) != code {
			t.Errorf("Outcome(%s, %s) after purge: %v, want code %q", channel, key, err, code)
		}
	}
	if n, err := db.PurgeOutcomes(ctx, t0); err != nil || n != 0 {
		t.Fatalf("second PurgeOutcomes = %d, %v; want 0", n, err)
	}
}

func TestScanTransactions(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	MustAccrue(t, db, "bob", 1, 2)
	MustAccrue(t, db, "alice", 3)
	MustAccrue(t, db, "bob", 4)
	MustAccrue(t, db, "alice", 5, 6)
	// Seqs: bob 1, 2, 4; alice 3, 5, 6. Postings of 5 are gone.
	MustExec(t, db, `DELETE FROM postings WHERE seq = 5`)
	MustExec(t, db, `UPDATE postings SET amount = 77 WHERE seq = 6 AND idx = 1`)

	audit := db.Audit()
	if n, err := audit.CountTransactions(ctx); err != nil || n != 6 {
		t.Fatalf("CountTransactions = %d, %v; want 6", n, err)
	}
	type seen struct {
		account  string
		seq      int64
		postings []tally.Posting
	}
	var got []seen
	err := audit.ScanTransactions(ctx, func(tr tally.Transaction) error {
		got = append(got, seen{tr.AccountID, tr.Seq, tr.Postings})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	two := func(account string, amount, tampered int64) []tally.Posting {
		return []tally.Posting{{AccountID: tally.AccountIssuance, Amount: -amount}, {AccountID: account, Amount: tampered}}
	}
	want := []seen{
		{"alice", 3, two("alice", 3, 3)}, {"alice", 5, nil}, {"alice", 6, two("alice", 6, 77)},
		{"bob", 1, two("bob", 1, 1)}, {"bob", 2, two("bob", 2, 2)}, {"bob", 4, two("bob", 4, 4)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("ScanTransactions =\n%+v\nwant\n%+v", got, want)
	}

	stop := errors.New("stop")
	calls := 0
	err = audit.ScanTransactions(ctx, func(tally.Transaction) error { calls++; return stop })
	if err != stop || calls != 1 {
		t.Fatalf("ScanTransactions with a failing fn = %v after %d calls", err, calls)
	}
}

func TestRewards(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	five := int64(5)
	mug := tally.Reward{ID: "mug", Name: "Mug", PointCost: 500, Inventory: &five, FulfillmentMethod: "webhook",
		WebhookURL: "https://example.com/hook", Active: true, CreatedAt: t0, UpdatedAt: t0}
	hat := tally.Reward{ID: "hat", Name: "Hat", PointCost: 300, FulfillmentMethod: "manual", MinTier: "gold", CreatedAt: t0, UpdatedAt: t0}
	for _, r := range []tally.Reward{mug, hat} {
		if err := db.PutReward(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	renamed := mug
	renamed.Name, renamed.Inventory, renamed.CreatedAt, renamed.UpdatedAt = "Big mug", nil, t0.Add(time.Hour), t0.Add(time.Hour)
	if err := db.PutReward(ctx, renamed); err != nil {
		t.Fatal(err)
	}
	got, err := db.Rewards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	renamed.CreatedAt = t0 // creation time is kept on replace
	if want := []tally.Reward{hat, renamed}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Rewards =\n%+v\nwant\n%+v", got, want)
	}
	bad := hat
	bad.PointCost = 0
	if err := db.PutReward(ctx, bad); tally.ErrorCode(err) != tally.EINVALID {
		t.Fatalf("PutReward with cost 0 = %v, want EINVALID", err)
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "tally.db")
	db := mustOpenAt(t, path, defaultConfig)
	written := MustAccrue(t, db, "alice", 42)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ok, err := db.MigrationsCurrent(ctx); err != nil || !ok {
		t.Fatalf("MigrationsCurrent after reopening = %v, %v", ok, err)
	}
	got, err := db.Transaction(ctx, written[0].Seq)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, written[0]) {
		t.Fatalf("after reopening: %+v, want %+v", got, written[0])
	}
	MustUpdate(t, db, func(ctx context.Context, tx tally.WriteTx) error {
		seqs, err := tx.NextSeqs(ctx, 1)
		if err == nil && seqs[0] != 2 {
			err = fmt.Errorf("NextSeqs after reopening = %v, want [2]", seqs)
		}
		return err
	})
}
