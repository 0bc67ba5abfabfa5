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
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/postgres/pgtest"
)

// customer returns a customer hash made from n.
func customer(n int) string { return fmt.Sprintf("%064x", n) }

// testKey is the ledger key of every ledger these tests run: ledgers over one database must share it.
var testKey = tally.RandomLedgerKey()

// accrual is one accrual to write through the ledger.
type accrual struct {
	channel, key, account string
	amount                int64
}

// mustAccrue writes accruals through the ledger, all at once so that they share batches, and returns the
// seq of each by key.
func mustAccrue(tb testing.TB, db *postgres.DB, ops ...accrual) map[string]int64 {
	tb.Helper()
	l := ledger.New(db, ledger.Options{Key: testKey, MaxBatch: max(len(ops), 1)})
	defer l.Close()
	var mu sync.Mutex
	seqs := make(map[string]int64, len(ops))
	errs := make([]error, len(ops))
	var wg sync.WaitGroup
	for i, op := range ops {
		wg.Go(func() {
			rc, err := l.Accrue(context.Background(), ledger.Request{Channel: op.channel, Key: op.key, Account: op.account, Amount: op.amount})
			errs[i] = err
			mu.Lock()
			seqs[op.key] = rc.Transaction.Seq
			mu.Unlock()
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
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

// holdStore keeps the first write transaction open after the ledger's work, before its commit, until
// release is closed: a writer caught between claiming its keys and committing.
type holdStore struct {
	*postgres.DB
	once    sync.Once
	held    chan struct{} // closed when a transaction is held open
	release chan struct{}
}

func newHoldStore(db *postgres.DB) *holdStore {
	return &holdStore{DB: db, held: make(chan struct{}), release: make(chan struct{})}
}

func (s *holdStore) Update(ctx context.Context, fn func(ctx context.Context, tx tally.WriteTx) error) error {
	return s.DB.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		if err := fn(ctx, tx); err != nil {
			return err
		}
		s.once.Do(func() { close(s.held) })
		<-s.release
		return nil
	})
}

// TestClaimRace: a second replica writing a key that a first replica holds uncommitted waits for it,
// then replays the first replica's outcome; no unique violation leaks and nothing is applied twice.
func TestClaimRace(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	hold := newHoldStore(db)
	key := tally.RandomLedgerKey()
	first, second := ledger.New(hold, ledger.Options{Key: key}), ledger.New(db, ledger.Options{Key: key})
	defer second.Close()
	defer first.Close()
	req := ledger.Request{Channel: "genesys", Key: "evt-1", Account: customer(1), Amount: 10}

	type answer struct {
		rc  ledger.Receipt
		err error
	}
	firstDone, secondDone := make(chan answer, 1), make(chan answer, 1)
	go func() { rc, err := first.Accrue(ctx, req); firstDone <- answer{rc, err} }()
	<-hold.held
	go func() { rc, err := second.Accrue(ctx, req); secondDone <- answer{rc, err} }()
	waitForLockWait(t, db)
	close(hold.release)
	a, b := <-firstDone, <-secondDone
	if a.err != nil || a.rc.Replayed {
		t.Fatalf("first writer: %+v, %v; want a fresh write", a.rc, a.err)
	}
	if b.err != nil || !b.rc.Replayed || b.rc.Transaction.Seq != a.rc.Transaction.Seq || b.rc.Balance != 10 {
		t.Fatalf("second writer: %+v, %v; want the first writer's receipt (seq %d) replayed", b.rc, b.err, a.rc.Transaction.Seq)
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
	l := ledger.New(db, ledger.Options{Key: testKey})
	defer l.Close()
	req := ledger.Request{Channel: "genesys", Key: "evt-1", Account: customer(1), Amount: 10}
	claimed := make(chan struct{})
	release := make(chan struct{})
	firstDone := make(chan error, 1)
	abort := errors.New("abort")
	go func() {
		firstDone <- db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
			if _, err := tx.ClaimOutcomes(ctx, []tally.Outcome{{OutcomeKey: tally.OutcomeKey{Channel: req.Channel, Key: req.Key}}}); err != nil {
				return err
			}
			close(claimed)
			<-release
			return abort
		})
	}()
	<-claimed
	type answer struct {
		rc  ledger.Receipt
		err error
	}
	secondDone := make(chan answer, 1)
	go func() { rc, err := l.Accrue(ctx, req); secondDone <- answer{rc, err} }()
	waitForLockWait(t, db)
	close(release)
	if err := <-firstDone; err != abort {
		t.Fatalf("first writer: %v, want abort", err)
	}
	if b := <-secondDone; b.err != nil || b.rc.Replayed || b.rc.Transaction.Seq == 0 || b.rc.Balance != 10 {
		t.Fatalf("second writer: %+v, %v; want its own fresh write", b.rc, b.err)
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
			if tx.AccountID != alice || len(tx.Postings) != 2 || tx.Postings[0].AccountID != alice {
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

// BenchmarkGroupCommit512 measures 512 concurrent accruals over 512 accounts through the ledger, which
// commits them in a few group-commit batches of up to 512.
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
