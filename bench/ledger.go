package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/postgres"
)

// LedgerConfig is a benchmark of durable writes through ledger.Service, without HTTP.
type LedgerConfig struct {
	DB          string     // base database URL: every run gets a fresh database beside it
	Op          tally.Kind // KindAccrual or KindRedemption
	Customers   int
	Hot         bool // every goroutine writes to one customer
	Concurrency []int
	Duration    time.Duration
	Count       int // operations per run when > 0 (the run also ends at Duration)
	Workers     int // ledger batch workers; 0: 1 on SQLite, 2 on PostgreSQL (as serve does)
	MaxBatch    int // 0: the ledger's default
}

// OpenStore opens and migrates the store a database URL names.
type OpenStore func(ctx context.Context, url string) (tally.Store, error)

// LedgerRun is what one concurrency level measured.
type LedgerRun struct {
	Kind        string // the store
	Workers     int
	Concurrency int
	Result
	MeanBatch float64 // writes per committed batch during the timed run
	CPU       CPU     // Client is this process: the ledger and the goroutines calling it
}

// Setup amounts: customers exist before the timed run starts (as the pgbench accounts do), and a
// redeeming customer never runs dry.
const (
	accrualSetupPoints    = 1
	redemptionSetupPoints = 1_000_000_000_000
)

// Ledger runs cfg once per concurrency level, each on a fresh database.
func Ledger(ctx context.Context, cfg LedgerConfig, open OpenStore) ([]LedgerRun, error) {
	if cfg.Op != tally.KindAccrual && cfg.Op != tally.KindRedemption {
		return nil, fmt.Errorf("op must be accrual or redemption, not %q", cfg.Op)
	}
	customers := customerHashes(cfg.Customers)
	var runs []LedgerRun
	for _, c := range cfg.Concurrency {
		r, err := ledgerLevel(ctx, cfg, open, customers, c)
		if err != nil {
			return runs, err
		}
		runs = append(runs, r)
		if ctx.Err() != nil {
			return runs, ctx.Err()
		}
	}
	return runs, nil
}

func ledgerLevel(ctx context.Context, cfg LedgerConfig, open OpenStore, customers []string, concurrency int) (_ LedgerRun, err error) {
	fresh, err := NewFresh(ctx, cfg.DB)
	if err != nil {
		return LedgerRun{}, err
	}
	defer func() {
		if derr := fresh.Drop(context.WithoutCancel(ctx)); err == nil {
			err = derr
		}
	}()
	store, err := open(ctx, fresh.URL)
	if err != nil {
		return LedgerRun{}, err
	}
	defer store.Close()
	workers := cfg.Workers
	if workers == 0 {
		workers = map[string]int{"sqlite": 1, "postgres": 2}[fresh.Kind]
	}
	var ops, batches atomic.Int64
	svc := ledger.New(store, ledger.Options{Key: tally.RandomLedgerKey(), MaxBatch: cfg.MaxBatch, Workers: workers, ObserveBatch: func(n int) {
		ops.Add(int64(n))
		batches.Add(1)
	}})
	defer svc.Close()

	// PostgreSQL's planner statistics are kept as serve keeps them, with no ANALYZE of the benchmark's
	// own: a fresh database must be fast without one (postgres/analyze.go).
	if k, ok := store.(statisticsKeeper); ok {
		kctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			k.KeepStatistics(kctx, postgres.StatisticsInterval, slog.New(slog.DiscardHandler))
		}()
		defer func() { stop(); <-done }()
	}
	// Every customer is funded, hot or not, so that the tables are the same size as pgbench's.
	if err := fund(ctx, svc, cfg.Op, customers); err != nil {
		return LedgerRun{}, err
	}
	pick := func() string { return customers[rand.IntN(len(customers))] }
	if cfg.Hot {
		pick = func() string { return customers[0] }
	}
	ops.Store(0)
	batches.Store(0)
	var pgURL string
	if fresh.Kind == "postgres" {
		pgURL = fresh.URL
	}
	w, err := watchCPU(ctx, 0, pgURL)
	if err != nil {
		return LedgerRun{}, err
	}
	res := Closed(ctx, concurrency, cfg.Duration, cfg.Count, func(ctx context.Context, _, seq int) (string, bool) {
		_, err := svc.Write(ctx, ledger.Request{
			Kind: cfg.Op, Key: "run-" + strconv.Itoa(seq), Account: pick(), Amount: 1, Reason: "bench",
		})
		return outcome(err)
	})
	cpu := w.end(ctx, 0)
	run := LedgerRun{Kind: fresh.Kind, Workers: workers, Concurrency: concurrency, Result: res, CPU: cpu}
	if b := batches.Load(); b > 0 {
		run.MeanBatch = float64(ops.Load()) / float64(b)
	}
	return run, nil
}

// statisticsKeeper is a store that keeps its planner statistics fresh (PostgreSQL).
type statisticsKeeper interface {
	KeepStatistics(ctx context.Context, every time.Duration, log *slog.Logger)
}

// fund creates every customer's account before the timed run, with enough points to redeem from.
func fund(ctx context.Context, svc *ledger.Service, op tally.Kind, customers []string) error {
	points := int64(accrualSetupPoints)
	if op == tally.KindRedemption {
		points = redemptionSetupPoints
	}
	res := Closed(ctx, 64, time.Hour, len(customers), func(ctx context.Context, _, seq int) (string, bool) {
		_, err := svc.Accrue(ctx, ledger.Request{
			Key: "setup-" + strconv.Itoa(seq), Account: customers[seq], Amount: points, Reason: "bench setup",
		})
		return outcome(err)
	})
	if res.OK != len(customers) {
		return fmt.Errorf("setup: %d of %d customer accounts funded (%v)", res.OK, len(customers), res.Outcomes)
	}
	return nil
}

func outcome(err error) (string, bool) {
	if err == nil {
		return "ok", true
	}
	return string(tally.ErrorCode(err)), false
}

// customerHashes returns n distinct customer hashes (the ledger keys accounts by hash).
func customerHashes(n int) []string {
	out := make([]string, n)
	for i := range out {
		sum := sha256.Sum256([]byte("bench-customer-" + strconv.Itoa(i)))
		out[i] = hex.EncodeToString(sum[:])
	}
	return out
}
