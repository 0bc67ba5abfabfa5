package fulfillment_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/fulfillment"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/storetest"
	"github.com/tally-ledger/tally/storetest/eachstore"
)

// rig is a ledger over a real store, a signer, and a receiver the deliveries go to.
type rig struct {
	t        *testing.T
	ctx      context.Context
	store    tally.Store
	jobs     tally.FulfillmentStore
	ledger   *ledger.Service
	key      *tally.LedgerKey
	hasher   *tally.CustomerHasher
	signer   *fulfillment.Signer
	receiver *receiver
}

// eachStore runs fn against SQLite and PostgreSQL.
func eachStore(t *testing.T, fn func(t *testing.T, r *rig)) {
	eachstore.Run(t, func(t *testing.T, s tally.Store) {
		key := tally.RandomLedgerKey()
		l := ledger.New(s, ledger.Options{Key: key})
		t.Cleanup(l.Close)
		hasher, err := tally.NewCustomerHasher([]byte("fulfillment-test-secret-0123"))
		if err != nil {
			t.Fatal(err)
		}
		signer, err := fulfillment.NewSigner(key.WebhookKey())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		t.Cleanup(cancel)
		rcv := newReceiver(t, signer)
		fn(t, &rig{t: t, ctx: ctx, store: s, jobs: s.(tally.FulfillmentStore), ledger: l, key: key, hasher: hasher, signer: signer, receiver: rcv})
	})
}

// worker returns a worker over the rig with quick retries; change adjusts its options.
func (r *rig) worker(name string, change func(*fulfillment.Options)) *fulfillment.Worker {
	o := fulfillment.Options{Jobs: r.jobs, Catalog: r.store, Ledger: r.ledger, Signer: r.signer, Config: fulfillment.Config{Name: name,
		Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Poll: 2 * time.Millisecond, Timeout: 5 * time.Second, MaxAttempts: 4}}
	if change != nil {
		change(&o)
	}
	return fulfillment.New(o)
}

// settle runs the worker until the redemption leaves pending (or done says it is done), and returns it.
func (r *rig) settle(w *fulfillment.Worker, receiptID string, done ...func(tally.Redemption) bool) tally.Redemption {
	r.t.Helper()
	for r.ctx.Err() == nil {
		if _, err := w.RunOnce(r.ctx); err != nil {
			r.t.Fatal(err)
		}
		got, err := r.store.Redemption(r.ctx, receiptID)
		if err != nil {
			r.t.Fatal(err)
		}
		if got.Status != tally.FulfillmentPending || len(done) > 0 && done[0] != nil && done[0](got) {
			return got
		}
		time.Sleep(time.Millisecond)
	}
	r.t.Fatalf("receipt %s still pending", receiptID)
	return tally.Redemption{}
}

func (r *rig) balance(account string) int64 {
	r.t.Helper()
	a, err := r.store.Account(r.ctx, account)
	if err != nil {
		r.t.Fatal(err)
	}
	return a.Balance
}

func (r *rig) inventory(rewardID string) int64 {
	r.t.Helper()
	rws, err := r.store.Rewards(r.ctx)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, rw := range rws {
		if rw.ID == rewardID && rw.Inventory != nil {
			return *rw.Inventory
		}
	}
	r.t.Fatalf("reward %s has no limited inventory", rewardID)
	return 0
}

// receiver is a webhook endpoint that checks every delivery's signature, answers as status says, and
// counts deliveries, including those in flight at once, per delivery id.
type receiver struct {
	*httptest.Server
	t      *testing.T
	signer *fulfillment.Signer
	status func(delivery string, n int) int // the answer to the n-th request (from 1) of a delivery
	hold   time.Duration                    // how long each request is held before it is answered

	mu       sync.Mutex
	got      map[string][]fulfillment.Payload
	inFlight map[string]int
	overlap  []string // deliveries seen twice at once
}

func newReceiver(t *testing.T, signer *fulfillment.Signer) *receiver {
	rc := &receiver{t: t, signer: signer, got: map[string][]fulfillment.Payload{}, inFlight: map[string]int{},
		status: func(string, int) int { return http.StatusOK }}
	rc.Server = httptest.NewServer(http.HandlerFunc(rc.serve))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		rc.t.Error(err)
		return
	}
	secret, err := rc.signer.Secret(rc.URL + r.URL.Path)
	if err != nil {
		rc.t.Error(err)
	}
	if err := fulfillment.Verify(secret, r.Header, body, time.Now(), fulfillment.DefaultTolerance); err != nil {
		rc.t.Errorf("delivery %s: %v", r.Header.Get(fulfillment.HeaderDelivery), err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p fulfillment.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		rc.t.Errorf("body %s: %v", body, err)
	}
	id := r.Header.Get(fulfillment.HeaderDelivery)
	if id != p.DeliveryID {
		rc.t.Errorf("header delivery id %q, body %q", id, p.DeliveryID)
	}
	rc.mu.Lock()
	rc.inFlight[id]++
	if rc.inFlight[id] > 1 {
		rc.overlap = append(rc.overlap, id)
	}
	rc.got[id] = append(rc.got[id], p)
	n := len(rc.got[id])
	rc.mu.Unlock()
	time.Sleep(rc.hold)
	rc.mu.Lock()
	rc.inFlight[id]--
	rc.mu.Unlock()
	status := rc.status(id, n)
	if status == http.StatusServiceUnavailable {
		http.Error(w, "maintenance until\x00 noon", status) // a reason, with a byte no store keeps
		return
	}
	w.WriteHeader(status)
}

func (rc *receiver) deliveries(id string) []fulfillment.Payload {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]fulfillment.Payload(nil), rc.got[id]...)
}

// TestRetriesThenDelivers: a receiver that answers 500 twice gets the same delivery three times, signed
// each time, and the third answer settles it.
func TestRetriesThenDelivers(t *testing.T) {
	eachStore(t, func(t *testing.T, r *rig) {
		r.receiver.status = func(_ string, n int) int {
			if n <= 2 {
				return http.StatusInternalServerError
			}
			return http.StatusNoContent
		}
		reward := storetest.MustPutReward(t, r.store, "RWD-HOOK", tally.MethodWebhook, r.receiver.URL+"/hooks/tally", 250)
		customer := r.hasher.Hash("alice")
		red := storetest.MustRedeem(t, r.ledger, customer, reward)

		got := r.settle(r.worker("w1", nil), red.ReceiptID)
		if got.Status != tally.FulfillmentDelivered || got.Attempts != 3 || got.LastError != "" {
			t.Fatalf("after two 500s and a 204: %+v", got)
		}
		ds := r.receiver.deliveries(red.ReceiptID)
		if len(ds) != 3 {
			t.Fatalf("%d deliveries, want 3", len(ds))
		}
		for i, d := range ds {
			want := fulfillment.Payload{DeliveryID: red.ReceiptID, ReceiptID: red.ReceiptID, RewardID: reward.ID, RewardName: reward.Name,
				Points: 250, Method: tally.MethodWebhook, CustomerHash: "th_" + customer, CreatedAt: red.CreatedAt, Attempt: i + 1}
			if fmt.Sprint(d) != fmt.Sprint(want) {
				t.Errorf("delivery %d: %+v, want %+v", i+1, d, want)
			}
		}
		if b := r.balance(customer); b != 0 {
			t.Fatalf("balance %d after a delivered redemption, want 0", b)
		}
	})
}

// TestDeadLetterRefund: a receiver that always fails gets MaxAttempts deliveries; then the redemption is
// refunded by a reversal, once, however often the worker runs again.
func TestDeadLetterRefund(t *testing.T) {
	eachStore(t, func(t *testing.T, r *rig) {
		r.receiver.status = func(string, int) int { return http.StatusServiceUnavailable }
		reward := storetest.MustPutReward(t, r.store, "RWD-HOOK", tally.MethodWebhook, r.receiver.URL+"/hook", 300)
		units := int64(5)
		reward.Inventory = &units
		if err := r.store.PutReward(r.ctx, reward); err != nil {
			t.Fatal(err)
		}
		customer := r.hasher.Hash("bob")
		red := storetest.MustRedeem(t, r.ledger, customer, reward)
		w := r.worker("w1", nil)

		got := r.settle(w, red.ReceiptID)
		if got.Status != tally.FulfillmentRefunded || got.Attempts != 4 || got.LastError != "HTTP 503 Service Unavailable: maintenance until? noon" {
			t.Fatalf("after 4 failures: %+v", got)
		}
		if n := len(r.receiver.deliveries(red.ReceiptID)); n != 4 {
			t.Fatalf("%d deliveries, want 4", n)
		}
		if b := r.balance(customer); b != 300 {
			t.Fatalf("balance %d after the refund, want 300", b)
		}
		if left := r.inventory(reward.ID); left != 5 {
			t.Fatalf("%d units left after the refund, want the 5 there were", left)
		}
		refund, err := r.store.TransactionByKey(r.ctx, fulfillment.RefundChannel, "refund:"+red.ReceiptID)
		if err != nil {
			t.Fatal(err)
		}
		if refund.Kind != tally.KindReversal || refund.ReversesSeq != red.TxSeq {
			t.Fatalf("refund %+v does not reverse transaction %d", refund, red.TxSeq)
		}
		for i := 0; i < 3; i++ {
			if n, err := w.RunOnce(r.ctx); err != nil || n != 0 {
				t.Fatalf("a refunded redemption was leased again: %d, %v", n, err)
			}
		}
		if b := r.balance(customer); b != 300 {
			t.Fatalf("balance %d, want 300: the refund must not repeat", b)
		}
	})
}

// TestKeepDead: with refunds off, a dead letter stays dead with its points spent, and an operator's
// retry delivers it once the receiver is back.
func TestKeepDead(t *testing.T) {
	eachStore(t, func(t *testing.T, r *rig) {
		var mu sync.Mutex
		healthy := false
		r.receiver.status = func(string, int) int {
			mu.Lock()
			defer mu.Unlock()
			if healthy {
				return http.StatusOK
			}
			return http.StatusBadGateway
		}
		reward := storetest.MustPutReward(t, r.store, "RWD-HOOK", tally.MethodWebhook, r.receiver.URL+"/hook", 100)
		customer := r.hasher.Hash("carol")
		red := storetest.MustRedeem(t, r.ledger, customer, reward)
		w := r.worker("w1", func(o *fulfillment.Options) { o.KeepDead = true; o.MaxAttempts = 2 })

		got := r.settle(w, red.ReceiptID)
		if got.Status != tally.FulfillmentDead || got.Attempts != 2 || got.LastError != "HTTP 502 Bad Gateway" {
			t.Fatalf("dead letter: %+v", got)
		}
		if b := r.balance(customer); b != 0 {
			t.Fatalf("balance %d: a dead letter kept dead is not refunded", b)
		}
		mu.Lock()
		healthy = true
		mu.Unlock()
		if _, err := r.store.(tally.CatalogStore).RetryRedemption(r.ctx, red.ReceiptID, time.Now()); err != nil {
			t.Fatal(err)
		}
		if got := r.settle(w, red.ReceiptID); got.Status != tally.FulfillmentDelivered || got.Attempts != 1 {
			t.Fatalf("after the retry: %+v", got)
		}
	})
}

// TestEmailToMailer: an email reward without a webhook of its own goes to the mailer endpoint, signed
// with the mailer's secret.
func TestEmailToMailer(t *testing.T) {
	eachStore(t, func(t *testing.T, r *rig) {
		reward := storetest.MustPutReward(t, r.store, "RWD-MAIL", tally.MethodEmail, "", 50)
		red := storetest.MustRedeem(t, r.ledger, r.hasher.Hash("dave"), reward)
		w := r.worker("w1", func(o *fulfillment.Options) { o.MailerURL = r.receiver.URL + "/mail" })
		if got := r.settle(w, red.ReceiptID); got.Status != tally.FulfillmentDelivered {
			t.Fatalf("email: %+v", got)
		}
		if ds := r.receiver.deliveries(red.ReceiptID); len(ds) != 1 || ds[0].Method != tally.MethodEmail {
			t.Fatalf("mailer got %+v", ds)
		}
	})
}

// TestTwoWorkers: two workers over one store deliver every job exactly once, never one job twice at the
// same time.
func TestTwoWorkers(t *testing.T) {
	eachStore(t, func(t *testing.T, r *rig) {
		r.receiver.hold = 5 * time.Millisecond // widens the window in which a second delivery would overlap
		reward := storetest.MustPutReward(t, r.store, "RWD-HOOK", tally.MethodWebhook, r.receiver.URL+"/hook", 10)
		const jobs = 30
		var ids []string
		for i := 0; i < jobs; i++ {
			ids = append(ids, storetest.MustRedeem(t, r.ledger, r.hasher.Hash(fmt.Sprint("c", i)), reward).ReceiptID)
		}
		ctx, stop := context.WithCancel(r.ctx)
		var wg sync.WaitGroup
		for _, name := range []string{"replica-a", "replica-b"} {
			w := r.worker(name, func(o *fulfillment.Options) { o.Batch = 4 })
			wg.Go(func() { w.Run(ctx) })
		}
		for _, id := range ids {
			for {
				got, err := r.store.Redemption(r.ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if got.Status == tally.FulfillmentDelivered {
					break
				}
				if r.ctx.Err() != nil {
					t.Fatalf("%s still %s", id, got.Status)
				}
				time.Sleep(2 * time.Millisecond)
			}
		}
		stop()
		wg.Wait()
		for _, id := range ids {
			if n := len(r.receiver.deliveries(id)); n != 1 {
				t.Errorf("%s delivered %d times", id, n)
			}
		}
		if len(r.receiver.overlap) > 0 {
			t.Errorf("delivered twice at once: %v", r.receiver.overlap)
		}
	})
}

// TestRefundRefused: a dead letter whose refund the ledger refuses (the customer's account was closed)
// stays dead, saying why, with nothing moved, for an operator.
func TestRefundRefused(t *testing.T) {
	eachStore(t, func(t *testing.T, r *rig) {
		r.receiver.status = func(string, int) int { return http.StatusInternalServerError }
		reward := storetest.MustPutReward(t, r.store, "RWD-HOOK", tally.MethodWebhook, r.receiver.URL+"/hook", 70)
		customer := r.hasher.Hash("frank")
		red := storetest.MustRedeem(t, r.ledger, customer, reward)
		if _, err := r.ledger.SetStatus(r.ctx, customer, tally.StatusClosed); err != nil {
			t.Fatal(err)
		}
		got := r.settle(r.worker("w1", func(o *fulfillment.Options) { o.MaxAttempts = 2 }), red.ReceiptID)
		if got.Status != tally.FulfillmentDead || !strings.Contains(got.LastError, "refund refused") || got.Attempts != 2 {
			t.Fatalf("refused refund: %+v", got)
		}
		if b := r.balance(customer); b != 0 {
			t.Fatalf("balance %d: nothing may move when the refund is refused", b)
		}
	})
}

// failingJobs is an outbox whose database is down.
type failingJobs struct {
	tally.FulfillmentStore
	calls atomic.Int32
}

func (f *failingJobs) LeaseRedemptions(context.Context, string, time.Time, time.Time, int) ([]tally.Redemption, error) {
	f.calls.Add(1)
	return nil, tally.Errorf(tally.EUNAVAILABLE, "database is down")
}

// TestOutageLoggedOnce: while the store is down the worker keeps trying, and says so once, not on
// every poll.
func TestOutageLoggedOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, r *rig) {
		var logs bytes.Buffer
		var mu sync.Mutex
		jobs := &failingJobs{FulfillmentStore: r.jobs}
		w := r.worker("w1", func(o *fulfillment.Options) {
			o.Jobs, o.Poll = jobs, time.Millisecond
			o.Logger = slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				return logs.Write(p)
			}), nil))
		})
		ctx, stop := context.WithCancel(r.ctx)
		done := make(chan struct{})
		go func() { w.Run(ctx); close(done) }()
		for jobs.calls.Load() < 4 && r.ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		stop()
		<-done
		mu.Lock()
		defer mu.Unlock()
		if n := strings.Count(logs.String(), "leasing due redemptions failed"); n != 1 {
			t.Fatalf("%d warnings over %d failed polls, want 1:\n%s", n, jobs.calls.Load(), logs.String())
		}
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestRefundRetried: a refund that fails for a transient reason (the ledger is shutting down) is made
// later, without delivering the dead letter again.
func TestRefundRetried(t *testing.T) {
	eachStore(t, func(t *testing.T, r *rig) {
		r.receiver.status = func(string, int) int { return http.StatusInternalServerError }
		reward := storetest.MustPutReward(t, r.store, "RWD-HOOK", tally.MethodWebhook, r.receiver.URL+"/hook", 90)
		customer := r.hasher.Hash("gina")
		red := storetest.MustRedeem(t, r.ledger, customer, reward)

		closed := ledger.New(r.store, ledger.Options{Key: r.key})
		closed.Close()
		got := r.settle(r.worker("w1", func(o *fulfillment.Options) { o.Ledger = closed; o.MaxAttempts = 2 }), red.ReceiptID, func(got tally.Redemption) bool {
			return got.Attempts == 2
		})
		if got.Status != tally.FulfillmentPending || !strings.Contains(got.LastError, "refund not yet made") {
			t.Fatalf("with the ledger down: %+v", got)
		}
		got = r.settle(r.worker("w2", func(o *fulfillment.Options) { o.MaxAttempts = 2 }), red.ReceiptID, nil)
		if got.Status != tally.FulfillmentRefunded || got.Attempts != 2 || strings.Contains(got.LastError, "refund not yet made") {
			t.Fatalf("after the refund: %+v", got)
		}
		if n := len(r.receiver.deliveries(red.ReceiptID)); n != 2 {
			t.Fatalf("%d deliveries, want 2: a dead letter is not delivered again", n)
		}
		if b := r.balance(customer); b != 90 {
			t.Fatalf("balance %d, want 90 after the refund", b)
		}
	})
}

// TestHangingReceiverHoldsOneSlot: while one receiver hangs, the running worker goes on delivering to
// the others: a slow partner holds one slot, not every other partner's deliveries.
func TestHangingReceiverHoldsOneSlot(t *testing.T) {
	eachStore(t, func(t *testing.T, r *rig) {
		release := make(chan struct{})
		hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			select {
			case <-release:
			case <-req.Context().Done():
			}
			w.WriteHeader(http.StatusOK)
		}))
		t.Cleanup(hang.Close)
		t.Cleanup(func() { close(release) })
		slow := storetest.MustPutReward(t, r.store, "RWD-HANG", tally.MethodWebhook, hang.URL+"/hang", 10)
		fast := storetest.MustPutReward(t, r.store, "RWD-FAST", tally.MethodWebhook, r.receiver.URL+"/fast", 10)
		storetest.MustRedeem(t, r.ledger, r.hasher.Hash("hung"), slow)
		w := r.worker("w1", func(o *fulfillment.Options) { o.Timeout = time.Minute })
		ctx, stop := context.WithCancel(r.ctx)
		done := make(chan struct{})
		go func() { w.Run(ctx); close(done) }()
		t.Cleanup(func() { stop(); <-done })
		// Let the hanging delivery start, then redeem the other reward.
		for r.ctx.Err() == nil {
			if got, err := r.store.Redemptions(r.ctx, tally.RedemptionFilter{RewardID: slow.ID, Limit: 10}); err == nil && len(got) == 1 && got[0].LeaseUntil.After(time.Now()) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		red := storetest.MustRedeem(t, r.ledger, r.hasher.Hash("quick"), fast)
		for r.ctx.Err() == nil {
			got, err := r.store.Redemption(r.ctx, red.ReceiptID)
			if err != nil {
				t.Fatal(err)
			}
			if got.Status == tally.FulfillmentDelivered {
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Fatal("the other partner's delivery waited behind the hanging one")
	})
}
