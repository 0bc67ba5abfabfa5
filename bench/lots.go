package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/postgres"
)

// LotsConfig is the benchmark of the points lifecycle on PostgreSQL: a redemption that consumes many
// open lots, and the expiry job over many lapsed lots while accruals go on.
type LotsConfig struct {
	DB              string // base postgres:// URL: the run gets a fresh schema beside it
	RedeemCustomers int    // customers each holding LotsPerRedeem open lots, each redeemed whole once
	LotsPerRedeem   int
	ExpiryAccounts  int // accounts holding ExpiryLots lapsed lots between them
	ExpiryLots      int
	Concurrency     int           // accrual writers running beside the expiry job
	Baseline        time.Duration // how long the accruals run alone first
	LotsInFlight    int           // ledger.ExpireOptions.LotsInFlight (0: its default)
	ExpiryRate      int           // ledger.ExpireOptions.Rate (0: its default; negative: unpaced)
}

// LotsResult is what the run measured.
type LotsResult struct {
	Redeem         Latencies // one redemption consuming LotsPerRedeem lots
	RedeemCPU      CPU
	ExpiryElapsed  time.Duration
	ExpiryReport   ledger.ExpiryReport
	ExpiryCPU      CPU
	AccrualsAlone  Result // accruals before the expiry job
	AccrualsDuring Result // accruals while it ran
}

// Lots runs the lifecycle benchmark. The lots are seeded with SQL (transactions, postings and lots
// made by generate_series, as a year of accruals would have left them), not through the ledger, to keep
// the setup of a million lots short: their chain hashes are not real, so the run's schema is not one to
// verify, and it is dropped at the end.
func Lots(ctx context.Context, cfg LotsConfig, open OpenStore) (_ LotsResult, err error) {
	var out LotsResult
	fresh, err := NewFresh(ctx, cfg.DB)
	if err != nil {
		return out, err
	}
	if fresh.Kind != "postgres" {
		return out, fmt.Errorf("bench lots runs on PostgreSQL only (its setup is SQL)")
	}
	defer func() {
		if derr := fresh.Drop(context.WithoutCancel(ctx)); err == nil {
			err = derr
		}
	}()
	store, err := open(ctx, fresh.URL)
	if err != nil {
		return out, err
	}
	defer store.Close()
	if k, ok := store.(statisticsKeeper); ok {
		kctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			k.KeepStatistics(kctx, postgres.StatisticsInterval, slog.New(slog.DiscardHandler))
		}()
		defer func() { stop(); <-done }()
	}
	// The chains are sealed before the seeding, as on a ledger that ran all along.
	key := tally.RandomLedgerKey()
	if _, err := ledger.OpenChain(ctx, store, key); err != nil {
		return out, err
	}
	if err := seedLots(ctx, fresh.URL, "redeem", cfg.RedeemCustomers, cfg.LotsPerRedeem, false); err != nil {
		return out, err
	}
	perAccount := max(1, cfg.ExpiryLots/max(1, cfg.ExpiryAccounts))
	if err := seedLots(ctx, fresh.URL, "expire", cfg.ExpiryAccounts, perAccount, true); err != nil {
		return out, err
	}
	if err := pgExec(ctx, fresh.URL, "ANALYZE"); err != nil {
		return out, err
	}
	svc := ledger.New(store, ledger.Options{Key: key, Workers: 2})
	defer svc.Close()

	// One redemption at a time, each consuming a whole customer's lots.
	w, err := watchCPU(ctx, 0, fresh.URL)
	if err != nil {
		return out, err
	}
	var lat []time.Duration
	for i := range cfg.RedeemCustomers {
		start := time.Now()
		rc, err := svc.Redeem(ctx, ledger.Request{Key: "redeem-" + strconv.Itoa(i), Account: seedHash("redeem", i),
			Amount: int64(cfg.LotsPerRedeem), Reason: "bench"})
		if err != nil {
			return out, fmt.Errorf("redemption %d: %w", i, err)
		}
		lat = append(lat, time.Since(start))
		if rc.Balance != 0 {
			return out, fmt.Errorf("redemption %d left %d points", i, rc.Balance)
		}
	}
	out.RedeemCPU = w.end(ctx, 0)
	out.Redeem = NewLatencies(lat)

	// Accruals alone, then the expiry job with the same accruals beside it.
	accrue := func(prefix string) Op {
		return func(ctx context.Context, _, seq int) (string, bool) {
			_, err := svc.Accrue(ctx, ledger.Request{Key: prefix + strconv.Itoa(seq), Account: seedHash("live", seq%10000), Amount: 1, Reason: "bench"})
			return outcome(err)
		}
	}
	out.AccrualsAlone = Closed(ctx, cfg.Concurrency, cfg.Baseline, 0, accrue("alone-"))
	jobCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		out.AccrualsDuring = Closed(jobCtx, cfg.Concurrency, time.Hour, 0, accrue("during-"))
	}()
	w, err = watchCPU(ctx, 0, fresh.URL)
	if err != nil {
		stop()
		wg.Wait()
		return out, err
	}
	start := time.Now()
	out.ExpiryReport, err = svc.ExpireLapsed(ctx, ledger.ExpireOptions{LotsInFlight: cfg.LotsInFlight, Rate: cfg.ExpiryRate})
	out.ExpiryElapsed = time.Since(start)
	out.ExpiryCPU = w.end(ctx, 0)
	stop()
	wg.Wait()
	return out, err
}

func seedHash(prefix string, i int) string {
	sum := sha256.Sum256([]byte("bench-lots-" + prefix + "-" + strconv.Itoa(i)))
	return hex.EncodeToString(sum[:])
}

// seedLots makes accounts customers holding lots lots of 1 point each, lapsed an hour ago or never
// expiring.
func seedLots(ctx context.Context, url, prefix string, accounts, lots int, lapsed bool) error {
	if accounts <= 0 || lots <= 0 {
		return nil
	}
	expires := "NULL::timestamptz"
	if lapsed {
		expires = "now() - interval '1 hour'"
	}
	ids := make([]string, accounts)
	for i := range ids {
		ids[i] = "'" + seedHash(prefix, i) + "'"
	}
	list := "ARRAY[" + joinComma(ids) + "]::text[]"
	n := strconv.Itoa(lots)
	return pgExec(ctx, url,
		`INSERT INTO accounts (id, customer_hash, kind, status, balance, balance_version, created_at)
			SELECT id, id, 'customer', 'active', `+n+`, `+n+`, now() FROM unnest(`+list+`) AS id`,
		`CREATE TEMP TABLE seed AS SELECT nextval('ledger_seq') AS seq, id, g
			FROM unnest(`+list+`) AS id CROSS JOIN generate_series(1, `+n+`) AS g`,
		`INSERT INTO transactions (seq, kind, account_id, channel, idempotency_key, request_hash, amount, created_at, hash)
			SELECT seq, 'accrual', id, 'seed', '`+prefix+`-' || seq, '', 1, now() - interval '2 days', '' FROM seed`,
		`INSERT INTO postings (seq, idx, account_id, amount) SELECT seq, 0, id, 1 FROM seed`,
		`INSERT INTO postings (seq, idx, account_id, amount) SELECT seq, 1, 'system:issuance', -1 FROM seed`,
		`INSERT INTO lots (seq, account_id, points, remaining, expires_at, created_at)
			SELECT seq, id, 1, 1, `+expires+`, now() - interval '2 days' FROM seed`,
		`INSERT INTO account_shards (account_id, shard, balance) SELECT 'system:issuance', 0, -count(*) FROM seed
			ON CONFLICT (account_id, shard) DO UPDATE SET balance = account_shards.balance + EXCLUDED.balance`,
	)
}

func joinComma(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}

// PrintLots writes the result as Markdown.
func PrintLots(w io.Writer, cfg LotsConfig, r LotsResult) error {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }
	fmt.Fprintf(w, "redemption consuming %d lots (%d redemptions, one at a time): p50 %s, p90 %s, max %s; CPU per redemption: ledger %s, PostgreSQL %s\n",
		cfg.LotsPerRedeem, cfg.RedeemCustomers, ms(r.Redeem.Percentile(50)), ms(r.Redeem.Percentile(90)), ms(r.Redeem.Max()),
		ms(PerOp(r.RedeemCPU.Client, cfg.RedeemCustomers)), ms(PerOp(r.RedeemCPU.Postgres, cfg.RedeemCustomers)))
	rep := r.ExpiryReport
	fmt.Fprintf(w, "expiry job: %d lots of %d accounts in %s: %.0f lots/s, %d expiry transactions, %d points; CPU: ledger %s, PostgreSQL %s\n",
		rep.Lots, rep.Accounts, r.ExpiryElapsed.Round(time.Millisecond), float64(rep.Lots)/r.ExpiryElapsed.Seconds(), rep.Transactions, rep.Points,
		r.ExpiryCPU.Client.Round(time.Millisecond), r.ExpiryCPU.Postgres.Round(time.Millisecond))
	fmt.Fprintf(w, "accruals (%d writers): alone %.0f/s (p50 %s, p99 %s); during the expiry job %.0f/s (p50 %s, p99 %s), %d failed\n",
		cfg.Concurrency, r.AccrualsAlone.Rate(), ms(r.AccrualsAlone.Latency.Percentile(50)), ms(r.AccrualsAlone.Latency.Percentile(99)),
		r.AccrualsDuring.Rate(), ms(r.AccrualsDuring.Latency.Percentile(50)), ms(r.AccrualsDuring.Latency.Percentile(99)), r.AccrualsDuring.Failed())
	return nil
}
