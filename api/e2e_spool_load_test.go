package api_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/breaker"
	"github.com/tally-ledger/tally/ledger"
)

// TestSpoolOutageUnderLoad: concurrent clients send accruals (explicit and events, some sent twice)
// while the store goes down for the middle third of the load and comes back; the server's own replayer
// drains the spool. Every acknowledged accrual (201, 200 or 202) is in the ledger exactly once, nothing
// is in it twice, no answer is other than 200, 201, 202 or 503, and the ledger verifies. The figures go
// to RELIABILITY.md ("Accrual spool").
func TestSpoolOutageUnderLoad(t *testing.T) {
	const clients, perClient = 4, 120
	customers := []string{"uma", "vic", "wes", "xia", "yan"}
	spoolEach(t, func(t *testing.T, b apitest.Backend, kind string) {
		fs := &faultyStore{}
		s := apitest.Start(t, b, apitest.Config{
			WrapStore: faultWrap(fs), Breaker: breaker.Config{OpenFor: 50 * time.Millisecond},
			Spool: openSpool(t, kind, 0),
		})
		tok := s.Token(apitest.AllScopes...)

		type sent struct {
			customer, key string
			acked         bool
		}
		var (
			mu       sync.Mutex
			requests = map[string]*sent{}
			status   = map[int]int{}
			other    []string
			count    atomic.Int64
		)
		total := int64(clients * perClient)
		var wg sync.WaitGroup
		for c := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perClient {
					n := count.Add(1)
					switch n { // the outage: the middle third of the load
					case total / 3:
						fs.down.Store(true)
					case 2 * total / 3:
						fs.down.Store(false)
					}
					j := i
					if i%10 == 9 {
						j = i - 5 // a retry of an earlier request, as a caller that lost its answer
					}
					customer := customers[(c+j)%len(customers)]
					key := fmt.Sprintf("c%d-%d", c, j)
					var body []byte
					if j%3 == 0 {
						key = "ev-" + key
						body = spoolEventBody(key, customer)
					} else {
						body = faultAccrualBody(key, customer, int64(j%7+1))
					}
					r := s.Do("POST", faultProcessPath, tok, body)
					mu.Lock()
					q := requests[key]
					if q == nil {
						q = &sent{customer: customer, key: key}
						requests[key] = q
					}
					status[r.Status]++
					switch r.Status {
					case 200, 201, 202:
						q.acked = true
					case 503:
					default:
						other = append(other, fmt.Sprintf("%s: %d %s", key, r.Status, r.Body))
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		fs.down.Store(false)
		if len(other) > 0 {
			t.Fatalf("answers other than 200, 201, 202 and 503: %v", other)
		}
		spoolDrain(t, s)

		ctx := context.Background()
		if _, err := ledger.Verify(ctx, s.Store.Audit(), ledger.VerifyOptions{Key: apitest.Key}); err != nil {
			t.Fatalf("verify: %v", err)
		}
		inLedger := map[string]int{}
		for _, c := range customers {
			txs, err := s.Store.History(ctx, s.Hasher.Hash(c), 0, 100_000)
			if err != nil {
				t.Fatal(err)
			}
			for _, tx := range txs {
				inLedger[tx.IdempotencyKey]++
			}
		}
		acked, duplicates, lost := 0, 0, 0
		for key, q := range requests {
			n := inLedger[key]
			if n > 1 {
				duplicates++
			}
			if q.acked {
				acked++
				if n != 1 {
					lost++
					t.Errorf("%s was acknowledged and is in the ledger %d times", key, n)
				}
			}
		}
		if duplicates > 0 || lost > 0 {
			t.Fatalf("%d keys applied twice, %d acknowledged keys not applied once", duplicates, lost)
		}
		if status[202] == 0 {
			t.Fatal("nothing was queued: the outage did not happen during the load")
		}
		m := s.Metric()
		applied, _ := faultMetric(t, m, `tally_spool_replayed_total{outcome="applied"}`)
		noop, _ := faultMetric(t, m, `tally_spool_replayed_total{outcome="replayed"}`)
		refused, _ := faultMetric(t, m, `tally_spool_replayed_total{outcome="refused"}`)
		if refused != 0 {
			t.Fatalf("the replay refused %v entries", refused)
		}
		t.Logf("figures (%s, %s spool): %d requests (%d distinct accruals), answers 201: %d, 200: %d, 202 queued: %d, 503: %d; "+
			"replayed: %v applied, %v already in the ledger, %v refused; acknowledged accruals %d, in the ledger once: %d, duplicates: %d",
			b, kind, total, len(requests), status[201], status[200], status[202], status[503], applied, noop, refused, acked, acked-lost, duplicates)
	})
}
