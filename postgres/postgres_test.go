package postgres_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/postgres/pgtest"
)

// customer returns a customer hash made from n.
func customer(n int) string { return fmt.Sprintf("%064x", n) }

// accrual is one accrual of a test batch.
type accrual struct {
	channel, key, account string
	amount                int64
	metadata              string
}

// accrueBatch is a small ledger write made of the WriteTx calls in the order the real ledger makes them:
// claim keys, create and lock accounts, take seqs, insert, update balances and system shards, save the
// outcomes. It returns the outcomes that already existed and the seq of each new transaction by key.
func accrueBatch(ctx context.Context, tx tally.WriteTx, now time.Time, ops ...accrual) ([]tally.Outcome, map[string]int64, error) {
	ops = slices.Clone(ops)
	slices.SortFunc(ops, func(a, b accrual) int {
		if a.channel != b.channel {
			return compare(a.channel, b.channel)
		}
		return compare(a.key, b.key)
	})
	claims := make([]tally.Outcome, len(ops))
	for i, op := range ops {
		claims[i] = tally.Outcome{OutcomeKey: tally.OutcomeKey{Channel: op.channel, Key: op.key}, RequestHash: "req-" + op.key, CreatedAt: now}
	}
	existing, err := tx.ClaimOutcomes(ctx, claims)
	if err != nil {
		return nil, nil, err
	}
	done := make(map[tally.OutcomeKey]bool)
	for _, o := range existing {
		done[o.OutcomeKey] = true
	}
	var todo []accrual
	var ids []string
	for _, op := range ops {
		if !done[tally.OutcomeKey{Channel: op.channel, Key: op.key}] {
			todo = append(todo, op)
			ids = append(ids, op.account)
		}
	}
	if len(todo) == 0 {
		return existing, nil, nil
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	if err := tx.EnsureAccounts(ctx, ids, now); err != nil {
		return nil, nil, err
	}
	accounts, err := tx.LockAccounts(ctx, ids)
	if err != nil {
		return nil, nil, err
	}
	seqs, err := tx.NextSeqs(ctx, len(todo))
	if err != nil {
		return nil, nil, err
	}
	var (
		txs      []tally.Transaction
		deltas   []tally.SystemDelta
		outcomes []tally.Outcome
		bySeq    = make(map[string]int64)
	)
	for i, op := range todo {
		a := accounts[op.account]
		t := tally.Transaction{
			Seq: seqs[i], Kind: tally.KindAccrual, AccountID: op.account, Channel: op.channel,
			IdempotencyKey: op.key, RequestHash: "req-" + op.key, Amount: op.amount,
			CreatedAt: tally.LedgerTime(now),
			Postings: []tally.Posting{
				{AccountID: tally.AccountIssuance, Amount: -op.amount},
				{AccountID: op.account, Amount: op.amount},
			},
		}
		if op.metadata != "" {
			t.Metadata = json.RawMessage(op.metadata)
		}
		if t.Hash, err = tally.ChainHash(a.LastTxHash, &t); err != nil {
			return nil, nil, err
		}
		a.Balance += op.amount
		a.BalanceVersion++
		a.LastTxHash = t.Hash
		accounts[op.account] = a
		txs = append(txs, t)
		deltas = append(deltas, tally.SystemDelta{AccountID: tally.AccountIssuance, Shard: int(t.Seq % tally.SystemShards), Delta: -op.amount})
		outcomes = append(outcomes, tally.Outcome{
			OutcomeKey: tally.OutcomeKey{Channel: op.channel, Key: op.key},
			TxSeq:      t.Seq,
			Response:   json.RawMessage(fmt.Sprintf(`{"seq":%d}`, t.Seq)),
		})
		bySeq[op.key] = t.Seq
	}
	if err := tx.InsertTransactions(ctx, txs); err != nil {
		return nil, nil, err
	}
	var updated []tally.Account
	for _, id := range ids {
		updated = append(updated, accounts[id])
	}
	if err := tx.UpdateAccounts(ctx, updated); err != nil {
		return nil, nil, err
	}
	if err := tx.AddSystemBalances(ctx, deltas); err != nil {
		return nil, nil, err
	}
	if err := tx.SaveOutcomes(ctx, outcomes); err != nil {
		return nil, nil, err
	}
	return existing, bySeq, nil
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// mustAccrue commits one batch of accruals and returns the new seqs by key.
func mustAccrue(tb testing.TB, db *postgres.DB, ops ...accrual) map[string]int64 {
	tb.Helper()
	var seqs map[string]int64
	err := db.Update(context.Background(), func(ctx context.Context, tx tally.WriteTx) error {
		var err error
		_, seqs, err = accrueBatch(ctx, tx, time.Now(), ops...)
		return err
	})
	if err != nil {
		tb.Fatalf("accrue: %v", err)
	}
	return seqs
}

func mustExec(tb testing.TB, db *postgres.DB, sql string, args ...any) {
	tb.Helper()
	if _, err := db.Pool().Exec(context.Background(), sql, args...); err != nil {
		tb.Fatalf("exec %q: %v", sql, err)
	}
}

func wantCode(tb testing.TB, err error, code tally.Code) {
	tb.Helper()
	if got := tally.ErrorCode(err); got != code {
		tb.Fatalf("error code = %q (%v), want %q", got, err, code)
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.URL(t)
	db, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	if ok, err := db.MigrationsCurrent(ctx); err != nil || ok {
		t.Fatalf("before Migrate: MigrationsCurrent = %v, %v; want false, nil", ok, err)
	}
	// Replicas starting together migrate the same schema at once.
	other, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, d := range []*postgres.DB{db, other} {
		wg.Go(func() { errs[i] = d.Migrate(ctx) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Migrate: %v", err)
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if ok, err := db.MigrationsCurrent(ctx); err != nil || !ok {
		t.Fatalf("after Migrate: MigrationsCurrent = %v, %v; want true, nil", ok, err)
	}
	for _, id := range tally.SystemAccounts {
		a, err := db.Account(ctx, id)
		if err != nil {
			t.Fatalf("system account %s: %v", id, err)
		}
		if a.Status != tally.StatusActive || a.Balance != 0 {
			t.Errorf("system account %s = %+v", id, a)
		}
	}
	// Everything, goose's table included, is in the test schema, not public.
	var n int
	if err := db.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()
		AND tablename IN ('accounts', 'transactions', 'postings', 'account_shards', 'processed_events',
		'reward_catalog', 'goose_db_version')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 7 {
		t.Errorf("tables in the test schema = %d, want 7", n)
	}
	if err := db.Ping(ctx); err != nil {
		t.Errorf("Ping: %v", err)
	}
}

func TestOpenRejectsOtherSchemes(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"mysql://x@localhost/db", "host=localhost dbname=x", "::"} {
		if _, err := postgres.Open(context.Background(), u); tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("Open(%q) = %v, want EINVALID", u, err)
		}
	}
}

func TestUpdateRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	alice, bob := customer(1), customer(2)
	// Metadata is stored byte for byte (TEXT): the hash covers its exact spelling.
	const meta = `{ "b":1,  "a":"é" }`
	seqs := mustAccrue(t, db,
		accrual{channel: "api", key: "k1", account: alice, amount: 100, metadata: meta},
		accrual{channel: "api", key: "k2", account: bob, amount: 50},
		accrual{channel: "api", key: "k3", account: alice, amount: 7},
	)

	a, err := db.Account(ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	if a.Balance != 107 || a.BalanceVersion != 2 || a.Status != tally.StatusActive || a.LastTxHash == "" {
		t.Errorf("alice = %+v", a)
	}
	if a.CreatedAt.Location() != time.UTC {
		t.Errorf("account created_at location = %v, want UTC", a.CreatedAt.Location())
	}

	got, err := db.Transaction(ctx, seqs["k1"])
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Metadata) != meta || got.Kind != tally.KindAccrual || got.Amount != 100 || got.ReversesSeq != 0 {
		t.Errorf("transaction = %+v", got)
	}
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("transaction created_at location = %v, want UTC", got.CreatedAt.Location())
	}
	want := []tally.Posting{{AccountID: tally.AccountIssuance, Amount: -100}, {AccountID: alice, Amount: 100}}
	if !slices.Equal(got.Postings, want) {
		t.Errorf("postings = %v, want %v", got.Postings, want)
	}
	// The stored row reproduces the hash computed before the write.
	if h, _ := tally.ChainHash("", &got); h != got.Hash {
		t.Errorf("recomputed hash %s != stored %s", h, got.Hash)
	}

	o, err := db.Outcome(ctx, "api", "k2")
	if err != nil {
		t.Fatal(err)
	}
	if o.TxSeq != seqs["k2"] || o.Code != "" || string(o.Response) != fmt.Sprintf(`{"seq":%d}`, seqs["k2"]) || o.RequestHash != "req-k2" {
		t.Errorf("outcome = %+v", o)
	}

	issuance, err := db.Account(ctx, tally.AccountIssuance)
	if err != nil {
		t.Fatal(err)
	}
	if issuance.Balance != -157 {
		t.Errorf("issuance balance = %d, want -157", issuance.Balance)
	}

	// Replaying the batch finds every outcome and writes nothing.
	err = db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		existing, fresh, err := accrueBatch(ctx, tx, time.Now(),
			accrual{channel: "api", key: "k2", account: bob, amount: 50},
			accrual{channel: "api", key: "k1", account: alice, amount: 100})
		if err != nil {
			return err
		}
		if len(fresh) != 0 || len(existing) != 2 || existing[0].Key != "k1" || existing[1].Key != "k2" {
			t.Errorf("replay: existing %+v, fresh %v", existing, fresh)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Reads inside a write, and the unique constraints.
	err = db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		txs, err := tx.Transactions(ctx, []int64{seqs["k1"], seqs["k3"], 999999})
		if err != nil {
			return err
		}
		if len(txs) != 2 || len(txs[seqs["k3"]].Postings) != 2 {
			t.Errorf("Transactions = %+v", txs)
		}
		locked, err := tx.LockAccounts(ctx, []string{alice, tally.AccountIssuance, customer(99)})
		if err != nil {
			return err
		}
		if len(locked) != 1 || locked[alice].Balance != 107 {
			t.Errorf("LockAccounts = %+v (system and absent accounts are left out)", locked)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	reversal := func(key string, reverses int64) tally.Transaction {
		return tally.Transaction{Kind: tally.KindReversal, AccountID: alice, Channel: "api", IdempotencyKey: key,
			RequestHash: "r", Amount: 7, ReversesSeq: reverses, CreatedAt: time.Now(), Hash: "00",
			Postings: []tally.Posting{{AccountID: alice, Amount: -7}, {AccountID: tally.AccountIssuance, Amount: 7}}}
	}
	var revSeq int64
	err = db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		s, err := tx.NextSeqs(ctx, 1)
		if err != nil {
			return err
		}
		r := reversal("rev1", seqs["k3"])
		r.Seq, revSeq = s[0], s[0]
		return tx.InsertTransactions(ctx, []tally.Transaction{r})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		by, err := tx.ReversedBy(ctx, []int64{seqs["k1"], seqs["k3"]})
		if err != nil {
			return err
		}
		if len(by) != 1 || by[seqs["k3"]] != revSeq {
			t.Errorf("ReversedBy = %v, want {%d: %d}", by, seqs["k3"], revSeq)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	for name, tc := range map[string]struct {
		key      string
		reverses int64
		message  string
	}{
		"idempotency key": {key: "rev1", message: "idempotency key"},
		"reverses seq":    {key: "rev2", reverses: seqs["k3"], message: "already been reversed"},
	} {
		err := db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
			s, err := tx.NextSeqs(ctx, 1)
			if err != nil {
				return err
			}
			r := reversal(tc.key, tc.reverses)
			r.Seq = s[0]
			return tx.InsertTransactions(ctx, []tally.Transaction{r})
		})
		wantCode(t, err, tally.ECONFLICT)
		if msg := tally.ErrorMessage(err); !strings.Contains(msg, tc.message) {
			t.Errorf("%s: message %q does not mention %q", name, msg, tc.message)
		}
	}

	_, err = db.Account(ctx, customer(404))
	wantCode(t, err, tally.ENOTFOUND)
	_, err = db.Transaction(ctx, 404404)
	wantCode(t, err, tally.ENOTFOUND)
	_, err = db.Outcome(ctx, "api", "nope")
	wantCode(t, err, tally.ENOTFOUND)
}

func TestUpdateRollsBackAndPassesErrorsThrough(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	sentinel := errors.New("business says no")
	calls := 0
	err := db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		calls++
		if err := tx.EnsureAccounts(ctx, []string{customer(1)}, time.Now()); err != nil {
			return err
		}
		return sentinel
	})
	if err != sentinel || calls != 1 {
		t.Fatalf("Update = %v after %d calls, want the sentinel after 1", err, calls)
	}
	_, err = db.Account(ctx, customer(1))
	wantCode(t, err, tally.ENOTFOUND)

	// A claim that is released or rolled back is not an outcome; a pending one is not either.
	err = db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		claims := []tally.Outcome{
			{OutcomeKey: tally.OutcomeKey{Channel: "c", Key: "a"}, RequestHash: "h"},
			{OutcomeKey: tally.OutcomeKey{Channel: "c", Key: "b"}, RequestHash: "h"},
		}
		if _, err := tx.ClaimOutcomes(ctx, claims); err != nil {
			return err
		}
		return tx.ReleaseClaims(ctx, []tally.OutcomeKey{claims[0].OutcomeKey})
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Outcome(ctx, "c", "a")
	wantCode(t, err, tally.ENOTFOUND)
	_, err = db.Outcome(ctx, "c", "b")
	wantCode(t, err, tally.ENOTFOUND) // committed but still pending
}

// TestClaimRace: a second writer claiming a key that a first writer holds uncommitted waits for it,
// then gets the first writer's outcome as existing; no unique violation leaks.
func TestClaimRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	alice := customer(1)
	op := accrual{channel: "genesys", key: "evt-1", account: alice, amount: 10}

	claimed := make(chan struct{})
	release := make(chan struct{})
	firstDone := make(chan error, 1)
	var firstSeqs map[string]int64
	go func() {
		firstDone <- db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
			var err error
			if _, firstSeqs, err = accrueBatch(ctx, tx, time.Now(), op); err != nil {
				return err
			}
			close(claimed)
			<-release // hold the claim, uncommitted
			return nil
		})
	}()
	<-claimed

	var existing []tally.Outcome
	var fresh map[string]int64
	secondDone := make(chan error, 1)
	go func() {
		secondDone <- db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
			var err error
			existing, fresh, err = accrueBatch(ctx, tx, time.Now(), op)
			return err
		})
	}()
	waitForLockWait(t, db)
	close(release)
	if err := <-firstDone; err != nil {
		t.Fatalf("first writer: %v", err)
	}
	if err := <-secondDone; err != nil {
		t.Fatalf("second writer: %v", err)
	}
	seq := firstSeqs[op.key]
	if len(fresh) != 0 || len(existing) != 1 {
		t.Fatalf("second writer: existing %+v, fresh %v; want only the first writer's outcome", existing, fresh)
	}
	if o := existing[0]; o.Key != op.key || o.TxSeq != seq || o.Code != "" || string(o.Response) != fmt.Sprintf(`{"seq":%d}`, seq) {
		t.Errorf("existing outcome = %+v, want the first writer's (seq %d)", o, seq)
	}
	var n int
	if err := db.Pool().QueryRow(ctx, `SELECT count(*) FROM transactions`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d transactions for one key, want 1", n)
	}
}

// TestClaimWinsAfterRollback: when the writer holding the claim rolls back, the waiting writer claims
// the key itself.
func TestClaimWinsAfterRollback(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	op := accrual{channel: "genesys", key: "evt-1", account: customer(1), amount: 10}
	claimed := make(chan struct{})
	release := make(chan struct{})
	firstDone := make(chan error, 1)
	abort := errors.New("abort")
	go func() {
		firstDone <- db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
			if _, err := tx.ClaimOutcomes(ctx, []tally.Outcome{{OutcomeKey: tally.OutcomeKey{Channel: op.channel, Key: op.key}}}); err != nil {
				return err
			}
			close(claimed)
			<-release
			return abort
		})
	}()
	<-claimed
	secondDone := make(chan error, 1)
	var fresh map[string]int64
	go func() {
		secondDone <- db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
			var err error
			_, fresh, err = accrueBatch(ctx, tx, time.Now(), op)
			return err
		})
	}()
	waitForLockWait(t, db)
	close(release)
	if err := <-firstDone; err != abort {
		t.Fatalf("first writer: %v, want abort", err)
	}
	if err := <-secondDone; err != nil {
		t.Fatalf("second writer: %v", err)
	}
	if len(fresh) != 1 {
		t.Fatalf("second writer wrote %v, want one transaction", fresh)
	}
}

// waitForLockWait waits until some backend of this test's schema waits for a lock.
func waitForLockWait(tb testing.TB, db *postgres.DB) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		var n int
		err := db.Pool().QueryRow(context.Background(), `
			SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND datname = current_database() AND pid <> pg_backend_pid()
				AND backend_type = 'client backend'
				AND EXISTS (SELECT 1 FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
					JOIN pg_namespace ns ON ns.oid = c.relnamespace
					WHERE l.pid = pg_stat_activity.pid AND ns.nspname = current_schema())`).Scan(&n)
		if err != nil {
			tb.Fatal(err)
		}
		if n > 0 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatal("no writer waits for a lock")
}

// TestConcurrentBatches: writers with overlapping sorted batches neither deadlock nor lose or
// duplicate an accrual.
func TestConcurrentBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	const writers, rounds, keys = 6, 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Go(func() {
			for r := range rounds {
				var ops []accrual
				for k := range keys {
					if (k+w+r)%3 == 0 {
						continue
					}
					ops = append(ops, accrual{channel: "c", key: fmt.Sprintf("k%03d-%d", k, r%2), account: customer(k % 7), amount: 1})
				}
				err := db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
					_, _, err := accrueBatch(ctx, tx, time.Now(), ops...)
					return err
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var txs, distinct, total int64
	if err := db.Pool().QueryRow(ctx, `SELECT count(*), count(DISTINCT idempotency_key), COALESCE(sum(amount), 0) FROM transactions`).Scan(&txs, &distinct, &total); err != nil {
		t.Fatal(err)
	}
	if txs != distinct || txs != 2*keys {
		t.Errorf("transactions = %d (distinct keys %d), want %d", txs, distinct, 2*keys)
	}
	var balances int64
	err := db.Audit().ScanAccounts(ctx, func(a tally.Account) error {
		balances += a.Balance
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if balances != 0 {
		t.Errorf("balances sum to %d, want 0 (issuance shards mirror customer balances)", balances)
	}
}

// TestDeadlockRetry provokes a real deadlock (two writers locking two accounts in opposite orders,
// against the sorted-order contract) and checks that Update retries the victim.
func TestDeadlockRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// deadlock_timeout is a run-time parameter like search_path: detect the deadlock quickly.
	u := pgtest.URL(t) + "&deadlock_timeout=50ms"
	db, err := postgres.Open(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	x, y := customer(1), customer(2)
	mustAccrue(t, db, accrual{channel: "c", key: "x", account: x, amount: 1}, accrual{channel: "c", key: "y", account: y, amount: 1})

	var barrier sync.WaitGroup
	barrier.Add(2)
	var attempts [2]atomic.Int32
	run := func(i int, first, second string) error {
		return db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
			n := attempts[i].Add(1)
			if _, err := tx.LockAccounts(ctx, []string{first}); err != nil {
				return err
			}
			if n == 1 {
				barrier.Done()
				barrier.Wait()
			}
			locked, err := tx.LockAccounts(ctx, []string{second})
			if err != nil {
				return fmt.Errorf("lock second: %w", err) // wrapped: Update must still see the deadlock
			}
			a := locked[second]
			a.BalanceVersion++
			return tx.UpdateAccounts(ctx, []tally.Account{a})
		})
	}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	wg.Go(func() { errs[0] = run(0, x, y) })
	wg.Go(func() { errs[1] = run(1, y, x) })
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Update: %v", err)
	}
	// The victim retries; its retry can deadlock once more with the survivor's wake-up, so only a
	// lower bound holds.
	if total := attempts[0].Load() + attempts[1].Load(); total < 3 {
		t.Errorf("attempts = %d + %d, want a retry", attempts[0].Load(), attempts[1].Load())
	}
	for _, id := range []string{x, y} {
		a, err := db.Account(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if a.BalanceVersion != 2 {
			t.Errorf("account %s version = %d, want 2", id[len(id)-1:], a.BalanceVersion)
		}
	}
}

// TestSerializationRetry: a serialization failure is retried a bounded number of times, then reported
// as EUNAVAILABLE.
func TestSerializationRetry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	serialization := &pgconn.PgError{Code: "40001", Message: "could not serialize access"}

	calls := 0
	err := db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		calls++
		if err := tx.EnsureAccounts(ctx, []string{customer(calls)}, time.Now()); err != nil {
			return err
		}
		if calls < 3 {
			return fmt.Errorf("decide: %w", serialization)
		}
		return nil
	})
	if err != nil || calls != 3 {
		t.Fatalf("Update = %v after %d calls, want nil after 3", err, calls)
	}
	// Only the committed attempt left rows behind.
	for i, want := range []tally.Code{tally.ENOTFOUND, tally.ENOTFOUND, ""} {
		_, err := db.Account(ctx, customer(i+1))
		wantCode(t, err, want)
	}

	calls = 0
	err = db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		calls++
		return serialization
	})
	wantCode(t, err, tally.EUNAVAILABLE)
	if calls != 5 {
		t.Errorf("calls = %d, want 5", calls)
	}
}

func TestSystemShards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	err := db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		// Unsorted, with a shard twice: merged into one row update.
		return tx.AddSystemBalances(ctx, []tally.SystemDelta{
			{AccountID: tally.AccountRedemptions, Shard: 3, Delta: 5},
			{AccountID: tally.AccountIssuance, Shard: 1, Delta: -10},
			{AccountID: tally.AccountRedemptions, Shard: 3, Delta: 7},
			{AccountID: tally.AccountIssuance, Shard: 0, Delta: -2},
			{AccountID: tally.AccountExpired, Shard: 9, Delta: 0},
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		return tx.AddSystemBalances(ctx, []tally.SystemDelta{{AccountID: tally.AccountRedemptions, Shard: 3, Delta: 100}})
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{
		tally.AccountIssuance: -12, tally.AccountRedemptions: 112, tally.AccountExpired: 0, tally.AccountAdjustments: 0,
	}
	for id, balance := range want {
		a, err := db.Account(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if a.Balance != balance {
			t.Errorf("%s balance = %d, want %d", id, a.Balance, balance)
		}
	}
	var rows int
	if err := db.Pool().QueryRow(ctx, `SELECT count(*) FROM account_shards`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 3 {
		t.Errorf("shard rows = %d, want 3", rows)
	}
	got := map[string]int64{}
	err = db.Audit().ScanAccounts(ctx, func(a tally.Account) error {
		got[a.ID] = a.Balance
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, balance := range want {
		if got[id] != balance {
			t.Errorf("ScanAccounts %s = %d, want %d", id, got[id], balance)
		}
	}
}

func TestHistoryPaging(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	alice, bob := customer(1), customer(2)
	var ops []accrual
	for i := range 25 {
		ops = append(ops, accrual{channel: "api", key: fmt.Sprintf("a%02d", i), account: alice, amount: int64(i + 1)})
		if i%5 == 0 {
			ops = append(ops, accrual{channel: "api", key: fmt.Sprintf("b%02d", i), account: bob, amount: 1})
		}
	}
	mustAccrue(t, db, ops[:20]...)
	mustAccrue(t, db, ops[20:]...)

	var seen []int64
	before := int64(0)
	for page := 0; ; page++ {
		txs, err := db.History(ctx, alice, before, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(txs) == 0 {
			break
		}
		if page > 3 {
			t.Fatal("History does not end")
		}
		for _, tx := range txs {
			if tx.AccountID != alice || len(tx.Postings) != 2 || tx.Postings[0].AccountID != tally.AccountIssuance {
				t.Fatalf("History row = %+v", tx)
			}
			seen = append(seen, tx.Seq)
		}
		before = txs[len(txs)-1].Seq
	}
	if len(seen) != 25 {
		t.Fatalf("History returned %d transactions, want 25", len(seen))
	}
	for i := 1; i < len(seen); i++ {
		if seen[i] >= seen[i-1] {
			t.Fatalf("History not newest first: %v", seen)
		}
	}
	if txs, err := db.History(ctx, customer(404), 0, 10); err != nil || len(txs) != 0 {
		t.Errorf("History of an unknown account = %v, %v", txs, err)
	}
}

func TestPurgeOutcomes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	old := time.Date(2024, 1, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600))
	err := db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		// Explicit transactions' outcomes are never purged, however old, nor is a channel that only looks
		// like an event's (written before explicit channels were plain tokens). Claims go in key order.
		var claims []tally.Outcome
		for _, ch := range []string{"EVENT:c", "api", "event"} {
			claims = append(claims, tally.Outcome{OutcomeKey: tally.OutcomeKey{Channel: ch, Key: "0"}, RequestHash: "h", CreatedAt: old})
		}
		for i, at := range []time.Time{old, old.Add(time.Hour), old.Add(48 * time.Hour)} {
			claims = append(claims, tally.Outcome{OutcomeKey: tally.OutcomeKey{Channel: "event:c", Key: fmt.Sprint(i)}, RequestHash: "h", CreatedAt: at})
		}
		if _, err := tx.ClaimOutcomes(ctx, claims); err != nil {
			return err
		}
		for i := range claims {
			claims[i].Code = tally.EINSUFFICIENT
			claims[i].Response = json.RawMessage(`{"error":"insufficient"}`)
		}
		return tx.SaveOutcomes(ctx, claims)
	})
	if err != nil {
		t.Fatal(err)
	}
	o, err := db.Outcome(ctx, "event:c", "0")
	if err != nil {
		t.Fatal(err)
	}
	if !o.CreatedAt.Equal(old) || o.CreatedAt.Location() != time.UTC || o.Code != tally.EINSUFFICIENT || o.TxSeq != 0 {
		t.Errorf("outcome = %+v", o)
	}
	n, err := db.PurgeOutcomes(ctx, old.Add(2*time.Hour))
	if err != nil || n != 2 {
		t.Fatalf("PurgeOutcomes = %d, %v; want 2", n, err)
	}
	_, err = db.Outcome(ctx, "event:c", "0")
	wantCode(t, err, tally.ENOTFOUND)
	for _, ch := range []string{"event:c/2", "api/0", "EVENT:c/0", "event/0"} {
		ch, key, _ := strings.Cut(ch, "/")
		if _, err := db.Outcome(ctx, ch, key); err != nil {
			t.Errorf("outcome %s/%s purged: %v", ch, key, err)
		}
	}
}

func TestScanTransactions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	// Interleave accounts so that seq order and (account, seq) order differ.
	var ops []accrual
	for i := range 12 {
		ops = append(ops, accrual{channel: "api", key: fmt.Sprintf("k%02d", i), account: customer(3 - i%3), amount: 1})
	}
	seqs := mustAccrue(t, db, ops...)
	victim := seqs["k04"]
	mustExec(t, db, `DELETE FROM postings WHERE seq = $1`, victim)

	var got []tally.Transaction
	err := db.Audit().ScanTransactions(ctx, func(tx tally.Transaction) error {
		got = append(got, tx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 12 {
		t.Fatalf("scanned %d transactions, want 12", len(got))
	}
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if a.AccountID > b.AccountID || (a.AccountID == b.AccountID && a.Seq >= b.Seq) {
			t.Errorf("scan order: (%s, %d) before (%s, %d)", a.AccountID[60:], a.Seq, b.AccountID[60:], b.Seq)
		}
	}
	for _, tx := range got {
		want := 2
		if tx.Seq == victim {
			want = 0
		}
		if len(tx.Postings) != want {
			t.Errorf("seq %d has %d postings, want %d", tx.Seq, len(tx.Postings), want)
		}
	}
	if n, err := db.Audit().CountTransactions(ctx); err != nil || n != 12 {
		t.Errorf("CountTransactions = %d, %v", n, err)
	}

	stop := errors.New("stop")
	calls := 0
	err = db.Audit().ScanTransactions(ctx, func(tx tally.Transaction) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Errorf("ScanTransactions with a failing fn = %v after %d calls", err, calls)
	}

	var ids []string
	err = db.Audit().ScanAccounts(ctx, func(a tally.Account) error {
		ids = append(ids, a.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.IsSorted(ids) || len(ids) != 3+len(tally.SystemAccounts) {
		t.Errorf("ScanAccounts ids = %v", ids)
	}
}

func TestRewards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	inv := int64(3)
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	for _, r := range []tally.Reward{
		{ID: "mug", Name: "Mug", PointCost: 500, Inventory: &inv, FulfillmentMethod: "webhook", WebhookURL: "https://x", Active: true, CreatedAt: created, UpdatedAt: created},
		{ID: "cap", Name: "Cap", PointCost: 300, FulfillmentMethod: "manual", Active: true, CreatedAt: created, UpdatedAt: created},
	} {
		if err := db.PutReward(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	later := created.Add(time.Hour)
	if err := db.PutReward(ctx, tally.Reward{ID: "cap", Name: "Red cap", PointCost: 350, MinTier: "gold", FulfillmentMethod: "manual", CreatedAt: later, UpdatedAt: later}); err != nil {
		t.Fatal(err)
	}
	rs, err := db.Rewards(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].ID != "cap" || rs[1].ID != "mug" {
		t.Fatalf("Rewards = %+v", rs)
	}
	c := rs[0]
	if c.Name != "Red cap" || c.PointCost != 350 || c.Active || c.Inventory != nil || c.MinTier != "gold" || !c.CreatedAt.Equal(created) || !c.UpdatedAt.Equal(later) {
		t.Errorf("replaced reward = %+v", c)
	}
	if rs[1].Inventory == nil || *rs[1].Inventory != 3 {
		t.Errorf("inventory = %v", rs[1].Inventory)
	}
	err = db.PutReward(ctx, tally.Reward{ID: "free", Name: "Free", PointCost: 0, FulfillmentMethod: "manual"})
	wantCode(t, err, tally.EINVALID)
}

// TestUnavailable: a database that cannot be reached, or a connection that the server ends, is
// EUNAVAILABLE from every method; a cancelled context is returned as is.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	db, err := postgres.Open(ctx, "postgres://postgres@"+addr+"/test?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatalf("Open does not connect, so it succeeds: %v", err)
	}
	defer db.Close()

	checks := map[string]func() error{
		"Ping":    func() error { return db.Ping(ctx) },
		"Account": func() error { _, err := db.Account(ctx, customer(1)); return err },
		"Update": func() error {
			return db.Update(ctx, func(context.Context, tally.WriteTx) error { return nil })
		},
		"History":           func() error { _, err := db.History(ctx, customer(1), 0, 10); return err },
		"Outcome":           func() error { _, err := db.Outcome(ctx, "c", "k"); return err },
		"Rewards":           func() error { _, err := db.Rewards(ctx); return err },
		"CountTransactions": func() error { _, err := db.Audit().CountTransactions(ctx); return err },
		"ScanTransactions": func() error {
			return db.Audit().ScanTransactions(ctx, func(tally.Transaction) error { return nil })
		},
		"MigrationsCurrent": func() error { _, err := db.MigrationsCurrent(ctx); return err },
		"Migrate":           func() error { return db.Migrate(ctx) },
	}
	for name, check := range checks {
		if err := check(); tally.ErrorCode(err) != tally.EUNAVAILABLE {
			t.Errorf("%s = %v, want EUNAVAILABLE", name, err)
		}
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := db.Account(cancelled, customer(1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Account with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestTerminatedConnectionIsUnavailable: the server ending a connection in the middle of a write
// (57P01, "terminating connection due to administrator command") is EUNAVAILABLE.
func TestTerminatedConnectionIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	killer := pgtest.Open(t)
	// application_name marks the victim's connections so that the killer finds them.
	victimName := fmt.Sprintf("tally_victim_%d", time.Now().UnixNano())
	db, err := postgres.Open(ctx, pgtest.URL(t)+"&application_name="+victimName)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	err = db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		if err := tx.EnsureAccounts(ctx, []string{customer(1)}, time.Now()); err != nil {
			return err
		}
		mustExec(t, killer, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, victimName)
		_, err := tx.LockAccounts(ctx, []string{customer(1)})
		return err
	})
	wantCode(t, err, tally.EUNAVAILABLE)
	// The pool replaces the dead connection.
	if _, err := db.Account(ctx, tally.AccountIssuance); err != nil {
		t.Errorf("after reconnect: %v", err)
	}
}

func TestCancelledUpdate(t *testing.T) {
	t.Parallel()
	db := pgtest.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	err := db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		cancel()
		return tx.EnsureAccounts(ctx, []string{customer(1)}, time.Now())
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Update = %v, want context.Canceled", err)
	}
	if _, err := db.Account(context.Background(), customer(1)); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Errorf("cancelled write was committed: %v", err)
	}
}

// BenchmarkGroupCommit512 measures one Update carrying 512 accruals over 512 accounts, the shape of a
// full group-commit batch.
func BenchmarkGroupCommit512(b *testing.B) {
	db := pgtest.Open(b)
	n := 0
	for b.Loop() {
		ops := make([]accrual, 512)
		for i := range ops {
			ops[i] = accrual{channel: "bench", key: fmt.Sprintf("k%d", n), account: customer(n % 2048), amount: 1}
			n++
		}
		mustAccrue(b, db, ops...)
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "accruals/s")
}
