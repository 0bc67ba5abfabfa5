package sim

import (
	"context"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// runner is one run of the emulator.
type runner struct {
	cfg       Config
	c         *client
	book      *book
	id        string // unique per run: in customer ids, reward ids and keys, so that runs never mix
	customers []*customer
	rewards   []*simReward

	lateMu sync.Mutex
	late   []lateDelivery // duplicates held back, delivered later

	conversations atomic.Int64
	lookups       atomic.Int64 // Architect lookup flows run
	lookupRetries atomic.Int64
	fallbacks     atomic.Int64 // flows that took the fallback path
	flowRetries   atomic.Int64 // Workflow retries of a conversation-end delivery
	stale         atomic.Int64 // lookups answered from the last-known balance
	simultaneous  atomic.Int64
	lateSent      atomic.Int64
	pairs         atomic.Int64 // "two devices" redemption pairs
	replays       atomic.Int64 // redemptions sent again with the same key
}

// customer is one simulated customer.
type customer struct {
	id      string // the externalContactId Genesys knows, and the customer_hash the flow sends
	mu      sync.Mutex
	session string // the portal session token of the last lookup
}

func (c *customer) sessionToken() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.session
}

func (c *customer) setSession(s string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.session = s
}

// simReward is a reward the run created.
type simReward struct {
	id    string
	cost  int64
	stock int64 // units at the start; 0: unlimited
}

type lateDelivery struct {
	e     *eventEntry
	shape string
}

// Run runs the emulator against cfg.Target and checks the invariants. It returns an error when the run
// could not be made (bad flags, no token, no admin scope); a run whose invariants fail returns its report
// with OK false.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, book: newBook(), id: newID()[:8]}
	r.c = &client{base: strings.TrimSuffix(cfg.Target, "/"), http: newHTTPClient(cfg.Concurrency * 3), stats: newStats(),
		actionTimeout: cfg.ActionTimeout, maxWait: cfg.MaxRetryAfter, maxAttempts: 5}
	r.c.tokens = &tokenSource{c: r.c, id: cfg.ClientID, secret: cfg.ClientSecret, honourExpiry: cfg.HonourExpiry}
	if _, err := r.c.tokens.get(ctx); err != nil {
		return nil, err
	}
	for i := range cfg.Customers {
		r.customers = append(r.customers, &customer{id: "sim-" + r.id + "-" + strconv.Itoa(i)})
	}
	if err := r.createRewards(ctx); err != nil {
		return nil, err
	}
	start := time.Now()
	r.drive(ctx, start)
	// What was held back is delivered late, after the run, as a re-run Workflow would.
	r.flushLate(ctx)
	elapsed := time.Since(start)
	r.settle(ctx)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rep := r.report(elapsed)
	rep.Invariants = r.check(ctx)
	rep.Invariants = append(rep.Invariants, r.verify(ctx))
	r.retireRewards(ctx)
	rep.finish(r.c.stats, r.c.tokens, r.c.reauths.Load())
	return rep, ctx.Err()
}

// drive runs the workers until the duration has passed or the events were sent.
func (r *runner) drive(ctx context.Context, start time.Time) {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if r.cfg.Duration > 0 {
		runCtx, cancel = context.WithDeadline(runCtx, start.Add(r.cfg.Duration))
		defer cancel()
	}
	done := make(chan struct{})
	var wg, bar sync.WaitGroup
	if r.cfg.Progress != nil {
		bar.Go(func() { r.progress(start, done) })
	}
	for range r.cfg.Concurrency {
		wg.Go(func() {
			for runCtx.Err() == nil && r.step(ctx) {
			}
		})
	}
	wg.Wait()
	close(done)
	bar.Wait()
}

// step is one thing a customer does; false when the events are all sent. Requests use ctx, not the run's
// deadline: a request under way when the run ends is finished, so that its outcome is known.
func (r *runner) step(ctx context.Context) bool {
	cust := r.customers[mrand.IntN(len(r.customers))]
	if r.popLate(ctx) {
		return true
	}
	switch p := mrand.Float64(); {
	case p < 0.65:
		if r.cfg.Events > 0 && r.conversations.Add(1) > int64(r.cfg.Events) {
			return false
		} else if r.cfg.Events == 0 {
			r.conversations.Add(1)
		}
		r.conversationEnd(ctx, cust)
	case p < 0.85:
		r.lookupFlow(ctx, cust)
	default:
		r.redeemTwoDevices(ctx, cust)
	}
	return true
}

// conversationEnd ends a conversation of cust and delivers its customer.end event, sometimes twice at
// once, sometimes again later.
func (r *runner) conversationEnd(ctx context.Context, cust *customer) {
	shape := ShapeWorkflow
	switch p := mrand.Float64(); {
	case p < 0.2:
		shape = ShapeEventBridge
	case p < 0.4:
		shape = ShapeWebhook
	}
	now := time.Now()
	conv := &conversation{
		customer: cust.id, channel: r.cfg.Channels[mrand.IntN(len(r.cfg.Channels))], id: newID(), participantID: newID(),
		sessionID: newID(), eventID: newID(), shape: shape, ended: now, duration: time.Duration(30+mrand.IntN(900)) * time.Second,
	}
	e := r.book.addEvent(conv)
	if mrand.Float64() >= r.cfg.Duplicates {
		r.workflow(ctx, e, shape, false)
		return
	}
	dupShape := shape
	if shape != ShapeWebhook && mrand.IntN(2) == 0 {
		dupShape = map[string]string{ShapeWorkflow: ShapeEventBridge, ShapeEventBridge: ShapeWorkflow}[shape]
	}
	if mrand.IntN(2) == 0 {
		r.lateMu.Lock()
		r.late = append(r.late, lateDelivery{e, dupShape})
		r.lateMu.Unlock()
		r.workflow(ctx, e, shape, false)
		return
	}
	// Two deliveries at once: a re-fired trigger racing the first, or a Workflow and EventBridge.
	r.simultaneous.Add(1)
	var wg sync.WaitGroup
	wg.Go(func() { r.workflow(ctx, e, dupShape, true) })
	r.workflow(ctx, e, shape, false)
	wg.Wait()
}

// workflow delivers an event as a Workflow's Call Data Action does: no retry of its own; the flow loops
// back up to FlowRetries more times after a failure or timeout (REFERENCE.md).
func (r *runner) workflow(ctx context.Context, e *eventEntry, shape string, duplicate bool) answer {
	var a answer
	for attempt := 0; attempt <= r.cfg.FlowRetries; attempt++ {
		if attempt > 0 {
			r.flowRetries.Add(1)
			// Architect has no wait between a loop's turns, but a flow's own steps take time: without a
			// pause, a target that refuses connections is hammered thousands of times a second.
			select {
			case <-ctx.Done():
				return a
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		r.book.delivered(duplicate) // a retry is counted as a flow retry, not as a duplicate
		req := request{endpoint: epProcess, method: "POST", path: "/v1/ledger/transaction/process", body: e.conv.body(shape), timeout: r.cfg.ActionTimeout}
		req.chunked = shape == ShapeWorkflow
		a = r.c.api(ctx, req, true)
		r.book.eventAnswer(e, a)
		if a.known() && a.status < 500 {
			return a
		}
	}
	r.fallbacks.Add(1)
	return a
}

// popLate delivers one held-back duplicate now and then; true when it did.
func (r *runner) popLate(ctx context.Context) bool {
	if mrand.IntN(4) != 0 {
		return false
	}
	r.lateMu.Lock()
	if len(r.late) == 0 {
		r.lateMu.Unlock()
		return false
	}
	i := mrand.IntN(len(r.late))
	d := r.late[i]
	r.late[i] = r.late[len(r.late)-1]
	r.late = r.late[:len(r.late)-1]
	r.lateMu.Unlock()
	r.lateSent.Add(1)
	r.workflow(ctx, d.e, d.shape, true)
	return true
}

func (r *runner) flushLate(ctx context.Context) {
	r.lateMu.Lock()
	late := r.late
	r.late = nil
	r.lateMu.Unlock()
	work := make(chan lateDelivery)
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Go(func() {
			for d := range work {
				r.lateSent.Add(1)
				r.workflow(ctx, d.e, d.shape, true)
			}
		})
	}
	for _, d := range late {
		work <- d
	}
	close(work)
	wg.Wait()
}

// lookupFlow is the inbound message flow's balance lookup: Call Data Action with a timeout, on failure or
// timeout up to FlowRetries more attempts (after a Retry-After when one was given), then the fallback
// path. On success the flow keeps the portal session token for the widget.
func (r *runner) lookupFlow(ctx context.Context, cust *customer) bool {
	r.lookups.Add(1)
	body := mustJSON(map[string]string{"customer_hash": cust.id, "channel": "webchat", "request_id": newID()})
	for attempt := 0; attempt <= r.cfg.FlowRetries; attempt++ {
		if attempt > 0 {
			r.lookupRetries.Add(1)
		}
		a := r.c.api(ctx, request{endpoint: epLookup, method: "POST", path: "/v1/ledger/balance/lookup", body: body, timeout: r.cfg.LookupTimeout, chunked: true}, false)
		var lk struct {
			SessionToken string `json:"session_token"`
			Stale        bool   `json:"stale"`
		}
		if a.status == http.StatusOK && json.Unmarshal(a.body, &lk) == nil {
			if lk.Stale {
				r.stale.Add(1)
			}
			if lk.SessionToken != "" {
				cust.setSession(lk.SessionToken)
			}
			return true
		}
		if (a.status == http.StatusTooManyRequests || a.status == http.StatusServiceUnavailable) && !r.c.wait(ctx, a.retryAfter) {
			break
		}
	}
	r.fallbacks.Add(1)
	return false
}

// redeemTwoDevices is a customer redeeming from two devices at once: both open the catalog, both redeem
// (each device with its own idempotency key; sometimes the second is an agent redeeming for the customer
// through a Data Action), and now and then a device sends its request again (a flaky network).
func (r *runner) redeemTwoDevices(ctx context.Context, cust *customer) {
	if cust.sessionToken() == "" && !r.lookupFlow(ctx, cust) {
		return
	}
	rw := r.rewards[mrand.IntN(len(r.rewards))]
	cost := rw.cost
	if a := r.portal(ctx, cust, request{endpoint: epPortalCatalog, method: "GET", path: "/v1/portal/catalog"}); a.status == http.StatusOK {
		var cat struct {
			Rewards []struct {
				ID        string `json:"reward_id"`
				PointCost int64  `json:"point_cost"`
			} `json:"rewards"`
		}
		if json.Unmarshal(a.body, &cat) == nil {
			for _, c := range cat.Rewards {
				if c.ID == rw.id {
					cost = c.PointCost
				}
			}
		}
	}
	r.pairs.Add(1)
	a := &redemptionEntry{customer: cust.id, reward: rw.id, key: newID(), cost: cost, portal: true}
	b := &redemptionEntry{customer: cust.id, reward: rw.id, key: newID(), cost: cost, portal: mrand.IntN(4) != 0}
	if !b.portal {
		b.key = "sim-" + r.id + "-agent-" + b.key
	}
	r.book.addRedemption(a)
	r.book.addRedemption(b)
	var wg sync.WaitGroup
	wg.Go(func() { r.redeem(ctx, cust, b) })
	r.redeem(ctx, cust, a)
	wg.Wait()
	if mrand.Float64() < r.cfg.Duplicates {
		r.replays.Add(1)
		r.redeem(ctx, cust, a)
	}
}

// redeem sends a redemption with the guide's redeem body: from the portal with the customer's session,
// or from an agent's Data Action on transaction/process.
func (r *runner) redeem(ctx context.Context, cust *customer, re *redemptionEntry) answer {
	body := mustJSON(map[string]any{"customer_hash": re.customer, "reward_id": re.reward, "point_cost": re.cost, "fulfillment_method": "email", "idempotency_key": re.key})
	var a answer
	if re.portal {
		a = r.portal(ctx, cust, request{endpoint: epPortalRedeem, method: "POST", path: "/v1/portal/redeem", body: body})
	} else {
		a = r.c.api(ctx, request{endpoint: epProcess, method: "POST", path: "/v1/ledger/transaction/process", body: body, timeout: r.cfg.ActionTimeout}, true)
	}
	r.book.redemptionAnswer(re, a)
	return a
}

// portal sends a request of the widget with the customer's session token; a 401 (the session expired)
// opens a new session with a lookup and sends it once more.
func (r *runner) portal(ctx context.Context, cust *customer, req request) answer {
	req.timeout = r.cfg.ActionTimeout
	req.bearer = cust.sessionToken()
	a := r.c.patient(ctx, req)
	if a.status != http.StatusUnauthorized || !r.lookupFlow(ctx, cust) {
		return a
	}
	req.bearer = cust.sessionToken()
	return r.c.patient(ctx, req)
}

// settle sends again, with the same keys, every write whose outcome stayed unknown (a timeout, a reset
// connection, a 5xx), in up to three rounds: only an answered write completes the book, and one still
// unanswered fails the "every write answered" invariant.
func (r *runner) settle(ctx context.Context) {
	for range 3 {
		for _, e := range r.book.unknownEvents() {
			r.workflow(ctx, e, e.conv.shape, true)
		}
		for _, re := range r.book.unknownRedemptions() {
			r.redeem(ctx, r.customerByID(re.customer), re)
		}
	}
}

func (r *runner) customerByID(id string) *customer {
	i, _ := strconv.Atoi(id[strings.LastIndexByte(id, '-')+1:])
	return r.customers[i]
}

// createRewards puts the run's rewards in the catalog: one with few units (to be fought over) and one
// unlimited.
func (r *runner) createRewards(ctx context.Context) error {
	r.rewards = []*simReward{
		{id: "sim-" + r.id + "-limited", cost: r.cfg.RewardCost, stock: r.cfg.Stock},
		{id: "sim-" + r.id + "-open", cost: r.cfg.RewardCost * 2},
	}
	for _, rw := range r.rewards {
		if err := r.putReward(ctx, rw, true); err != nil {
			return err
		}
	}
	return nil
}

// retireRewards takes the run's rewards out of the portal once the run is checked.
func (r *runner) retireRewards(ctx context.Context) {
	for _, rw := range r.rewards {
		_ = r.putReward(ctx, rw, false)
	}
}

func (r *runner) putReward(ctx context.Context, rw *simReward, active bool) error {
	var inventory *int64
	if rw.stock > 0 {
		inventory = &rw.stock
	}
	if !active { // a PUT replaces the reward: keep the units left
		left, _, err := r.rewardStock(ctx, rw.id)
		if err != nil {
			return err
		}
		inventory = left
	}
	body := map[string]any{"name": "Simulated reward " + rw.id, "point_cost": rw.cost, "fulfillment_method": "email", "active": active, "inventory": inventory}
	a := r.c.api(ctx, request{endpoint: "catalog/rewards (put)", method: "PUT", path: "/v1/catalog/rewards/" + url.PathEscape(rw.id), body: mustJSON(body), timeout: r.cfg.ActionTimeout}, true)
	switch {
	case a.err != nil:
		return fmt.Errorf("create the reward %s: %w", rw.id, a.err)
	case a.status == http.StatusForbidden:
		return fmt.Errorf("create the reward %s: 403: the client needs the admin scope (tally clients create --scopes ledger:read,ledger:write,admin)", rw.id)
	case a.status != http.StatusOK:
		return fmt.Errorf("create the reward %s: %d %s", rw.id, a.status, a.body)
	}
	return nil
}

// rewardStock reads a reward's units left from the catalog route (nil: unlimited).
func (r *runner) rewardStock(ctx context.Context, id string) (*int64, bool, error) {
	a := r.c.api(ctx, request{endpoint: epCatalog, method: "GET", path: "/v1/catalog/rewards", timeout: r.cfg.ActionTimeout}, true)
	if a.err != nil || a.status != http.StatusOK {
		return nil, false, fmt.Errorf("read the catalog: %d %v", a.status, a.err)
	}
	var cat struct {
		Rewards []struct {
			ID        string `json:"reward_id"`
			Inventory *int64 `json:"inventory"`
		} `json:"rewards"`
	}
	if err := json.Unmarshal(a.body, &cat); err != nil {
		return nil, false, fmt.Errorf("read the catalog: %w", err)
	}
	for _, rw := range cat.Rewards {
		if rw.ID == id {
			return rw.Inventory, true, nil
		}
	}
	return nil, false, nil
}

// eventsSent is how many conversations ended (the counter overshoots a bound by the workers that stopped).
func (r *runner) eventsSent() int64 {
	n := r.conversations.Load()
	if r.cfg.Events > 0 {
		n = min(n, int64(r.cfg.Events))
	}
	return n
}

// progress reports the share of the run done until done is closed.
func (r *runner) progress(start time.Time, done chan struct{}) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		share := 0.0
		if r.cfg.Duration > 0 {
			share = float64(time.Since(start)) / float64(r.cfg.Duration)
		}
		if r.cfg.Events > 0 {
			share = max(share, float64(r.conversations.Load())/float64(r.cfg.Events))
		}
		r.cfg.Progress(min(share, 1), r.eventsSent(), r.c.stats.requests())
		select {
		case <-done:
			r.cfg.Progress(1, r.eventsSent(), r.c.stats.requests())
			return
		case <-t.C:
		}
	}
}
