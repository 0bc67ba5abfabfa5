package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// HTTPConfig is a benchmark of a running `tally serve` over loopback HTTP.
type HTTPConfig struct {
	URL          string // base URL of the server, e.g. http://127.0.0.1:8080
	ClientID     string
	ClientSecret string
	Op           string // accrual, lookup, mixed, or warmup (the warm-up pass alone)
	Customers    int
	Concurrency  []int // accrual goroutines (accrual, mixed)
	Duration     time.Duration
	Count        int     // accruals per run when > 0 (the run also ends at Duration)
	Rate         float64 // lookups per second, open loop (lookup, mixed)
	Warmup       bool    // first write one accrual per customer, so that every account exists (reported as a run)
	Body         string  // what an accrual sends: "event" (the guide's webhook event, default) or "transaction"
	ServerPID    int     // when > 0, the server's CPU time per run is measured (from /proc)
	WatchDB      string  // when set, the CPU time of this PostgreSQL database's backends per run too
}

// HTTPRun is what one run measured for one kind of request.
type HTTPRun struct {
	Op          string  // accrual or lookup
	Concurrency int     // accrual goroutines; 0 for open-loop lookups
	Offered     float64 // lookups per second sent, open loop
	Result
	CPU    *CPU // nil when not measured
	CPUOps int  // the requests CPU was spent on (in a mixed run, the lookups too)
}

// warmupClients send the warm-up's accruals, one per customer.
const warmupClients = 64

// Customer identifiers as a contact centre would send them; the server hashes them.
func customerID(i int) string { return "bench-customer-" + strconv.Itoa(i) }

// HTTP runs cfg: accruals once per concurrency level, lookups once, mixed once per concurrency level
// with lookups at cfg.Rate beside the accruals.
func HTTP(ctx context.Context, cfg HTTPConfig) ([]HTTPRun, error) {
	if err := checkLoopback(cfg.URL); err != nil {
		return nil, err
	}
	switch cfg.Op {
	case "accrual", "lookup", "mixed", "warmup":
	default:
		return nil, fmt.Errorf("op must be accrual, lookup, mixed or warmup, not %q", cfg.Op)
	}
	switch cfg.Body {
	case "":
		cfg.Body = "event"
	case "event", "transaction":
	default:
		return nil, fmt.Errorf("body must be event or transaction, not %q", cfg.Body)
	}
	if (cfg.Op == "lookup" || cfg.Op == "mixed") && cfg.Rate <= 0 {
		return nil, fmt.Errorf("lookups need a positive --rate")
	}
	conns := 256
	for _, c := range cfg.Concurrency {
		conns = max(conns, c)
	}
	d := &driver{base: strings.TrimSuffix(cfg.URL, "/"), client: newClient(conns), customers: cfg.Customers, run: randomID(), body: cfg.Body}
	if err := d.getToken(ctx, cfg.ClientID, cfg.ClientSecret); err != nil {
		return nil, err
	}
	var runs []HTTPRun
	if cfg.Warmup || cfg.Op == "warmup" {
		// Timed too: on a fresh database these are the deployment's first requests.
		w, err := startWatch(ctx, cfg)
		if err != nil {
			return nil, err
		}
		res := Closed(ctx, warmupClients, time.Hour, cfg.Customers, func(ctx context.Context, _, seq int) (string, bool) {
			return d.accrue(ctx, "warm-"+d.run+"-"+strconv.Itoa(seq), customerID(seq))
		})
		cpu := w.end(ctx)
		if res.OK != cfg.Customers {
			return nil, fmt.Errorf("warm-up: %d of %d accruals succeeded (%v)", res.OK, cfg.Customers, res.Outcomes)
		}
		runs = append(runs, HTTPRun{Op: "warm-up", Concurrency: warmupClients, Result: res, CPU: cpu, CPUOps: res.OK})
	}
	if cfg.Op == "warmup" {
		return runs, nil
	}
	if cfg.Op == "lookup" {
		w, err := startWatch(ctx, cfg)
		if err != nil {
			return runs, err
		}
		res := d.lookups(ctx, cfg)
		return append(runs, HTTPRun{Op: "lookup", Offered: cfg.Rate, Result: res, CPU: w.end(ctx), CPUOps: res.OK}), nil
	}
	for _, c := range cfg.Concurrency {
		w, err := startWatch(ctx, cfg)
		if err != nil {
			return runs, err
		}
		var lookups Result
		var wg sync.WaitGroup
		if cfg.Op == "mixed" {
			wg.Add(1)
			go func() { defer wg.Done(); lookups = d.lookups(ctx, cfg) }()
		}
		prefix := "b-" + d.run + "-" + strconv.Itoa(c) + "-"
		acc := Closed(ctx, c, cfg.Duration, cfg.Count, func(ctx context.Context, _, seq int) (string, bool) {
			return d.accrue(ctx, prefix+strconv.Itoa(seq), customerID(mrand.IntN(d.customers)))
		})
		wg.Wait()
		runs = append(runs, HTTPRun{Op: "accrual", Concurrency: c, Result: acc, CPU: w.end(ctx), CPUOps: acc.OK + lookups.OK})
		if cfg.Op == "mixed" {
			runs = append(runs, HTTPRun{Op: "lookup", Offered: cfg.Rate, Result: lookups})
		}
		if ctx.Err() != nil {
			return runs, ctx.Err()
		}
	}
	return runs, nil
}

// watch measures the CPU time of one run, when cfg asks for it.
type watch struct{ w *cpuWatch }

func startWatch(ctx context.Context, cfg HTTPConfig) (watch, error) {
	if cfg.ServerPID <= 0 && cfg.WatchDB == "" {
		return watch{}, nil
	}
	w, err := watchCPU(ctx, cfg.ServerPID, cfg.WatchDB)
	return watch{w}, err
}

// end returns the run's CPU time, nil when it was not measured.
func (w watch) end(ctx context.Context) *CPU {
	if w.w == nil {
		return nil
	}
	c := w.w.end(ctx, 0)
	return &c
}

// driver sends the requests.
type driver struct {
	base      string
	client    *http.Client
	token     string
	customers int
	run       string // unique per invocation, in idempotency keys
	body      string // "event" or "transaction"
}

// newClient keeps up to conns connections open to the server, so that no request pays for a new
// TCP connection once the run is under way.
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     2 * time.Minute,
			DisableCompression:  true,
		},
	}
}

func (d *driver) getToken(ctx context.Context, id, secret string) error {
	form := url.Values{"grant_type": {"client_credentials"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, "POST", d.base+"/oauth/token", strings.NewReader(form))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	res, err := d.client.Do(req)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil || res.StatusCode != http.StatusOK || body.AccessToken == "" {
		return fmt.Errorf("token: %s from %s/oauth/token", res.Status, d.base)
	}
	d.token = body.AccessToken
	return nil
}

// accrue sends one accrual: by default the guide's webhook event (testdata/genesys/guide-webhook-event.json)
// with key as its event id, which the default earning rule turns into an accrual; or an explicit
// transaction.
func (d *driver) accrue(ctx context.Context, key, customer string) (string, bool) {
	if d.body == "transaction" {
		return d.post(ctx, "/v1/ledger/transaction/process", transactionBody(key, customer))
	}
	return d.post(ctx, "/v1/ledger/transaction/process", eventBody(key, customer, time.Now()))
}

// eventBody is the guide's webhook event for one closed web chat of customer.
func eventBody(id, customer string, at time.Time) string {
	return `{"event_id":"` + id + `","interaction_id":"` + id + `","type":"WebChat","state":"closed","user_id":"` + customer +
		`","channel":"webchat","timestamp":"` + at.UTC().Format("2006-01-02T15:04:05.000Z") + `"}`
}

// transactionBody is an explicit accrual of one point.
func transactionBody(key, customer string) string {
	return `{"idempotency_key":"` + key + `","customer_hash":"` + customer + `","kind":"accrual","amount":1,"reason":"bench"}`
}

func (d *driver) lookups(ctx context.Context, cfg HTTPConfig) Result {
	return Open(ctx, cfg.Rate, cfg.Duration, func(ctx context.Context, _, _ int) (string, bool) {
		return d.post(ctx, "/v1/ledger/balance/lookup", `{"customer_hash":"`+customerID(mrand.IntN(d.customers))+`"}`)
	})
}

// post sends one request and labels its outcome with the status code.
func (d *driver) post(ctx context.Context, path, body string) (string, bool) {
	return d.send(ctx, "POST", d.token, path, body, nil)
}

// send sends one request with a bearer token, labels its outcome with the status code, and decodes a
// successful answer into out when it is not nil.
func (d *driver) send(ctx context.Context, method, token, path, body string, out any) (string, bool) {
	req, err := http.NewRequestWithContext(ctx, method, d.base+path, bytes.NewReader([]byte(body)))
	if err != nil {
		return "request error", false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := d.client.Do(req)
	if err != nil {
		var nerr net.Error
		if errors.As(err, &nerr) && nerr.Timeout() {
			return "timeout", false
		}
		return "transport error", false
	}
	ok := res.StatusCode >= 200 && res.StatusCode < 300
	if ok && out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			ok = false
		}
	}
	// Read the whole body so that the connection is reused.
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return strconv.Itoa(res.StatusCode), ok
}

// checkLoopback refuses a server that is not on this machine: the load generator is for loopback only.
func checkLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("--url must be an http:// URL such as http://127.0.0.1:8080")
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--url %s is not a loopback address: the benchmark only targets this machine", host)
}

func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
