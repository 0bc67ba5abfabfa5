package webhooks_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/fulfillment"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/storetest/eachstore"
	"github.com/tally-ledger/tally/webhooks"
)

// rig is a ledger, its webhook subscriptions and a worker whose clock the test moves.
type rig struct {
	store  tally.Store
	ledger *ledger.Service
	subs   *webhooks.Subscriptions
	signer *fulfillment.Signer
	mu     sync.Mutex
	now    time.Time
}

func (r *rig) clock() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.now
}

func (r *rig) advance(d time.Duration) {
	r.mu.Lock()
	r.now = r.now.Add(d)
	r.mu.Unlock()
}

func eachStore(t *testing.T, fn func(t *testing.T, r *rig)) {
	eachstore.Run(t, func(t *testing.T, s tally.Store) {
		key := tally.RandomLedgerKey()
		r := &rig{store: s, now: time.Now().UTC()}
		r.ledger = ledger.New(s, ledger.Options{Key: key, Clock: r.clock})
		t.Cleanup(r.ledger.Close)
		signer, err := fulfillment.NewSigner(key.WebhookKey())
		if err != nil {
			t.Fatal(err)
		}
		r.signer = signer
		r.subs = &webhooks.Subscriptions{Store: s, Signer: signer, Clock: r.clock}
		fn(t, r)
	})
}

// received is one request a receiver accepted after checking its signature.
type received struct {
	id, event, attempt string
	body               map[string]any
}

// receiver is a real HTTP server on loopback that verifies each delivery's signature with the secret it
// was given, and refuses the first refuse requests with 503.
type receiver struct {
	t      *testing.T
	srv    *httptest.Server
	secret string
	refuse int
	mu     sync.Mutex
	got    []received
	bad    int
}

func newReceiver(t *testing.T, refuse int) *receiver {
	rc := &receiver{t: t, refuse: refuse}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if err := fulfillment.Verify(rc.secret, req.Header, body, time.Now(), 24*time.Hour); err != nil {
			rc.bad++
			http.Error(w, "bad signature: "+err.Error(), http.StatusUnauthorized)
			return
		}
		if rc.refuse > 0 {
			rc.refuse--
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Errorf("delivery is not JSON: %s", body)
		}
		rc.got = append(rc.got, received{id: req.Header.Get(fulfillment.HeaderDelivery), event: req.Header.Get(webhooks.HeaderEvent),
			attempt: req.Header.Get(webhooks.HeaderAttempt), body: m})
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) deliveries() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

func TestDeliverSignedWithRetries(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		rc := newReceiver(t, 1)
		sub, secret, err := r.subs.Create(ctx, tally.WebhookSubscription{URL: rc.srv.URL + "/events",
			EventTypes: []string{tally.EventPointsEarned, tally.EventPointsRedeemed}})
		if err != nil {
			t.Fatal(err)
		}
		rc.secret = secret
		big := newReceiver(t, 0)
		bigSub, bigSecret, err := r.subs.Create(ctx, tally.WebhookSubscription{URL: big.srv.URL, EventTypes: []string{tally.EventPointsEarned},
			Filter: "$.data.points >= 100"})
		if err != nil {
			t.Fatal(err)
		}
		big.secret = bigSecret

		c := hasher.Hash("webhook-customer")
		earned, err := r.ledger.Accrue(ctx, ledger.Request{Account: c, Key: "e1", Amount: 120})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.ledger.Redeem(ctx, ledger.Request{Account: c, Key: "r1", Amount: 20}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ledger.Accrue(ctx, ledger.Request{Account: c, Key: "e2", Amount: 5}); err != nil {
			t.Fatal(err)
		}

		w := webhooks.NewWorker(webhooks.Options{Store: r.store, Signer: r.signer, Config: fulfillment.Config{Clock: r.clock, Backoff: time.Minute, MaxBackoff: time.Minute}})
		if n, err := w.RunOnce(ctx); err != nil || n != 5 {
			t.Fatalf("first run leased %d (%v), want 5: three events to one, two (one filtered out) to the other", n, err)
		}
		// The first request to rc was refused: that event waits for its retry; the others arrived.
		if got := rc.deliveries(); len(got) != 2 {
			t.Fatalf("first run delivered %d to the subscriber, want 2", len(got))
		}
		if got := big.deliveries(); len(got) != 1 || got[0].id != "evt_"+itoa(earned.Transaction.Seq) || got[0].body["data"].(map[string]any)["points"] != 120.0 {
			t.Fatalf("filtered subscriber got %+v", got)
		}
		skipped, err := r.store.Deliveries(ctx, bigSub.ID, tally.DeliverySkipped, 10)
		if err != nil || len(skipped) != 1 {
			t.Fatalf("skipped %+v, %v", skipped, err)
		}
		if n, _ := w.RunOnce(ctx); n != 0 {
			t.Fatalf("a retry was leased before it was due (%d)", n)
		}
		r.advance(2 * time.Minute)
		if n, err := w.RunOnce(ctx); err != nil || n != 1 {
			t.Fatalf("retry run leased %d (%v), want 1", n, err)
		}
		got := rc.deliveries()
		if len(got) != 3 {
			t.Fatalf("after the retry: %d deliveries", len(got))
		}
		types := map[string]int{}
		retried := 0
		for _, g := range got {
			types[g.event]++
			if g.attempt == "2" {
				retried++
			}
			if g.body["customer_hash"] != "th_"+c || g.body["type"] != g.event || g.body["id"] != g.id {
				t.Errorf("delivery %+v", g)
			}
		}
		if types[tally.EventPointsEarned] != 2 || types[tally.EventPointsRedeemed] != 1 || retried != 1 {
			t.Fatalf("deliveries by type %v, %d retried", types, retried)
		}
		if n, _ := w.RunOnce(ctx); n != 0 {
			t.Fatal("a delivered event was leased again")
		}
		if rc.bad != 0 || big.bad != 0 {
			t.Fatalf("%d deliveries failed signature verification", rc.bad+big.bad)
		}

		// A rotated secret signs from then on; the old one no longer verifies.
		_, newSecret, err := r.subs.RotateSecret(ctx, sub.ID)
		if err != nil || newSecret == secret {
			t.Fatalf("rotate: %v", err)
		}
		if _, err := r.ledger.Accrue(ctx, ledger.Request{Account: c, Key: "e3", Amount: 1}); err != nil {
			t.Fatal(err)
		}
		w.RunOnce(ctx)
		if rc.bad != 1 {
			t.Fatalf("a delivery signed with the rotated secret verified under the old one (%d bad)", rc.bad)
		}
	})
}

func TestDeadLetter(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		rc := newReceiver(t, 100)
		sub, secret, err := r.subs.Create(ctx, tally.WebhookSubscription{URL: rc.srv.URL, EventTypes: []string{tally.EventPointsEarned}})
		if err != nil {
			t.Fatal(err)
		}
		rc.secret = secret
		if _, err := r.ledger.Accrue(ctx, ledger.Request{Account: hasher.Hash("dead-letter-customer"), Key: "e1", Amount: 1}); err != nil {
			t.Fatal(err)
		}
		w := webhooks.NewWorker(webhooks.Options{Store: r.store, Signer: r.signer, Config: fulfillment.Config{Clock: r.clock, MaxAttempts: 3, Backoff: time.Second, MaxBackoff: time.Second}})
		for range 3 {
			if n, err := w.RunOnce(ctx); err != nil || n != 1 {
				t.Fatalf("leased %d (%v)", n, err)
			}
			r.advance(2 * time.Second)
		}
		dead, err := r.store.Deliveries(ctx, sub.ID, tally.DeliveryDead, 10)
		if err != nil || len(dead) != 1 || dead[0].Attempts != 3 || dead[0].LastError == "" {
			t.Fatalf("dead letters %+v, %v", dead, err)
		}
		if n, _ := w.RunOnce(ctx); n != 0 {
			t.Fatal("a dead letter was leased again")
		}
	})
}

func TestValidate(t *testing.T) {
	t.Parallel()
	ok := tally.WebhookSubscription{URL: "https://example.com/h", EventTypes: []string{tally.EventPointsEarned}}
	if err := webhooks.Validate(ok); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*tally.WebhookSubscription){
		"no url":       func(s *tally.WebhookSubscription) { s.URL = "" },
		"ftp url":      func(s *tally.WebhookSubscription) { s.URL = "ftp://example.com" },
		"no types":     func(s *tally.WebhookSubscription) { s.EventTypes = nil },
		"unknown type": func(s *tally.WebhookSubscription) { s.EventTypes = []string{"points.stolen"} },
		"repeated type": func(s *tally.WebhookSubscription) {
			s.EventTypes = []string{tally.EventPointsEarned, tally.EventPointsEarned}
		},
		"bad filter":    func(s *tally.WebhookSubscription) { s.Filter = "$.a ==" },
		"days, no type": func(s *tally.WebhookSubscription) { s.ExpiringDays = 7 },
		"type, no days": func(s *tally.WebhookSubscription) { s.EventTypes = []string{tally.EventPointsExpiringSoon} },
		"too many days": func(s *tally.WebhookSubscription) {
			s.EventTypes, s.ExpiringDays = []string{tally.EventPointsExpiringSoon}, 1000
		},
		"negative days": func(s *tally.WebhookSubscription) {
			s.EventTypes, s.ExpiringDays = []string{tally.EventPointsExpiringSoon}, -1
		},
		"nul in filter":  func(s *tally.WebhookSubscription) { s.Filter = "$.a = '\x00'" },
		"no host in url": func(s *tally.WebhookSubscription) { s.URL = "https:///x" },
	} {
		s := ok
		mod(&s)
		if err := webhooks.Validate(s); tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("%s: %v, want invalid", name, err)
		}
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

var hasher, _ = tally.NewCustomerHasher([]byte("webhooks-test-secret-0123"))

// TestHangingReceiverHoldsOneSlot: while one subscriber hangs, the running worker goes on delivering to
// the others (the delivery loop is fulfillment's: a slot is free again as soon as its delivery ends).
func TestHangingReceiverHoldsOneSlot(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, r *rig) {
		// Patience well below the worker's timeout: a worker that waited for the hanging delivery to
		// end before leasing again would fail this.
		ctx, stop := context.WithTimeout(context.Background(), time.Minute)
		defer stop()
		started, release := make(chan struct{}, 10), make(chan struct{})
		hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			io.Copy(io.Discard, req.Body)
			started <- struct{}{}
			<-release
		}))
		t.Cleanup(hang.Close)
		t.Cleanup(func() { close(release) })
		if _, _, err := r.subs.Create(ctx, tally.WebhookSubscription{URL: hang.URL, EventTypes: []string{tally.EventPointsEarned}}); err != nil {
			t.Fatal(err)
		}
		c := hasher.Hash("hanging-customer")
		if _, err := r.ledger.Accrue(ctx, ledger.Request{Account: c, Key: "e1", Amount: 1}); err != nil {
			t.Fatal(err)
		}
		w := webhooks.NewWorker(webhooks.Options{Store: r.store, Signer: r.signer, Config: fulfillment.Config{Clock: r.clock, Timeout: 10 * time.Minute, Poll: 5 * time.Millisecond}})
		run, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { w.Run(run); close(done) }()
		defer func() { cancel(); <-done }()
		select {
		case <-started:
		case <-ctx.Done():
			t.Fatal("the hanging subscriber's delivery never started")
		}

		rc := newReceiver(t, 0)
		_, secret, err := r.subs.Create(ctx, tally.WebhookSubscription{URL: rc.srv.URL, EventTypes: []string{tally.EventPointsEarned}})
		if err != nil {
			t.Fatal(err)
		}
		rc.mu.Lock()
		rc.secret = secret
		rc.mu.Unlock()
		if _, err := r.ledger.Accrue(ctx, ledger.Request{Account: c, Key: "e2", Amount: 1}); err != nil {
			t.Fatal(err)
		}
		for len(rc.deliveries()) == 0 {
			if ctx.Err() != nil {
				t.Fatal("the other subscriber's delivery waited behind the hanging one")
			}
			time.Sleep(5 * time.Millisecond)
		}
	})
}
