package sqlite

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
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

func TestUpdate_RoundTrip(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	alice, bob := "alice", "bob"
	claim := tally.Outcome{OutcomeKey: tally.OutcomeKey{Channel: "api", Key: "k1"}, RequestHash: "rh1", CreatedAt: t0}

	var stored tally.Transaction
	MustUpdate(t, db, func(ctx context.Context, tx tally.WriteTx) error {
		existing, err := tx.ClaimOutcomes(ctx, []tally.Outcome{claim})
		if err != nil || len(existing) != 0 {
			return fmt.Errorf("fresh claim: %v, %v", existing, err)
		}
		if err := tx.EnsureAccounts(ctx, []string{alice, bob}, t0); err != nil {
			return err
		}
		if err := tx.EnsureAccounts(ctx, []string{alice, tally.AccountIssuance}, t0.Add(time.Hour)); err != nil {
			return err
		}
		locked, err := tx.LockAccounts(ctx, []string{alice, bob, "carol", tally.AccountIssuance})
		if err != nil {
			return err
		}
		if len(locked) != 2 || locked[alice].Balance != 0 || !locked[alice].CreatedAt.Equal(t0) {
			return fmt.Errorf("locked %+v", locked)
		}
		seqs, err := tx.NextSeqs(ctx, 2)
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(seqs, []int64{1, 2}) {
			return fmt.Errorf("seqs %v", seqs)
		}
		first := accrual(alice, 100)
		first.Seq, first.IdempotencyKey, first.Metadata = seqs[0], "k1", json.RawMessage(`{"order": "A-1"}`)
		reversal := tally.Transaction{
			Seq: seqs[1], Kind: tally.KindReversal, AccountID: alice, Channel: "api", IdempotencyKey: "k2",
			RequestHash: "rh2", Amount: 100, ReversesSeq: seqs[0], CreatedAt: t0, Hash: "h2",
			Postings: []tally.Posting{{AccountID: alice, Amount: -100}, {AccountID: tally.AccountIssuance, Amount: 100}},
		}
		if err := tx.InsertTransactions(ctx, []tally.Transaction{first, reversal}); err != nil {
			return err
		}
		acc := locked[alice]
		acc.Balance, acc.BalanceVersion, acc.LastTxHash, acc.Status = 0, 2, "h2", tally.StatusFrozen
		if err := tx.UpdateAccounts(ctx, []tally.Account{acc}); err != nil {
			return err
		}
		if err := tx.AddSystemBalances(ctx, []tally.SystemDelta{{AccountID: tally.AccountIssuance, Shard: 3, Delta: -100}}); err != nil {
			return err
		}

		got, err := tx.Transactions(ctx, []int64{1, 2, 99})
		if err != nil {
			return err
		}
		if len(got) != 2 || !reflect.DeepEqual(got[1], first) || !reflect.DeepEqual(got[2], reversal) {
			return fmt.Errorf("Transactions = %+v", got)
		}
		rev, err := tx.ReversedBy(ctx, []int64{1, 2, 99})
		if err != nil {
			return err
		}
		if !reflect.DeepEqual(rev, map[int64]int64{1: 2}) {
			return fmt.Errorf("ReversedBy = %v", rev)
		}
		stored = first
		return tx.SaveOutcomes(ctx, []tally.Outcome{{OutcomeKey: claim.OutcomeKey, RequestHash: "rh1", TxSeq: 1,
			Response: json.RawMessage(`{"seq":1}`), CreatedAt: t0}})
	})

	got, err := db.Transaction(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, stored) {
		t.Fatalf("Transaction(1) = %+v\nwant %+v", got, stored)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Fatalf("created_at in %v", got.CreatedAt.Location())
	}
	if rev, _ := db.Transaction(ctx, 2); rev.Metadata != nil || rev.ReversesSeq != 1 {
		t.Fatalf("reversal read back as %+v", rev)
	}
	a, err := db.Account(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if want := (tally.Account{ID: alice, Status: tally.StatusFrozen, BalanceVersion: 2, LastTxHash: "h2", CreatedAt: t0.Truncate(time.Microsecond)}); a != want {
		t.Fatalf("Account = %+v, want %+v", a, want)
	}
	o, err := db.Outcome(ctx, "api", "k1")
	if err != nil {
		t.Fatal(err)
	}
	if want := (tally.Outcome{OutcomeKey: claim.OutcomeKey, RequestHash: "rh1", TxSeq: 1, Response: json.RawMessage(`{"seq":1}`), CreatedAt: t0}); !reflect.DeepEqual(o, want) {
		t.Fatalf("Outcome = %+v, want %+v", o, want)
	}

	// A second claim of the key finds the stored outcome; a fresh key next to it is claimed.
	MustUpdate(t, db, func(ctx context.Context, tx tally.WriteTx) error {
		fresh := tally.Outcome{OutcomeKey: tally.OutcomeKey{Channel: "api", Key: "k0"}, RequestHash: "rh0", CreatedAt: t0}
		existing, err := tx.ClaimOutcomes(ctx, []tally.Outcome{fresh, claim})
		if err != nil {
			return err
		}
		if len(existing) != 1 || !reflect.DeepEqual(existing[0], o) {
			return fmt.Errorf("existing = %+v, want [%+v]", existing, o)
		}
		seqs, err := tx.NextSeqs(ctx, 3)
		if err != nil || !reflect.DeepEqual(seqs, []int64{3, 4, 5}) {
			return fmt.Errorf("NextSeqs = %v, %v", seqs, err)
		}
		return nil
	})
	if _, err := db.Outcome(ctx, "api", "k0"); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("pending outcome: %v, want ENOTFOUND", err)
	}
}

func TestUpdate_ManyClaims(t *testing.T) {
	db := MustOpenDB(t)
	claims := func(from, to int) []tally.Outcome {
		var out []tally.Outcome
		for i := from; i < to; i++ {
			out = append(out, tally.Outcome{OutcomeKey: tally.OutcomeKey{Channel: "c", Key: fmt.Sprintf("k%04d", i)},
				RequestHash: fmt.Sprint(i), CreatedAt: t0})
		}
		return out
	}
	MustUpdate(t, db, func(ctx context.Context, tx tally.WriteTx) error {
		existing, err := tx.ClaimOutcomes(ctx, claims(0, 512))
		if err != nil || len(existing) != 0 {
			return fmt.Errorf("%d existing, %v", len(existing), err)
		}
		return nil
	})
	MustUpdate(t, db, func(ctx context.Context, tx tally.WriteTx) error {
		existing, err := tx.ClaimOutcomes(ctx, claims(256, 768))
		if err != nil {
			return err
		}
		if len(existing) != 256 || existing[0].Key != "k0256" || existing[255].Key != "k0511" || existing[7].RequestHash != "263" {
			return fmt.Errorf("%d existing, first %+v", len(existing), existing[0])
		}
		var keys []tally.OutcomeKey
		for _, c := range claims(0, 768) {
			keys = append(keys, c.OutcomeKey)
		}
		return tx.ReleaseClaims(ctx, keys)
	})
	var n int
	if err := db.SQL().QueryRow(`SELECT count(*) FROM processed_events`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d rows left after release, %v", n, err)
	}
}

func TestUpdate_ReleaseKeepsSavedOutcomes(t *testing.T) {
	db := MustOpenDB(t)
	done := tally.Outcome{OutcomeKey: tally.OutcomeKey{Channel: "api", Key: "done"}, Code: tally.EINSUFFICIENT, CreatedAt: t0}
	pending := tally.Outcome{OutcomeKey: tally.OutcomeKey{Channel: "api", Key: "pending"}, CreatedAt: t0}
	MustUpdate(t, db, func(ctx context.Context, tx tally.WriteTx) error {
		if _, err := tx.ClaimOutcomes(ctx, []tally.Outcome{done, pending}); err != nil {
			return err
		}
		if err := tx.SaveOutcomes(ctx, []tally.Outcome{done}); err != nil {
			return err
		}
		return tx.ReleaseClaims(ctx, []tally.OutcomeKey{done.OutcomeKey, pending.OutcomeKey})
	})
	o, err := db.Outcome(context.Background(), "api", "done")
	if err != nil || o.Code != tally.EINSUFFICIENT || o.TxSeq != 0 || o.Response != nil {
		t.Fatalf("Outcome = %+v, %v", o, err)
	}
	err = db.Update(context.Background(), func(ctx context.Context, tx tally.WriteTx) error {
		return tx.SaveOutcomes(ctx, []tally.Outcome{pending})
	})
	if err == nil {
		t.Fatal("saved an outcome that was never claimed")
	}
}

func TestUpdate_Errors(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	MustAccrue(t, db, "alice", 10)

	t.Run("error of fn rolls back and passes through", func(t *testing.T) {
		boom := errors.New("boom")
		calls := 0
		err := db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
			calls++
			if _, err := tx.NextSeqs(ctx, 5); err != nil {
				return err
			}
			if err := tx.EnsureAccounts(ctx, []string{"bob"}, t0); err != nil {
				return err
			}
			return boom
		})
		if err != boom || calls != 1 {
			t.Fatalf("Update = %v after %d calls, want boom after 1", err, calls)
		}
		if _, err := db.Account(ctx, "bob"); tally.ErrorCode(err) != tally.ENOTFOUND {
			t.Fatalf("account of a rolled-back transaction: %v", err)
		}
		MustUpdate(t, db, func(ctx context.Context, tx tally.WriteTx) error {
			seqs, err := tx.NextSeqs(ctx, 1)
			if err == nil && seqs[0] != 2 {
				err = fmt.Errorf("NextSeqs after rollback = %v, want [2]", seqs)
			}
			return err
		})
	})

	conflicts := []struct {
		name string
		edit func(*tally.Transaction)
	}{
		{"idempotency key", func(t *tally.Transaction) { t.IdempotencyKey = "alice-1" }},
		{"reversed twice", func(t *tally.Transaction) { t.Kind, t.ReversesSeq = tally.KindReversal, 1 }},
		{"sequence", func(t *tally.Transaction) { t.Seq = 1 }},
	}
	MustUpdate(t, db, func(ctx context.Context, tx tally.WriteTx) error {
		r := accrual("alice", 10)
		r.Seq, r.IdempotencyKey, r.Kind, r.ReversesSeq = 100, "rev", tally.KindReversal, 1
		return tx.InsertTransactions(ctx, []tally.Transaction{r})
	})
	for _, c := range conflicts {
		t.Run(c.name, func(t *testing.T) {
			err := db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
				tr := accrual("alice", 1)
				tr.Seq, tr.IdempotencyKey = 200, "fresh"
				c.edit(&tr)
				return tx.InsertTransactions(ctx, []tally.Transaction{tr})
			})
			var e *tally.Error
			if !errors.As(err, &e) || e.Code != tally.ECONFLICT {
				t.Fatalf("Update = %v, want ECONFLICT", err)
			}
			t.Log(e.Message)
		})
	}

	t.Run("unknown account", func(t *testing.T) {
		err := db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
			return tx.UpdateAccounts(ctx, []tally.Account{{ID: "nobody", Status: tally.StatusActive}})
		})
		if tally.ErrorCode(err) != tally.ENOTFOUND {
			t.Fatalf("Update = %v, want ENOTFOUND", err)
		}
	})

	t.Run("context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := db.Update(cctx, func(ctx context.Context, tx tally.WriteTx) error { return nil })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Update with a canceled context = %v", err)
		}
		cctx, cancel = context.WithCancel(ctx)
		err = db.Update(cctx, func(ctx context.Context, tx tally.WriteTx) error {
			cancel()
			_, err := tx.NextSeqs(ctx, 1)
			return err
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Update canceled midway = %v", err)
		}
	})
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

func TestUpdate_Concurrent(t *testing.T) {
	db := MustOpenDB(t)
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			account := fmt.Sprintf("c%02d", i%4)
			err := db.Update(context.Background(), func(ctx context.Context, tx tally.WriteTx) error {
				if err := tx.EnsureAccounts(ctx, []string{account}, t0); err != nil {
					return err
				}
				seqs, err := tx.NextSeqs(ctx, 3)
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				for _, s := range seqs {
					if seen[s] {
						return fmt.Errorf("seq %d reserved twice", s)
					}
					seen[s] = true
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
			if _, err := db.Account(context.Background(), account); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if len(seen) != 48 {
		t.Fatalf("%d seqs reserved, want 48", len(seen))
	}
}

func TestSystemShards(t *testing.T) {
	ctx := context.Background()
	db := MustOpenDB(t)
	MustUpdate(t, db, func(ctx context.Context, tx tally.WriteTx) error {
		return tx.AddSystemBalances(ctx, []tally.SystemDelta{
			{AccountID: tally.AccountIssuance, Shard: 0, Delta: -100},
			{AccountID: tally.AccountIssuance, Shard: 15, Delta: -50},
			{AccountID: tally.AccountRedemptions, Shard: 2, Delta: 30},
		})
	})
	MustUpdate(t, db, func(ctx context.Context, tx tally.WriteTx) error {
		return tx.AddSystemBalances(ctx, []tally.SystemDelta{
			{AccountID: tally.AccountIssuance, Shard: 0, Delta: -7},
			{AccountID: tally.AccountRedemptions, Shard: 2, Delta: -30},
		})
	})
	want := map[string]int64{tally.AccountIssuance: -157, tally.AccountRedemptions: 0, tally.AccountExpired: 0}
	for id, balance := range want {
		a, err := db.Account(ctx, id)
		if err != nil || a.Balance != balance {
			t.Errorf("Account(%s) = %d, %v; want %d", id, a.Balance, err, balance)
		}
	}
	var shards int
	if err := db.SQL().QueryRow(`SELECT count(*) FROM account_shards`).Scan(&shards); err != nil || shards != 3 {
		t.Fatalf("%d shard rows, %v; want 3", shards, err)
	}

	// A customer's balance column is its own; the audit sees system balances through the shards.
	MustAccrue(t, db, "alice", 5)
	MustExec(t, db, `UPDATE accounts SET balance = 999 WHERE id = ?`, tally.AccountIssuance)
	var ids []string
	balances := map[string]int64{}
	err := db.Audit().ScanAccounts(ctx, func(a tally.Account) error {
		ids = append(ids, a.ID)
		balances[a.ID] = a.Balance
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	wantIDs := []string{"alice", tally.AccountAdjustments, tally.AccountExpired, tally.AccountIssuance, tally.AccountRedemptions}
	if !reflect.DeepEqual(ids, wantIDs) {
		t.Fatalf("ScanAccounts order %v, want %v", ids, wantIDs)
	}
	if balances[tally.AccountIssuance] != -157 {
		t.Fatalf("audited issuance balance %d, want -157", balances[tally.AccountIssuance])
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
