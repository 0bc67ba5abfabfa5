package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/postgres"
)

// LotsConfig is a benchmark of the points lifecycle (issue 9) through ledger.Service, without HTTP:
// redemptions that consume many lots, and the expiry job over many lots while accruals go on.
type LotsConfig struct {
	DB string // base database URL: every part gets a fresh database beside it
	// Redeem: for each n, Customers customers each earn n lots (expiring on n different days, in
	// reverse order of earning, so that FIFO order is not seq order); then each makes, one after another,
	// a redemption of 1 point (which reads all n open lots and takes from one), and then a redemption of
	// everything left (which takes from all n).
	LotsPerCustomer []int
	Customers       int
	// Expire: ExpiryLots lots on accounts of LotsPerAccount lots each, half of them lapsing at one time
	// and half at a later one; the expiry job runs once alone over the first half and once beside
	// accruals from AccrualClients clients over the second. The accruals also run for Duration
	// before, without the job, for comparison. 0 skips this part.
	ExpiryLots     int
	LotsPerAccount int
	AccrualClients int
	Duration       time.Duration
	Workers        int // ledger batch workers; 0: 1 on SQLite, 2 on PostgreSQL (as serve does)
	ExpiryRate     int // ledger.ExpireOptions.Rate: 0 the job's default pace, negative unpaced
	Verify         bool
	Log            io.Writer // progress; nil: none
}

// LotsRedeemRun is what one lots-per-customer level measured.
type LotsRedeemRun struct {
	Kind        string
	Lots        int
	Seed        Result // the accruals that made the lots (64 clients)
	One, All    Result // one after another: 1 point each, then each customer's whole remainder
	OneCPU      CPU
	AllCPU      CPU
	LotsPerSec  float64 // lots consumed per second by the All redemptions
	VerifyError string
}

// LotsExpiryRun is what the expiry part measured.
type LotsExpiryRun struct {
	Kind              string
	Lots, Accounts    int
	Clients           int // accrual clients
	Seed              Result
	SeedCPU           CPU
	Alone             ledger.ExpiryReport
	AloneTook         time.Duration
	AloneCPU          CPU
	Beside            ledger.ExpiryReport
	BesideTook        time.Duration
	BesideCPU         CPU
	AccrualsBefore    Result // AccrualClients clients, Duration, no expiry job
	AccrualsDuring    Result // the same clients while the second expiry run lasted
	AccrualsBeforeCPU CPU
	VerifyTook        time.Duration
	Verified          string // the verify report, or its error
}

// Lots runs the redemption levels and then the expiry part.
func Lots(ctx context.Context, cfg LotsConfig, open OpenStore) ([]LotsRedeemRun, *LotsExpiryRun, error) {
	var runs []LotsRedeemRun
	for _, n := range cfg.LotsPerCustomer {
		r, err := lotsRedeem(ctx, cfg, open, n)
		if err != nil {
			return runs, nil, err
		}
		runs = append(runs, r)
	}
	if cfg.ExpiryLots <= 0 {
		return runs, nil, nil
	}
	e, err := lotsExpiry(ctx, cfg, open)
	return runs, e, err
}

// lotsEnv is a fresh database with a ledger service on it, whose clock can be moved forward.
type lotsEnv struct {
	fresh  *Fresh
	store  tally.Store
	svc    *ledger.Service
	offset atomic.Int64 // added to time.Now by the service's clock
	key    *tally.LedgerKey
	stop   func()
}

func newLotsEnv(ctx context.Context, cfg LotsConfig, open OpenStore, maxBatch int) (*lotsEnv, error) {
	fresh, err := NewFresh(ctx, cfg.DB)
	if err != nil {
		return nil, err
	}
	e := &lotsEnv{fresh: fresh}
	e.store, err = open(ctx, fresh.URL)
	if err != nil {
		_ = fresh.Drop(context.WithoutCancel(ctx))
		return nil, err
	}
	workers := cfg.Workers
	if workers == 0 {
		workers = map[string]int{"sqlite": 1, "postgres": 2}[fresh.Kind]
	}
	e.key = tally.RandomLedgerKey()
	e.svc = ledger.New(e.store, ledger.Options{Key: e.key, MaxBatch: maxBatch, Workers: workers,
		Clock: func() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }})
	kctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if k, ok := e.store.(statisticsKeeper); ok {
			k.KeepStatistics(kctx, postgres.StatisticsInterval, slog.New(slog.DiscardHandler))
		}
	}()
	e.stop = func() { stop(); <-done }
	return e, nil
}

func (e *lotsEnv) close(ctx context.Context) error {
	e.stop()
	e.svc.Close()
	e.store.Close()
	return e.fresh.Drop(context.WithoutCancel(ctx))
}

func (e *lotsEnv) pgURL() string {
	if e.fresh.Kind == "postgres" {
		return e.fresh.URL
	}
	return ""
}

func (e *lotsEnv) verify(ctx context.Context) (string, error) {
	rep, err := ledger.Verify(ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key})
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("verified: %d accounts, %d transactions, %d postings, %d lots", rep.Accounts, rep.Transactions, rep.Postings, rep.Lots), nil
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, "# %s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
	}
}

func lotsRedeem(ctx context.Context, cfg LotsConfig, open OpenStore, n int) (_ LotsRedeemRun, err error) {
	e, err := newLotsEnv(ctx, cfg, open, 256)
	if err != nil {
		return LotsRedeemRun{}, err
	}
	defer func() {
		if cerr := e.close(ctx); err == nil {
			err = cerr
		}
	}()
	run := LotsRedeemRun{Kind: e.fresh.Kind, Lots: n}
	customers := customerHashes(cfg.Customers)
	base := time.Now().UTC().Add(24 * time.Hour).Truncate(time.Second)
	// Lot i of a customer (earned i-th) expires on day n-i: the newest lot goes first.
	logf(cfg.Log, "redeem %d lots: seeding %d accruals", n, n*len(customers))
	run.Seed = Closed(ctx, 64, time.Hour, n*len(customers), func(ctx context.Context, _, seq int) (string, bool) {
		c, i := seq%len(customers), seq/len(customers)
		exp := base.Add(time.Duration(n-i) * 24 * time.Hour)
		_, err := e.svc.Write(ctx, ledger.Request{Kind: tally.KindAccrual, Key: "seed-" + strconv.Itoa(seq),
			Account: customers[c], Amount: 10, Reason: "bench seed", ExpiresAt: &exp})
		return outcome(err)
	})
	if run.Seed.OK != n*len(customers) {
		return run, fmt.Errorf("seed: %d of %d accruals (%v)", run.Seed.OK, n*len(customers), run.Seed.Outcomes)
	}
	redeem := func(key string, amount func(c int) int64) (Result, CPU, error) {
		w, err := watchCPU(ctx, 0, e.pgURL())
		if err != nil {
			return Result{}, CPU{}, err
		}
		res := Closed(ctx, 1, time.Hour, len(customers), func(ctx context.Context, _, seq int) (string, bool) {
			_, err := e.svc.Write(ctx, ledger.Request{Kind: tally.KindRedemption, Key: key + strconv.Itoa(seq),
				Account: customers[seq], Amount: amount(seq), Reason: "bench"})
			return outcome(err)
		})
		return res, w.end(ctx, 0), nil
	}
	logf(cfg.Log, "redeem %d lots: 1-point redemptions", n)
	if run.One, run.OneCPU, err = redeem("one-", func(int) int64 { return 1 }); err != nil {
		return run, err
	}
	logf(cfg.Log, "redeem %d lots: whole-balance redemptions", n)
	if run.All, run.AllCPU, err = redeem("all-", func(int) int64 { return int64(10*n - 1) }); err != nil {
		return run, err
	}
	if run.One.OK != len(customers) || run.All.OK != len(customers) {
		return run, fmt.Errorf("redemptions: %d and %d of %d succeeded (%v, %v)", run.One.OK, run.All.OK, len(customers), run.One.Outcomes, run.All.Outcomes)
	}
	if s := run.All.Elapsed.Seconds(); s > 0 {
		run.LotsPerSec = float64(n*len(customers)) / s
	}
	// Every lot is spent: the lots must say so.
	for _, c := range customers {
		lots, err := e.store.AccountLots(ctx, c)
		if err != nil {
			return run, err
		}
		if len(lots) != 0 {
			return run, fmt.Errorf("customer %s has %d open lots after redeeming everything", c, len(lots))
		}
	}
	if cfg.Verify {
		if _, err := e.verify(ctx); err != nil {
			run.VerifyError = err.Error()
		}
	}
	return run, nil
}

func lotsExpiry(ctx context.Context, cfg LotsConfig, open OpenStore) (_ *LotsExpiryRun, err error) {
	e, err := newLotsEnv(ctx, cfg, open, 1024)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := e.close(ctx); err == nil {
			err = cerr
		}
	}()
	per := max(1, cfg.LotsPerAccount)
	accounts := (cfg.ExpiryLots + per - 1) / per
	run := &LotsExpiryRun{Kind: e.fresh.Kind, Lots: accounts * per, Accounts: accounts, Clients: cfg.AccrualClients}
	// The accruals beside the job go to 10,000 other customers, whose points never expire (as most of a
	// programme's writes are to accounts with nothing lapsing).
	all := customerHashes(accounts + 10000)
	holders, earners := all[:accounts], all[accounts:]
	now := time.Now().UTC().Truncate(time.Second)
	first, second := now.Add(-time.Hour), now.Add(time.Hour) // the first half has lapsed already
	total := accounts * per
	logf(cfg.Log, "expiry: seeding %d lots on %d accounts", total, accounts)
	w, err := watchCPU(ctx, 0, e.pgURL())
	if err != nil {
		return run, err
	}
	var done atomic.Int64
	seeded := make(chan struct{})
	go func() {
		progress := time.NewTicker(10 * time.Second)
		defer progress.Stop()
		for {
			select {
			case <-progress.C:
				logf(cfg.Log, "expiry: %d lots seeded", done.Load())
			case <-seeded:
				return
			}
		}
	}()
	run.Seed = Closed(ctx, 512, 24*time.Hour, total+len(earners), func(ctx context.Context, _, seq int) (string, bool) {
		defer done.Add(1)
		if seq >= total { // the earners' accounts, created before the timed runs
			_, err := e.svc.Write(ctx, ledger.Request{Kind: tally.KindAccrual, Key: "earner-" + strconv.Itoa(seq),
				Account: earners[seq-total], Amount: 1, Reason: "bench seed"})
			return outcome(err)
		}
		a, i := seq%accounts, seq/accounts
		exp := first
		if a%2 == 1 {
			exp = second
		}
		exp = exp.Add(-time.Duration(i) * time.Minute)
		_, err := e.svc.Write(ctx, ledger.Request{Kind: tally.KindAccrual, Key: "seed-" + strconv.Itoa(seq),
			Account: holders[a], Amount: 10, Reason: "bench seed", ExpiresAt: &exp})
		return outcome(err)
	})
	close(seeded)
	run.SeedCPU = w.end(ctx, 0)
	if run.Seed.OK != total+len(earners) {
		return run, fmt.Errorf("seed: %d of %d accruals (%v)", run.Seed.OK, total+len(earners), run.Seed.Outcomes)
	}
	accrue := func(ctx context.Context, d time.Duration, prefix string) Result {
		return Closed(ctx, cfg.AccrualClients, d, 0, func(ctx context.Context, _, seq int) (string, bool) {
			// Not cancelled when the run ends: every write has its answer, and none commits after it.
			_, err := e.svc.Write(context.WithoutCancel(ctx), ledger.Request{Kind: tally.KindAccrual, Key: prefix + strconv.Itoa(seq),
				Account: earners[seq%len(earners)], Amount: 1, Reason: "bench"})
			return outcome(err)
		})
	}
	expire := func() (ledger.ExpiryReport, time.Duration, CPU, error) {
		w, err := watchCPU(ctx, 0, e.pgURL())
		if err != nil {
			return ledger.ExpiryReport{}, 0, CPU{}, err
		}
		start := time.Now()
		rep, err := e.svc.ExpireLapsed(ctx, ledger.ExpireOptions{Rate: cfg.ExpiryRate, Progress: func(r ledger.ExpiryReport) {
			if r.Accounts%(256*10) == 0 {
				logf(cfg.Log, "expiry: %d accounts, %d lots expired", r.Accounts, r.Lots)
			}
		}})
		return rep, time.Since(start), w.end(ctx, 0), err
	}
	logf(cfg.Log, "expiry: the job alone over the first half")
	if run.Alone, run.AloneTook, run.AloneCPU, err = expire(); err != nil {
		return run, err
	}
	logf(cfg.Log, "expiry: accruals from %d clients for %s, no job", cfg.AccrualClients, cfg.Duration)
	if w, err = watchCPU(ctx, 0, e.pgURL()); err != nil {
		return run, err
	}
	run.AccrualsBefore = accrue(ctx, cfg.Duration, "before-")
	run.AccrualsBeforeCPU = w.end(ctx, 0)
	logf(cfg.Log, "expiry: the job over the second half beside the accruals")
	e.offset.Store(int64(2 * time.Hour))
	actx, stopAccruals := context.WithCancel(ctx)
	accrued := make(chan Result)
	go func() { accrued <- accrue(actx, 24*time.Hour, "during-") }()
	run.Beside, run.BesideTook, run.BesideCPU, err = expire()
	stopAccruals()
	run.AccrualsDuring = <-accrued
	if err != nil {
		return run, err
	}
	if cfg.Verify {
		logf(cfg.Log, "expiry: verifying the ledger")
		start := time.Now()
		run.Verified, err = e.verify(ctx)
		run.VerifyTook = time.Since(start)
		if err != nil {
			run.Verified = "FAILED: " + err.Error()
		}
	}
	return run, nil
}

// PrintLots writes the results as a few readable lines each.
func PrintLots(w io.Writer, redeems []LotsRedeemRun, exp *LotsExpiryRun) error {
	var err error
	p := func(format string, args ...any) {
		if err == nil {
			_, err = fmt.Fprintf(w, format+"\n", args...)
		}
	}
	for _, r := range redeems {
		n := r.One.OK
		p("redeem %s, %d open lots per customer, %d customers (seeded at %.0f accruals/s):", r.Kind, r.Lots, n, r.Seed.Rate())
		p("  1 point (reads %d lots, takes 1):  p50 %s  mean %s  max %s  CPU per redemption: ledger %s, PostgreSQL %s",
			r.Lots, ms(r.One.Latency.Percentile(50)), ms(mean(r.One)), ms(r.One.Latency.Max()), PerOp(r.OneCPU.Client, n), PerOp(r.OneCPU.Postgres, n))
		p("  the rest (takes %d lots):          p50 %s  mean %s  max %s  CPU per redemption: ledger %s, PostgreSQL %s; %.0f lots/s",
			r.Lots, ms(r.All.Latency.Percentile(50)), ms(mean(r.All)), ms(r.All.Latency.Max()), PerOp(r.AllCPU.Client, n), PerOp(r.AllCPU.Postgres, n), r.LotsPerSec)
		if r.VerifyError != "" {
			p("  verify FAILED: %s", r.VerifyError)
		}
	}
	if exp == nil {
		return err
	}
	e := exp
	p("expiry %s: %d lots on %d accounts, seeded through the ledger in %s (%.0f accruals/s, CPU per accrual: ledger %s, PostgreSQL %s)",
		e.Kind, e.Lots, e.Accounts, e.Seed.Elapsed.Round(time.Second), e.Seed.Rate(), PerOp(e.SeedCPU.Client, e.Seed.OK), PerOp(e.SeedCPU.Postgres, e.Seed.OK))
	for _, x := range []struct {
		name string
		rep  ledger.ExpiryReport
		took time.Duration
		cpu  CPU
	}{{"alone", e.Alone, e.AloneTook, e.AloneCPU}, {"beside accruals", e.Beside, e.BesideTook, e.BesideCPU}} {
		lps := float64(x.rep.Lots) / x.took.Seconds()
		p("  job %s: %d lots of %d accounts in %s: %.0f lots/s, %d expiry transactions; CPU per lot: ledger %s, PostgreSQL %s; machine %.0f%% busy",
			x.name, x.rep.Lots, x.rep.Accounts, x.took.Round(time.Millisecond), lps, x.rep.Transactions,
			PerOp(x.cpu.Client, int(x.rep.Lots)), PerOp(x.cpu.Postgres, int(x.rep.Lots)), 100*x.cpu.Busy)
	}
	p("  accruals, %d clients, no job:     %.0f/s  p50 %s  p99 %s  (CPU per accrual: ledger %s, PostgreSQL %s)",
		e.Clients, e.AccrualsBefore.Rate(), ms(e.AccrualsBefore.Latency.Percentile(50)), ms(e.AccrualsBefore.Latency.Percentile(99)),
		PerOp(e.AccrualsBeforeCPU.Client, e.AccrualsBefore.OK), PerOp(e.AccrualsBeforeCPU.Postgres, e.AccrualsBefore.OK))
	p("  accruals, beside the job:        %.0f/s  p50 %s  p99 %s  max %s  (%d ok, failures: %s)",
		e.AccrualsDuring.Rate(), ms(e.AccrualsDuring.Latency.Percentile(50)), ms(e.AccrualsDuring.Latency.Percentile(99)), ms(e.AccrualsDuring.Latency.Max()), e.AccrualsDuring.OK, failures(e.AccrualsDuring))
	if e.Verified != "" {
		p("  %s (%s)", e.Verified, e.VerifyTook.Round(time.Second))
	}
	return err
}

func mean(r Result) time.Duration {
	if r.OK == 0 {
		return 0
	}
	return r.Elapsed / time.Duration(r.OK)
}
