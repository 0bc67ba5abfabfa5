package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"sync"
	"time"
)

// The invariants, as the report names them.
const (
	InvBalances    = "balances equal unique events minus redemptions"
	InvNonNegative = "no negative balance"
	InvNotOversold = "no reward oversold"
	InvAckMissing  = "nothing acknowledged missing"
	InvUnacked     = "nothing applied unacknowledged"
	InvOnce        = "duplicates counted once"
	InvAnswered    = "every write answered and accepted"
	InvVerify      = "ledger verification"
)

// Invariant statuses.
const (
	Pass    = "pass"
	Fail    = "fail"
	Skipped = "skipped"
)

// Invariant is the result of one check.
type Invariant struct {
	Name     string   `json:"name"`
	Status   string   `json:"status"`
	Detail   string   `json:"detail,omitempty"`
	Failures []string `json:"failures,omitempty"` // the first few
}

const maxFailures = 10

// checker gathers failures per invariant.
type checker struct {
	mu       sync.Mutex
	failures map[string][]string
	counts   map[string]int
}

func (c *checker) fail(inv, format string, args ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[inv]++
	if len(c.failures[inv]) < maxFailures {
		c.failures[inv] = append(c.failures[inv], fmt.Sprintf(format, args...))
	}
}

func (c *checker) result(inv, passDetail string) Invariant {
	if n := c.counts[inv]; n > 0 {
		return Invariant{Name: inv, Status: Fail, Detail: fmt.Sprintf("%d failure(s)", n), Failures: c.failures[inv]}
	}
	return Invariant{Name: inv, Status: Pass, Detail: passDetail}
}

// historyTx is a transaction as the history route shows it.
type historyTx struct {
	TransactionID int64  `json:"transaction_id"`
	Kind          string `json:"kind"`
	Amount        int64  `json:"amount"`
	Delta         int64  `json:"delta"`
	Channel       string `json:"channel"`
	Key           string `json:"idempotency_key"`
}

// check reads the ledger back through the API and compares it with the book.
func (r *runner) check(ctx context.Context) []Invariant {
	ck := &checker{failures: map[string][]string{}, counts: map[string]int{}}
	b := r.book
	b.mu.Lock()
	want := map[string]int64{}      // balance per customer
	acked := map[string][]ackedTx{} // acknowledged transactions per customer
	for _, e := range b.events {
		if e.applied {
			want[e.conv.customer] += e.amount
			acked[e.conv.customer] = append(acked[e.conv.customer], ackedTx{id: e.txID, amount: e.amount, what: "event " + e.conv.identity()})
		}
		switch {
		case !e.known && e.refusal != "":
			ck.fail(InvAnswered, "event %s refused: %s", e.conv.identity(), e.refusal)
		case !e.known:
			ck.fail(InvAnswered, "event %s: no delivery was answered", e.conv.identity())
		}
	}
	sold := map[string]int64{}
	for id, rc := range b.receipts {
		want[rc.customer] -= rc.points
		sold[rc.reward]++
		acked[rc.customer] = append(acked[rc.customer], ackedTx{id: id, amount: rc.points, what: "redemption of " + rc.reward})
	}
	for _, re := range b.redemptions {
		if !re.known {
			ck.fail(InvAnswered, "redemption %s: no answer", re.key)
		}
	}
	for _, c := range b.conflicts {
		ck.fail(InvOnce, "%s", c)
	}
	b.mu.Unlock()

	// Each customer is read back with its balance (lookup) and its history.
	work := make(chan *customer)
	var wg sync.WaitGroup
	for range r.cfg.Concurrency {
		wg.Go(func() {
			for cust := range work {
				r.checkCustomer(ctx, ck, cust.id, want[cust.id], acked[cust.id])
			}
		})
	}
	for _, cust := range r.customers {
		work <- cust
	}
	close(work)
	wg.Wait()

	for _, rw := range r.rewards {
		if rw.stock == 0 {
			continue
		}
		left, found, err := r.rewardStock(ctx, rw.id)
		switch {
		case err != nil:
			ck.fail(InvNotOversold, "%s: %v", rw.id, err)
		case !found || left == nil:
			ck.fail(InvNotOversold, "%s: the catalog no longer shows its units", rw.id)
		case *left < 0 || sold[rw.id] > rw.stock:
			ck.fail(InvNotOversold, "%s: %d receipts for %d units, %d left", rw.id, sold[rw.id], rw.stock, *left)
		case sold[rw.id]+*left != rw.stock:
			ck.fail(InvNotOversold, "%s: %d receipts and %d units left do not add up to the %d units it had", rw.id, sold[rw.id], *left, rw.stock)
		}
	}

	var soldDetail []string
	for _, rw := range r.rewards {
		if rw.stock > 0 {
			soldDetail = append(soldDetail, fmt.Sprintf("%s: %d of %d units sold", rw.id, sold[rw.id], rw.stock))
		}
	}
	sort.Strings(soldDetail)
	return []Invariant{
		ck.result(InvBalances, fmt.Sprintf("%d customers", len(r.customers))),
		ck.result(InvNonNegative, ""),
		ck.result(InvNotOversold, fmt.Sprint(soldDetail)),
		ck.result(InvAckMissing, ""),
		ck.result(InvUnacked, ""),
		ck.result(InvOnce, ""),
		ck.result(InvAnswered, ""),
	}
}

// ackedTx is a transaction the server acknowledged.
type ackedTx struct {
	id, amount int64
	what       string
}

// checkCustomer compares one customer's balance and history with what was acknowledged for them.
func (r *runner) checkCustomer(ctx context.Context, ck *checker, id string, want int64, acked []ackedTx) {
	balance, err := r.balance(ctx, id)
	if err != nil {
		// A check that could not be made is not a check that held.
		ck.fail(InvBalances, "%s: %v", id, err)
		ck.fail(InvNonNegative, "%s: not checked: %v", id, err)
	} else {
		if balance != want {
			ck.fail(InvBalances, "%s has %d points; its unique events minus its redemptions make %d", id, balance, want)
		}
		if balance < 0 {
			ck.fail(InvNonNegative, "%s has %d points", id, balance)
		}
	}
	history, err := r.history(ctx, id)
	if err != nil {
		ck.fail(InvAckMissing, "%s: %v", id, err)
		ck.fail(InvUnacked, "%s: not checked: %v", id, err)
		ck.fail(InvOnce, "%s: not checked: %v", id, err)
		return
	}
	byID := make(map[int64]historyTx, len(history))
	keys := map[string]int{}
	for _, t := range history {
		byID[t.TransactionID] = t
		keys[t.Channel+"|"+t.Key]++
	}
	known := make(map[int64]bool, len(acked))
	for _, a := range acked {
		known[a.id] = true
		t, ok := byID[a.id]
		switch {
		case !ok:
			ck.fail(InvAckMissing, "%s: %s was acknowledged as transaction %d, which its history does not hold", id, a.what, a.id)
		case t.Amount != a.amount:
			ck.fail(InvAckMissing, "%s: %s was acknowledged for %d points; transaction %d is of %d", id, a.what, a.amount, a.id, t.Amount)
		}
	}
	for _, t := range history {
		if !known[t.TransactionID] {
			ck.fail(InvUnacked, "%s: transaction %d (%s %d, key %s) was never acknowledged", id, t.TransactionID, t.Kind, t.Amount, t.Key)
		}
	}
	for k, n := range keys {
		if n > 1 {
			ck.fail(InvOnce, "%s: key %s is in the history %d times", id, k, n)
		}
	}
}

// balance reads a customer's balance with a lookup; a stale answer (the last-known balance) is no proof
// and is asked again.
func (r *runner) balance(ctx context.Context, id string) (int64, error) {
	body := mustJSON(map[string]string{"customer_hash": id, "channel": "sim", "request_id": "check"})
	for attempt := 0; ; attempt++ {
		a := r.c.api(ctx, request{endpoint: "check: " + epLookup, method: "POST", path: "/v1/ledger/balance/lookup", body: body, timeout: r.cfg.ActionTimeout}, true)
		var lk struct {
			Balance int64 `json:"balance"`
			Stale   bool  `json:"stale"`
		}
		switch {
		case a.err != nil:
			return 0, fmt.Errorf("lookup: %w", a.err)
		case a.status != http.StatusOK || json.Unmarshal(a.body, &lk) != nil:
			return 0, fmt.Errorf("lookup: %d %s", a.status, a.body)
		case !lk.Stale:
			return lk.Balance, nil
		case attempt == 4:
			return 0, fmt.Errorf("lookup answered only stale balances")
		}
		time.Sleep(time.Second)
	}
}

// history reads a customer's whole history, a page at a time.
func (r *runner) history(ctx context.Context, id string) ([]historyTx, error) {
	var all []historyTx
	cursor := ""
	for {
		path := "/v1/ledger/accounts/" + url.PathEscape(id) + "/history?limit=500"
		if cursor != "" {
			path += "&cursor=" + url.QueryEscape(cursor)
		}
		a := r.c.api(ctx, request{endpoint: epHistory, method: "GET", path: path, timeout: r.cfg.ActionTimeout}, true)
		var page struct {
			Transactions []historyTx `json:"transactions"`
			NextCursor   string      `json:"next_cursor"`
		}
		if a.err != nil {
			return nil, fmt.Errorf("history: %w", a.err)
		}
		if a.status != http.StatusOK || json.Unmarshal(a.body, &page) != nil {
			return nil, fmt.Errorf("history: %d %s", a.status, a.body)
		}
		all = append(all, page.Transactions...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// verify runs the ledger verification, when the run was given a way to.
func (r *runner) verify(ctx context.Context) Invariant {
	if r.cfg.Verify == nil {
		return Invariant{Name: InvVerify, Status: Skipped, Detail: "not run: give --db (the target's database) to run it"}
	}
	detail, err := r.cfg.Verify(ctx)
	if err != nil {
		return Invariant{Name: InvVerify, Status: Fail, Detail: err.Error()}
	}
	return Invariant{Name: InvVerify, Status: Pass, Detail: detail}
}
