package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/ledger"
)

// loadAnswer is what one accrual of the load test ended with.
type loadAnswer struct {
	key, customer string
	amount        int64
	status        int // the last attempt's
	err           error
	problem       string // a body that is not what its status promises
}

// TestLoadOverloadSheds drives many more concurrent writers than the server admits. Admission control must
// shed the excess quickly with 429 and Retry-After; nothing may fail with 500 or time out; and every
// acknowledged accrual must be in the ledger exactly once, while every shed one is not in it at all.
func TestLoadOverloadSheds(t *testing.T) {
	const (
		writers     = 64
		perWriter   = 12
		attempts    = 3 // a shed write is retried with the same key, as a caller would
		customers   = 8
		maxRounds   = 5
		storeLength = 10 * time.Millisecond
	)
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			fs := &faultyStore{}
			fs.updateDelay.Store(int64(storeLength))
			s := apitest.Start(t, b, apitest.Config{
				WrapStore: faultWrap(fs),
				Options:   api.Options{MaxInFlight: 4, AdmissionWait: 5 * time.Millisecond},
			})
			tok := s.Token(apitest.AllScopes...)
			client := &http.Client{
				Timeout:   2 * time.Minute, // generous: a timeout here is a failure, not a measurement
				Transport: &http.Transport{MaxIdleConnsPerHost: writers},
			}
			t.Cleanup(client.CloseIdleConnections)

			var all []loadAnswer
			shed := 0
			// Whether a round sheds depends on scheduling; rounds repeat, a bounded number of times, until one did.
			for round := 0; round < maxRounds && shed == 0; round++ {
				answers := make([]loadAnswer, writers*perWriter)
				var wg sync.WaitGroup
				for w := range writers {
					wg.Go(func() {
						for i := range perWriter {
							a := &answers[w*perWriter+i]
							a.key = fmt.Sprintf("load-%d-%d-%d", round, w, i)
							a.customer = fmt.Sprintf("load-customer-%d", (w+i)%customers)
							a.amount = int64(1 + (w+i)%7)
							for range attempts {
								loadAccrue(client, s.URL, tok, a)
								if a.status != http.StatusTooManyRequests {
									break
								}
							}
						}
					})
				}
				wg.Wait()
				for _, a := range answers {
					if a.status == http.StatusTooManyRequests {
						shed++
					}
				}
				all = append(all, answers...)
			}

			created := 0
			for _, a := range all {
				switch {
				case a.err != nil:
					t.Fatalf("accrual %s: %v", a.key, a.err)
				case a.problem != "":
					t.Fatalf("accrual %s: %s", a.key, a.problem)
				case a.status == http.StatusCreated:
					created++
				case a.status != http.StatusTooManyRequests:
					t.Fatalf("accrual %s: status %d, want 201 or 429", a.key, a.status)
				}
			}
			t.Logf("%d accruals: %d created, %d shed after %d attempts", len(all), created, shed, attempts)
			if shed == 0 {
				t.Fatalf("no request was shed in %d rounds of %d concurrent writers", maxRounds, writers)
			}
			if created == 0 {
				t.Fatal("no accrual got through")
			}
			if v, _ := faultMetric(t, s.Metric(), "tally_shed_requests_total"); v < float64(shed) {
				t.Fatalf("tally_shed_requests_total = %v, but %d requests ended shed", v, shed)
			}

			ctx := context.Background()
			if _, err := ledger.Verify(ctx, s.Store.Audit(), ledger.VerifyOptions{Key: apitest.Key}); err != nil {
				t.Fatalf("verify: %v", err)
			}
			want := map[string]int64{}
			for _, a := range all {
				if a.status == http.StatusCreated {
					want[a.customer] += a.amount
				}
			}
			inLedger := map[string]int{}
			for c := range customers {
				customer := fmt.Sprintf("load-customer-%d", c)
				hash := s.Hasher.Hash(customer)
				acct, err := s.Store.Account(ctx, hash)
				if err != nil {
					t.Fatalf("account of %s: %v", customer, err)
				}
				if acct.Balance != want[customer] {
					t.Fatalf("balance of %s is %d, acknowledged accruals sum to %d", customer, acct.Balance, want[customer])
				}
				txs, err := s.Store.History(ctx, hash, 0, 100_000)
				if err != nil {
					t.Fatal(err)
				}
				for _, tx := range txs {
					inLedger[tx.IdempotencyKey]++
				}
			}
			for _, a := range all {
				n := inLedger[a.key]
				if a.status == http.StatusCreated && n != 1 || a.status != http.StatusCreated && n != 0 {
					t.Fatalf("accrual %s answered %d is in the ledger %d times", a.key, a.status, n)
				}
			}
		})
	}
}

// loadAccrue sends one accrual and records its answer in a.
func loadAccrue(client *http.Client, base, token string, a *loadAnswer) {
	req, err := http.NewRequest("POST", base+faultProcessPath, bytes.NewReader(faultAccrualBody(a.key, a.customer, a.amount)))
	if err != nil {
		a.err = err
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := client.Do(req)
	if err != nil {
		a.err = err
		return
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		a.err = err
		return
	}
	a.status = res.StatusCode
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		a.problem = fmt.Sprintf("status %d with a body that is not JSON: %q", res.StatusCode, body)
		return
	}
	switch res.StatusCode {
	case http.StatusCreated:
		if m["status"] != "applied" || m["amount"] != float64(a.amount) {
			a.problem = fmt.Sprintf("201 with body %s", body)
		}
	case http.StatusTooManyRequests:
		ra, err := strconv.Atoi(res.Header.Get("Retry-After"))
		if err != nil || ra < 1 || m["code"] != "overloaded" || res.Header.Get("Content-Type") != "application/problem+json" {
			a.problem = fmt.Sprintf("429 with Retry-After %q and body %s", res.Header.Get("Retry-After"), body)
		}
	}
}

// gatedStore holds every Update until the gate is closed, so that a test can keep the only admission
// slot busy.
type gatedStore struct {
	tally.Store
	entered chan struct{}
	gate    chan struct{}
}

func (s *gatedStore) Update(ctx context.Context, fn func(context.Context, tally.WriteTx) error) error {
	s.entered <- struct{}{}
	<-s.gate
	return s.Store.Update(ctx, fn)
}

// TestLoadCallerGoneWhileQueued hangs up a request that waits for an admission slot: it must be counted
// as 499, not as a 200 it never got.
func TestLoadCallerGoneWhileQueued(t *testing.T) {
	t.Parallel()
	gs := &gatedStore{entered: make(chan struct{}, 1), gate: make(chan struct{})}
	s := apitest.Start(t, apitest.SQLite, apitest.Config{
		WrapStore: func(inner tally.Store) tally.Store { gs.Store = inner; return gs },
		Options:   api.Options{MaxInFlight: 1, AdmissionWait: time.Hour, WriteDeadline: time.Hour},
	})
	var release sync.Once
	open := func() { release.Do(func() { close(gs.gate) }) }
	t.Cleanup(open) // before the server's cleanup, which waits for the held request
	tok := s.Token(apitest.AllScopes...)
	holder := make(chan int, 1)
	go func() {
		var a loadAnswer = loadAnswer{key: "holder", customer: "queued", amount: 1}
		loadAccrue(http.DefaultClient, s.URL, tok, &a)
		holder <- a.status
	}()
	<-gs.entered // the holder has the slot and waits in the store

	// A queued request cannot be seen from outside; hang up after a pause and look for the 499, a
	// bounded number of times, since the request may not have reached the queue before the hang-up.
	found := false
	for attempt := 0; attempt < 20 && !found; attempt++ {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "POST", s.URL+faultLookupPath, bytes.NewReader(faultLookupBody("queued")))
		req.Header.Set("Authorization", "Bearer "+tok)
		done := make(chan error, 1)
		go func() {
			res, err := http.DefaultClient.Do(req)
			if err == nil {
				b, _ := io.ReadAll(res.Body)
				res.Body.Close()
				err = fmt.Errorf("answered %d while the only slot was held: %s", res.StatusCode, b)
			}
			done <- err
		}()
		time.Sleep(100 * time.Millisecond)
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("queued request: %v", err)
		}
		for range 50 {
			if v, _ := faultMetric(t, s.Metric(), `tally_http_requests_total{route="POST /v1/ledger/balance/lookup",status="499"}`); v > 0 {
				found = true
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !found {
		t.Fatal("no hung-up request was counted as 499")
	}
	if v, ok := faultMetric(t, s.Metric(), `tally_http_requests_total{route="POST /v1/ledger/balance/lookup",status="200"}`); ok {
		t.Fatalf("%v lookups counted as 200, none was answered", v)
	}
	open()
	if st := <-holder; st != http.StatusCreated {
		t.Fatalf("the write holding the slot answered %d", st)
	}
}

// TestLoadSlowUploadHoldsNoSlot stalls a request halfway through its body: it must not hold the only
// admission slot, so another request is served meanwhile (with an admission wait of an hour, a held slot
// would show as a request that never ends).
func TestLoadSlowUploadHoldsNoSlot(t *testing.T) {
	t.Parallel()
	s := apitest.Start(t, apitest.SQLite, apitest.Config{Options: api.Options{MaxInFlight: 1, AdmissionWait: time.Hour}})
	tok := s.Token(apitest.AllScopes...)

	body := faultAccrualBody("slow-upload", "uma", 5)
	pr, pw := io.Pipe()
	t.Cleanup(func() { pw.CloseWithError(errors.New("the test ended")) }) // before the server's cleanup waits for it
	slow := make(chan loadAnswer, 1)
	go func() {
		a := loadAnswer{key: "slow-upload", amount: 5}
		req, _ := http.NewRequest("POST", s.URL+faultProcessPath, pr)
		req.Header.Set("Authorization", "Bearer "+tok)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			a.err = err
		} else {
			a.status = res.StatusCode
			res.Body.Close()
		}
		slow <- a
	}()
	if _, err := pw.Write(body[:len(body)/2]); err != nil { // returns once the transport has taken it
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let it reach the server; if it has not, the test proves less but cannot fail

	// Were the slot held, this would wait out the harness client's timeout and fail.
	r := s.Do("POST", faultLookupPath, tok, faultLookupBody("uma"))
	if r.Status != 200 {
		t.Fatalf("lookup while an upload stalls: %d %s", r.Status, r.Body)
	}

	if _, err := pw.Write(body[len(body)/2:]); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if a := <-slow; a.err != nil || a.status != http.StatusCreated {
		t.Fatalf("the slow upload, once complete: %d %v", a.status, a.err)
	}
}
