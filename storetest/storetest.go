// Package storetest is the conformance suite every tally.Store runs: the ledger's promises (idempotency,
// no lost or doubled points, tamper evidence, privacy) checked through the real ledger service over a
// real database.
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// Harness adapts the suite to one store.
type Harness struct {
	// Open returns a fresh, migrated, empty store that the test owns (closed by the suite).
	Open func(t testing.TB) tally.Store
	// Exec runs plain SQL against the store's database, as an attacker with database access would.
	Exec func(t testing.TB, s tally.Store, sql string)
	// Dump returns every byte the store keeps of its data (the database files, or every row as text).
	Dump func(t testing.TB, s tally.Store) []byte
	// Workers is the ledger's batch concurrency to test with (default 1).
	Workers int
}

// Run runs the whole suite.
func Run(t *testing.T, h Harness) {
	t.Run("Validation", func(t *testing.T) { t.Parallel(); testValidation(t, h) })
	t.Run("Idempotency", func(t *testing.T) { t.Parallel(); testIdempotency(t, h) })
	t.Run("BusinessRules", func(t *testing.T) { t.Parallel(); testBusinessRules(t, h) })
	t.Run("Reversal", func(t *testing.T) { t.Parallel(); testReversal(t, h) })
	t.Run("History", func(t *testing.T) { t.Parallel(); testHistory(t, h) })
	t.Run("Concurrency", func(t *testing.T) { t.Parallel(); testConcurrency(t, h) })
	t.Run("SameKeyRace", func(t *testing.T) { t.Parallel(); testSameKeyRace(t, h) })
	t.Run("Namespaces", func(t *testing.T) { t.Parallel(); testNamespaces(t, h) })
	t.Run("Tamper", func(t *testing.T) { t.Parallel(); testTamper(t, h) })
	t.Run("Audit", func(t *testing.T) { t.Parallel(); testAudit(t, h) })
	t.Run("Redeem", func(t *testing.T) { t.Parallel(); testRedeem(t, h) })
	t.Run("BadText", func(t *testing.T) { t.Parallel(); testBadText(t, h) })
	t.Run("Privacy", func(t *testing.T) { t.Parallel(); testPrivacy(t, h) })
	t.Run("Purge", func(t *testing.T) { t.Parallel(); testPurge(t, h) })
	t.Run("Property", func(t *testing.T) { t.Parallel(); testProperty(t, h) })
	t.Run("WriteTx", func(t *testing.T) { t.Parallel(); testWriteTx(t, h) })
	t.Run("Invariant", func(t *testing.T) { t.Parallel(); testInvariant(t, h) })
	t.Run("Fulfillment", func(t *testing.T) { t.Parallel(); testFulfillment(t, h) })
	t.Run("Mirror", func(t *testing.T) { t.Parallel(); testMirror(t, h) })
	t.Run("Catalog", func(t *testing.T) { t.Parallel(); testCatalog(t, h) })
	t.Run("Reports", func(t *testing.T) { t.Parallel(); testReports(t, h) })
	t.Run("LotStore", func(t *testing.T) { t.Parallel(); testLotStore(t, h) })
	t.Run("Lots", func(t *testing.T) { t.Parallel(); testLots(t, h) })
	t.Run("Programme", func(t *testing.T) { t.Parallel(); testProgramme(t, h) })
	t.Run("Erasure", func(t *testing.T) { t.Parallel(); testErasure(t, h) })
	t.Run("ErasureWhileWriting", func(t *testing.T) { t.Parallel(); testErasureWhileWriting(t, h) })
	t.Run("Webhooks", func(t *testing.T) { t.Parallel(); testWebhooks(t, h) })
	t.Run("WarnExpiring", func(t *testing.T) { t.Parallel(); testWarnExpiring(t, h) })
	t.Run("TierEvents", func(t *testing.T) { t.Parallel(); testTierEvents(t, h) })
}

// env is one test's ledger over one fresh store.
type env struct {
	t      tb // where failures go: the test that made the env, or the one given to on
	h      Harness
	store  tally.Store
	ledger *ledger.Service
	key    *tally.LedgerKey // the ledger key of ledger
	hasher *tally.CustomerHasher
	ctx    context.Context
}

func newEnv(t testing.TB, h Harness) *env {
	t.Helper()
	s := h.Open(t)
	key := tally.RandomLedgerKey()
	l := ledger.New(s, ledger.Options{Key: key, Workers: h.Workers})
	t.Cleanup(func() { l.Close(); s.Close() })
	hasher, err := tally.NewCustomerHasher([]byte("storetest-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return &env{t: t, h: h, store: s, ledger: l, key: key, hasher: hasher, ctx: ctx}
}

// tb is what env's helpers need of a test: a *testing.T, or a *rapid.T inside a property check.
type tb interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// on returns e reporting to t: for a subtest, or a property run, that goes on with e's ledger and store.
// A failure must end the test that met it, not the parent that built e.
func (e *env) on(t tb) *env {
	c := *e
	c.t = t
	return &c
}

func (e *env) customer(raw string) string { return e.hasher.Hash(raw) }

// mustWrite applies a write that must succeed.
func (e *env) mustWrite(r ledger.Request) ledger.Receipt {
	e.t.Helper()
	rc, err := e.ledger.Write(e.ctx, r)
	if err != nil {
		e.t.Fatalf("%s %q: %v", r.Kind, r.Key, err)
	}
	return rc
}

func (e *env) mustAccrue(account, key string, amount int64) ledger.Receipt {
	e.t.Helper()
	return e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Account: account, Key: key, Amount: amount, Reason: "test"})
}

// wantCode checks that err carries code.
func wantCode(t testing.TB, err error, code tally.Code) {
	t.Helper()
	if got := tally.ErrorCode(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func (e *env) balance(account string) int64 {
	e.t.Helper()
	a, err := e.ledger.Balance(e.ctx, account)
	if tally.ErrorCode(err) == tally.ENOTFOUND {
		return 0
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return a.Balance
}

// mustVerify runs the offline audit and fails the test on any breach.
func (e *env) mustVerify() ledger.VerifyReport {
	e.t.Helper()
	rep, err := ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key})
	if err != nil {
		e.t.Fatalf("verify: %v", err)
	}
	return rep
}
