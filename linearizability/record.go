package linearizability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// Target is one replica: its base URL and a token with the ledger:read and ledger:write scopes.
type Target struct {
	URL   string
	Token string
}

// Workload describes a run: Clients clients, each making OpsPerClient operations one after another on
// customers picked at random among Customers, against Targets in turn (client i talks to replica i mod
// len(Targets)).
type Workload struct {
	Targets      []Target
	Customers    []string
	Clients      int
	OpsPerClient int
	// Seed makes the choice of operations repeatable; a run's interleaving is not.
	Seed uint64
	// RequestTimeout bounds one request; an answer not there by then is lost (default 30 s).
	RequestTimeout time.Duration
	// KeyPrefix makes idempotency keys unique across runs on one ledger.
	KeyPrefix string
}

// History is a recorded run.
type History struct {
	Ops []porcupine.Operation
	// Statuses counts the HTTP statuses of every answer, retries included (0: no answer).
	Statuses map[int]int
	// Stale counts lookups answered "stale": true, left out of the history: a stale answer promises only
	// the balance as of its as_of, not the balance now.
	Stale int
	// LostReads counts lookups without an answer, left out: a read changes nothing.
	LostReads int
	// Resolved counts writes whose answer was lost and was then given by a retry with the same key;
	// Unresolved those recorded as possibly applied.
	Resolved, Unresolved int
	// Refused counts redemptions refused for insufficient points.
	Refused int
}

// Count returns how many operations of a kind with an outcome the history holds.
func (h History) Count(k Kind, o Outcome) int {
	n := 0
	for _, op := range h.Ops {
		if op.Input.(Input).Kind == k && op.Output.(Output).Outcome == o {
			n++
		}
	}
	return n
}

// answer is one HTTP exchange's result, classified.
type answer struct {
	status  int
	out     Output
	stale   bool
	lost    bool // no definite answer: the write may or may not have been applied
	problem error
}

// recorder sends the operations of a run.
type recorder struct {
	w      Workload
	client *http.Client
	origin time.Time

	mu       sync.Mutex
	statuses map[int]int
}

// pending is a write whose answer was lost, to be asked again.
type pending struct {
	client int
	target Target
	in     Input
	body   []byte
	call   int64
}

// Record runs the workload: first one accrual per customer, one after another, so that every account
// exists; then the clients at once; then the lost answers asked again; and last a read of every
// customer. It fails on an answer the API must never give (a 400, an unknown body): those are bugs,
// not histories.
func Record(ctx context.Context, w Workload) (History, error) {
	if w.RequestTimeout <= 0 {
		w.RequestTimeout = 30 * time.Second
	}
	r := &recorder{
		w: w,
		client: &http.Client{Timeout: w.RequestTimeout, Transport: &http.Transport{
			MaxIdleConnsPerHost: w.Clients + 1,
		}},
		origin:   time.Now(),
		statuses: map[int]int{},
	}
	defer r.client.CloseIdleConnections()
	h := History{Statuses: r.statuses}

	var mu sync.Mutex
	var lost []pending
	var firstErr error
	record := func(client int, target Target, in Input, seq int) {
		body := r.body(in, fmt.Sprintf("%s-%d-%d", w.KeyPrefix, client, seq))
		call := r.now()
		a := r.send(ctx, target, in, body)
		ret := r.now()
		mu.Lock()
		defer mu.Unlock()
		switch {
		case a.problem != nil:
			if firstErr == nil {
				firstErr = a.problem
			}
		case in.Kind == Read && a.stale:
			h.Stale++
		case in.Kind == Read && a.lost:
			h.LostReads++
		case a.lost:
			lost = append(lost, pending{client: client, target: target, in: in, body: body, call: call})
		default:
			h.Ops = append(h.Ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: a.out, Return: ret})
		}
	}

	for i, c := range w.Customers {
		record(0, w.Targets[0], Input{Customer: c, Kind: Accrue, Amount: 50}, -1-i)
	}
	var wg sync.WaitGroup
	for client := range w.Clients {
		rng := rand.New(rand.NewPCG(w.Seed, uint64(client)))
		target := w.Targets[client%len(w.Targets)]
		wg.Go(func() {
			for seq := range w.OpsPerClient {
				if ctx.Err() != nil {
					return
				}
				record(client, target, randomInput(rng, w.Customers), seq)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return h, firstErr
	}

	end := int64(math.MaxInt64 / 2) // after every other event: an answer that never came
	for _, p := range lost {
		out, ret, ok := r.resolve(ctx, p)
		if ok {
			h.Resolved++
		} else {
			h.Unresolved++
			out, ret = Output{Outcome: Unknown}, end
		}
		h.Ops = append(h.Ops, porcupine.Operation{ClientId: p.client, Input: p.in, Call: p.call, Output: out, Return: ret})
	}
	for i, c := range w.Customers {
		record(0, w.Targets[i%len(w.Targets)], Input{Customer: c, Kind: Read}, w.OpsPerClient+i)
	}
	for _, op := range h.Ops {
		if op.Output.(Output).Outcome == Refused {
			h.Refused++
		}
	}
	return h, firstErr
}

// randomInput picks an operation: reads a little more often than either write, and redemptions large
// enough to be refused now and then.
func randomInput(rng *rand.Rand, customers []string) Input {
	in := Input{Customer: customers[rng.IntN(len(customers))]}
	switch p := rng.IntN(10); {
	case p < 4:
		in.Kind = Read
	case p < 7:
		in.Kind, in.Amount = Accrue, 1+rng.Int64N(20)
	default:
		in.Kind, in.Amount = Redeem, 5+rng.Int64N(40)
	}
	return in
}

// resolve asks again for a write whose answer was lost, with the same idempotency key, a bounded number
// of times.
func (r *recorder) resolve(ctx context.Context, p pending) (Output, int64, bool) {
	for attempt := 0; attempt < 20 && ctx.Err() == nil; attempt++ {
		a := r.send(ctx, p.target, p.in, p.body)
		if a.problem == nil && !a.lost {
			return a.out, r.now(), true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return Output{}, 0, false
}

// now is the time since the run began, from the monotonic clock.
func (r *recorder) now() int64 { return int64(time.Since(r.origin)) }

// body renders the request of an operation.
func (r *recorder) body(in Input, key string) []byte {
	var v any
	switch in.Kind {
	case Read:
		v = map[string]string{"customer_hash": in.Customer, "channel": "linearizability", "request_id": key}
	case Accrue, Redeem:
		kind := "accrual"
		if in.Kind == Redeem {
			kind = "redemption"
		}
		v = map[string]any{"idempotency_key": key, "channel": "linearizability", "customer_hash": in.Customer,
			"kind": kind, "amount": in.Amount, "reason": "linearizability test"}
	}
	b, _ := json.Marshal(v)
	return b
}

// send makes one request and classifies its answer.
func (r *recorder) send(ctx context.Context, t Target, in Input, body []byte) answer {
	path := "/v1/ledger/transaction/process"
	if in.Kind == Read {
		path = "/v1/ledger/balance/lookup"
	}
	req, err := http.NewRequestWithContext(ctx, "POST", t.URL+path, bytes.NewReader(body))
	if err != nil {
		return answer{problem: err}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+t.Token)
	res, err := r.client.Do(req)
	if err != nil {
		r.count(0)
		if ctx.Err() != nil {
			return answer{problem: ctx.Err()}
		}
		return answer{lost: true}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	r.count(res.StatusCode)
	if err != nil {
		return answer{lost: true}
	}
	return classify(in, res.StatusCode, b)
}

func (r *recorder) count(status int) {
	r.mu.Lock()
	r.statuses[status]++
	r.mu.Unlock()
}

// classify reads an answer. A 429 was shed before anything was done, but is treated like the other
// answers that decide nothing (500, 503, an unreadable body): asked again later.
func classify(in Input, status int, body []byte) answer {
	var m struct {
		Status  any    `json:"status"` // a write's "applied"; a problem's number
		Balance *int64 `json:"balance"`
		Stale   bool   `json:"stale"`
		Code    string `json:"code"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return answer{status: status, lost: true}
	}
	bad := func() answer {
		return answer{status: status, problem: fmt.Errorf("%s of %d: status %d with body %s", in.Kind, in.Amount, status, body)}
	}
	switch {
	case status == http.StatusTooManyRequests, status == http.StatusServiceUnavailable, status >= 500:
		return answer{status: status, lost: true}
	case in.Kind == Read && status == http.StatusOK:
		if m.Balance == nil {
			return bad()
		}
		return answer{status: status, stale: m.Stale, out: Output{Outcome: Applied, Balance: *m.Balance, BalanceKnown: true}}
	case in.Kind != Read && (status == http.StatusCreated || status == http.StatusOK) && m.Status == "applied":
		if m.Balance == nil {
			return bad()
		}
		return answer{status: status, out: Output{Outcome: Applied, Balance: *m.Balance, BalanceKnown: true}}
	case in.Kind == Redeem && status == http.StatusUnprocessableEntity && m.Code == "insufficient_points":
		out := Output{Outcome: Refused}
		if m.Balance != nil {
			out.Balance, out.BalanceKnown = *m.Balance, true
		}
		return answer{status: status, out: out}
	}
	return bad()
}

// Describe summarises a history for a test log.
func (h History) Describe() string {
	return fmt.Sprintf("%d operations (%d reads, %d accruals, %d redemptions applied, %d refused), %d stale reads left out, %d lost reads left out, %d lost answers resolved by key, %d possibly applied; statuses %v",
		len(h.Ops), h.Count(Read, Applied), h.Count(Accrue, Applied), h.Count(Redeem, Applied), h.Refused,
		h.Stale, h.LostReads, h.Resolved, h.Unresolved, h.Statuses)
}

// ErrNotLinearizable is returned by Verify for a history that the model rejects.
var ErrNotLinearizable = errors.New("the history is not linearizable")

// Verify checks a history and, when it is rejected or cannot be decided within timeout, returns an
// error that names the result; visualization, when not empty, is where porcupine's HTML rendering of
// the rejected history is written.
func Verify(h History, timeout time.Duration, visualization string) error {
	res, info := Check(h.Ops, timeout)
	switch res {
	case porcupine.Ok:
		return nil
	case porcupine.Illegal:
		if visualization != "" {
			if err := porcupine.VisualizePath(Model.ToModel(), info, visualization); err == nil {
				return fmt.Errorf("%w (see %s)", ErrNotLinearizable, visualization)
			}
		}
		return ErrNotLinearizable
	}
	return fmt.Errorf("the checker could not decide the history within %v: %s", timeout, strconv.Quote(string(res)))
}
