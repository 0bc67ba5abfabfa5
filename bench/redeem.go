package bench

import (
	"context"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
)

// RedeemConfig is a benchmark of portal redemptions over loopback HTTP: customers funded and given
// portal sessions, then redemptions of one reward at each concurrency level. With Units the reward has
// that many units (a flash sale): a level runs until they are sold, and the run checks that receipts and
// the units left add up to Units.
type RedeemConfig struct {
	URL, ClientID, ClientSecret string // the client needs ledger:read, ledger:write and admin
	Customers                   int
	Concurrency                 []int
	Duration                    time.Duration
	Units                       int // units of the reward; 0 for unlimited
}

// RedeemRun is what one level measured.
type RedeemRun struct {
	Concurrency int
	Result
	Units    int   // the reward's units at the start (0: unlimited)
	Receipts int   // redemptions answered 201
	Left     int64 // units left after the run, as the catalog says (-1: unlimited)
}

// Redeem runs cfg.
func Redeem(ctx context.Context, cfg RedeemConfig) ([]RedeemRun, error) {
	if err := checkLoopback(cfg.URL); err != nil {
		return nil, err
	}
	if cfg.Customers <= 0 {
		return nil, fmt.Errorf("--customers must be positive")
	}
	d := &driver{base: trimSlash(cfg.URL), client: newClient(256), customers: cfg.Customers, run: randomID()}
	if err := d.getToken(ctx, cfg.ClientID, cfg.ClientSecret); err != nil {
		return nil, err
	}
	sessions, err := d.fundAndOpenSessions(ctx)
	if err != nil {
		return nil, err
	}
	var runs []RedeemRun
	for _, c := range cfg.Concurrency {
		reward := "bench-" + d.run + "-" + strconv.Itoa(c)
		inventory := "null"
		if cfg.Units > 0 {
			inventory = strconv.Itoa(cfg.Units)
		}
		body := `{"name":"Bench reward","point_cost":1,"inventory":` + inventory + `,"fulfillment_method":"manual"}`
		if label, ok := d.send(ctx, "PUT", d.token, "/v1/catalog/rewards/"+reward, body, nil); !ok {
			return runs, fmt.Errorf("create the reward: %s (the client needs the admin scope)", label)
		}
		var receipts atomic.Int64
		lctx, stop := context.WithCancel(ctx)
		keys := reward + "-" // unique to this level, so that no key of one level replays in another
		res := Closed(lctx, c, cfg.Duration, 0, func(ctx context.Context, _, seq int) (string, bool) {
			i := mrand.IntN(d.customers)
			body := `{"customer_hash":"` + customerID(i) + `","reward_id":"` + reward + `","point_cost":1,"idempotency_key":"` + keys + strconv.Itoa(seq) + `"}`
			label, ok := d.send(ctx, "POST", sessions[i], "/v1/portal/redeem", body, nil)
			if ok && receipts.Add(1) == int64(cfg.Units) {
				stop() // sold out: the level is over
			}
			return label, ok
		})
		stop()
		run := RedeemRun{Concurrency: c, Result: res, Units: cfg.Units, Receipts: int(receipts.Load()), Left: -1}
		var rw struct {
			Inventory *int64 `json:"inventory"`
		}
		if label, ok := d.send(ctx, "GET", d.token, "/v1/catalog/rewards/"+reward, "", &rw); !ok {
			return runs, fmt.Errorf("read the reward back: %s", label)
		}
		if rw.Inventory != nil {
			run.Left = *rw.Inventory
		}
		if cfg.Units > 0 && (run.Left < 0 || int64(run.Receipts)+run.Left != int64(cfg.Units)) {
			return append(runs, run), fmt.Errorf("oversold or lost stock: %d receipts and %d units left of %d", run.Receipts, run.Left, cfg.Units)
		}
		runs = append(runs, run)
		if ctx.Err() != nil {
			return runs, ctx.Err()
		}
	}
	return runs, nil
}

// fundAndOpenSessions gives every customer plenty of points and a portal session, untimed.
func (d *driver) fundAndOpenSessions(ctx context.Context) ([]string, error) {
	sessions := make([]string, d.customers)
	var mu sync.Mutex
	res := Closed(ctx, 64, time.Hour, d.customers, func(ctx context.Context, _, i int) (string, bool) {
		body := `{"idempotency_key":"fund-` + d.run + `-` + strconv.Itoa(i) + `","customer_hash":"` + customerID(i) +
			`","kind":"accrual","amount":100000000,"reason":"bench"}`
		if label, ok := d.post(ctx, "/v1/ledger/transaction/process", body); !ok {
			return "fund " + label, false
		}
		var lk struct {
			SessionToken string `json:"session_token"`
		}
		label, ok := d.send(ctx, "POST", d.token, "/v1/ledger/balance/lookup", `{"customer_hash":"`+customerID(i)+`"}`, &lk)
		if !ok || lk.SessionToken == "" {
			return "lookup " + label, false
		}
		mu.Lock()
		sessions[i] = lk.SessionToken
		mu.Unlock()
		return label, true
	})
	if res.OK != d.customers {
		return nil, fmt.Errorf("set-up: %d of %d customers funded with a session (%v)", res.OK, d.customers, res.Outcomes)
	}
	return sessions, nil
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}

// PrintRedeem writes the runs as a table.
func PrintRedeem(w io.Writer, cfg RedeemConfig, runs []RedeemRun) error {
	units := "unlimited"
	if cfg.Units > 0 {
		units = strconv.Itoa(cfg.Units)
	}
	fmt.Fprintf(w, "http portal redeem: url=%s customers=%d units=%s duration=%s\n", cfg.URL, cfg.Customers, units, cfg.Duration)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "load\tredeem/s\tp50\tp99\tmax\treceipts\tleft\tstatuses\t")
	for _, r := range runs {
		left := "-"
		if r.Left >= 0 {
			left = strconv.FormatInt(r.Left, 10)
		}
		fmt.Fprintf(tw, "%d clients\t%.0f\t%s\t%s\t%s\t%d\t%s\t%s\t\n", r.Concurrency, r.Rate(),
			ms(r.Latency.Percentile(50)), ms(r.Latency.Percentile(99)), ms(r.Latency.Max()), r.Receipts, left, statuses(r.Outcomes))
	}
	return tw.Flush()
}
