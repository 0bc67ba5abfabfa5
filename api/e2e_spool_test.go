package api_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/breaker"
	"github.com/tally-ledger/tally/spool"
	"github.com/tally-ledger/tally/spool/natstest"
)

// spoolKinds are the spool backends every spool test runs against.
var spoolKinds = []string{"file", "jetstream"}

// openSpool opens an empty spool of the kind; limit, when not zero, is the file's size limit in bytes or
// the stream's limit in messages.
func openSpool(t *testing.T, kind string, limit int64) spool.Spool {
	t.Helper()
	switch kind {
	case "file":
		s, err := spool.OpenFile(filepath.Join(t.TempDir(), "tally.spool"), spool.FileOptions{MaxBytes: limit, Workers: 4})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	case "jetstream":
		return natstest.Open(t, spool.JetStreamOptions{MaxMsgs: limit, Workers: 4})
	}
	t.Fatalf("unknown spool %q", kind)
	return nil
}

// spoolEach runs f for every store and every spool backend.
func spoolEach(t *testing.T, f func(t *testing.T, b apitest.Backend, kind string)) {
	for _, b := range apitest.Backends {
		for _, kind := range spoolKinds {
			t.Run(string(b)+"/"+kind, func(t *testing.T) {
				t.Parallel()
				f(t, b, kind)
			})
		}
	}
}

func spoolEventBody(id, customer string) []byte {
	return fmt.Appendf(nil, `{"event_id":%q,"type":"WebChat","state":"closed","user_id":%q,"channel":"webchat"}`, id, customer)
}

// spoolWantQueued checks a 202 "queued" answer naming the key (or event id) and channel.
func spoolWantQueued(t *testing.T, what string, r apitest.Response, member, key, channel string) {
	t.Helper()
	if r.Status != 202 {
		t.Fatalf("%s: status %d, want 202; body %s", what, r.Status, r.Body)
	}
	m := r.JSON(t)
	if m["status"] != "queued" || m[member] != key || m["channel"] != channel {
		t.Fatalf("%s: body %s, want status queued, %s %q, channel %q", what, r.Body, member, key, channel)
	}
}

// spoolDrain drains the spool until it is empty; the store must be back.
func spoolDrain(t *testing.T, s *apitest.Server) {
	t.Helper()
	// Longer than JetStream's ack wait (30 s): an entry applied whose acknowledgement was lost on a busy
	// machine is redelivered only then, replayed as a no-op and acknowledged.
	deadline := time.Now().Add(75 * time.Second)
	for s.API.DrainSpool(context.Background()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the spool does not drain; breaker %s", s.Breaker.State())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// spoolEventCount counts the customer's transactions made for the event.
func spoolEventCount(t *testing.T, s *apitest.Server, customer, eventID string) int {
	t.Helper()
	txs, err := s.Store.History(context.Background(), s.Hasher.Hash(customer), 0, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, tx := range txs {
		if tx.IdempotencyKey == eventID {
			n++
		}
	}
	return n
}

// TestSpoolOutage: while the store is down accruals (explicit and from events) are answered 202 queued,
// redemptions and adjustments 503; a retried accrual is queued again; while the spool holds entries new
// accruals join it even with the store back; once drained, every accrual is in the ledger exactly once,
// retries after the replay are answered from the ledger, and the ledger verifies.
func TestSpoolOutage(t *testing.T) {
	spoolEach(t, func(t *testing.T, b apitest.Backend, kind string) {
		fs := &faultyStore{}
		s := apitest.Start(t, b, apitest.Config{
			WrapStore: faultWrap(fs), Breaker: breaker.Config{OpenFor: 100 * time.Millisecond},
			Spool: openSpool(t, kind, 0), SpoolInterval: time.Hour, // the test drains it itself
		})
		tok := s.Token(apitest.AllScopes...)
		acked := faultAcks{}
		if r := s.Do("POST", faultProcessPath, tok, faultAccrualBody("healthy", "erin", 100)); r.Status != 201 {
			t.Fatalf("healthy write: %d %s", r.Status, r.Body)
		}
		acked["healthy"] = 100

		fs.down.Store(true)
		for i := range 8 {
			key := fmt.Sprintf("down-%d", i)
			r := s.Do("POST", faultProcessPath, tok, faultAccrualBody(key, "erin", int64(10+i)))
			spoolWantQueued(t, key, r, "idempotency_key", key, "e2e")
			acked[key] = int64(10 + i)
		}
		r := s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-down-1", "frank"))
		spoolWantQueued(t, "event", r, "event_id", "ev-down-1", "webchat")
		// The caller lost the 202 and sends both again: queued again, applied once.
		spoolWantQueued(t, "retried accrual", s.Do("POST", faultProcessPath, tok, faultAccrualBody("down-0", "erin", 10)),
			"idempotency_key", "down-0", "e2e")
		spoolWantQueued(t, "retried event", s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-down-1", "frank")),
			"event_id", "ev-down-1", "webchat")

		// What needs the balance now is refused, and bad input is refused rather than kept.
		redeem := faultAccrualBody("redeem-1", "erin", 5)
		redeem = []byte(strings.Replace(string(redeem), `"accrual"`, `"redemption"`, 1))
		faultWant503(t, "redemption while down", s.Do("POST", faultProcessPath, tok, redeem))
		adjust := []byte(`{"idempotency_key":"adj-1","customer_hash":"erin","kind":"adjustment","amount":5,"reason":"goodwill","actor":"ops"}`)
		faultWant503(t, "adjustment while down", s.Do("POST", faultProcessPath, tok, adjust))
		if r := s.Do("POST", faultProcessPath, tok, faultAccrualBody("bad-amount", "erin", -5)); r.Status/100 != 4 {
			t.Fatalf("a bad accrual while down: %d %s, want a 4xx", r.Status, r.Body)
		}
		if v, _ := faultMetric(t, s.Metric(), `tally_spool_appends_total{result="ok"}`); v != 11 {
			t.Fatalf(`tally_spool_appends_total{result="ok"} = %v, want 11`, v)
		}

		// The store is back, but the spool is not drained yet: a new accrual must not overtake it.
		fs.down.Store(false)
		time.Sleep(150 * time.Millisecond) // let the breaker's open period pass
		r = s.Do("POST", faultProcessPath, tok, faultAccrualBody("behind", "erin", 7))
		spoolWantQueued(t, "accrual behind the spool", r, "idempotency_key", "behind", "e2e")
		acked["behind"] = 7

		s.API.DrainSpool(context.Background()) // reads the depth: the gauge shows what is left
		spoolDrain(t, s)
		m := s.Metric()
		for sample, want := range map[string]float64{
			`tally_spool_replayed_total{outcome="applied"}`:  10, // 9 explicit accruals and one event
			`tally_spool_replayed_total{outcome="replayed"}`: 2,  // the two retries
			"tally_spool_depth":                              0,
			"tally_spool_oldest_age_seconds":                 0,
		} {
			if got, _ := faultMetric(t, m, sample); got != want {
				t.Fatalf("%s = %v, want %v", sample, got, want)
			}
		}
		if v, ok := faultMetric(t, m, `tally_spool_replayed_total{outcome="refused"}`); ok && v != 0 {
			t.Fatalf("refused = %v", v)
		}

		// Drained: accruals go straight to the ledger again; retries are answered from it.
		if r := s.Do("POST", faultProcessPath, tok, faultAccrualBody("after", "erin", 3)); r.Status != 201 {
			t.Fatalf("write after the drain: %d %s", r.Status, r.Body)
		}
		acked["after"] = 3
		for key, amount := range map[string]int64{"down-0": 10, "behind": 7} {
			r := s.Do("POST", faultProcessPath, tok, faultAccrualBody(key, "erin", amount))
			if m := r.JSON(t); r.Status != 200 || m["status"] != "applied" || m["amount"] != float64(amount) {
				t.Fatalf("retry of %s after the replay: %d %s", key, r.Status, r.Body)
			}
		}
		if r := s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-down-1", "frank")); r.Status != 200 {
			t.Fatalf("event retried after the replay: %d %s", r.Status, r.Body)
		}
		faultCheckLedger(t, s, "erin", acked)
		if n := spoolEventCount(t, s, "frank", "ev-down-1"); n != 1 {
			t.Fatalf("the spooled event is in the ledger %d times", n)
		}
		if strings.Contains(s.Metric(), `status="500"`) {
			t.Fatal("a request answered 500")
		}
	})
}

// TestSpoolDrainsOnItsOwn: the server's own replayer drains the spool once the store is back.
func TestSpoolDrainsOnItsOwn(t *testing.T) {
	spoolEach(t, func(t *testing.T, b apitest.Backend, kind string) {
		fs := &faultyStore{}
		s := apitest.Start(t, b, apitest.Config{
			WrapStore: faultWrap(fs), Breaker: breaker.Config{OpenFor: 50 * time.Millisecond},
			Spool: openSpool(t, kind, 0),
		})
		tok := s.Token(apitest.AllScopes...)
		fs.down.Store(true)
		acked := faultAcks{}
		for i := range 5 {
			key := fmt.Sprintf("k-%d", i)
			spoolWantQueued(t, key, s.Do("POST", faultProcessPath, tok, faultAccrualBody(key, "gina", int64(i+1))),
				"idempotency_key", key, "e2e")
			acked[key] = int64(i + 1)
		}
		fs.down.Store(false)
		deadline := time.Now().Add(30 * time.Second)
		for {
			v, _ := faultMetric(t, s.Metric(), `tally_spool_replayed_total{outcome="applied"}`)
			if v == 5 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the replayer applied %v of 5 accruals", v)
			}
			time.Sleep(20 * time.Millisecond)
		}
		faultCheckLedger(t, s, "gina", acked)
	})
}

// TestSpoolRefusedEntryDropped: an entry the ledger refuses for good at replay (its account was closed
// meanwhile) is counted and dropped, and the entries behind it still drain.
func TestSpoolRefusedEntryDropped(t *testing.T) {
	spoolEach(t, func(t *testing.T, b apitest.Backend, kind string) {
		fs := &faultyStore{}
		s := apitest.Start(t, b, apitest.Config{
			WrapStore: faultWrap(fs), Breaker: breaker.Config{OpenFor: 50 * time.Millisecond},
			Spool: openSpool(t, kind, 0), SpoolInterval: time.Hour,
		})
		tok := s.Token(apitest.AllScopes...)
		for _, c := range []string{"hank", "ivy"} {
			if r := s.Do("POST", faultProcessPath, tok, faultAccrualBody("open-"+c, c, 10)); r.Status != 201 {
				t.Fatalf("healthy write: %d %s", r.Status, r.Body)
			}
		}
		fs.down.Store(true)
		spoolWantQueued(t, "hank", s.Do("POST", faultProcessPath, tok, faultAccrualBody("late-hank", "hank", 5)), "idempotency_key", "late-hank", "e2e")
		spoolWantQueued(t, "ivy", s.Do("POST", faultProcessPath, tok, faultAccrualBody("late-ivy", "ivy", 6)), "idempotency_key", "late-ivy", "e2e")
		fs.down.Store(false)
		time.Sleep(100 * time.Millisecond)
		if _, err := s.Ledger.SetStatus(context.Background(), s.Hasher.Hash("hank"), tally.StatusClosed); err != nil {
			t.Fatal(err)
		}
		spoolDrain(t, s)
		if v, _ := faultMetric(t, s.Metric(), `tally_spool_replayed_total{outcome="refused"}`); v != 1 {
			t.Fatalf("refused = %v, want 1", v)
		}
		faultCheckLedger(t, s, "ivy", faultAcks{"open-ivy": 10, "late-ivy": 6})
		faultCheckLedger(t, s, "hank", faultAcks{"open-hank": 10})
	})
}

// TestSpoolFull: a spool at its limit answers 503 with Retry-After, and nothing it refused is applied.
func TestSpoolFull(t *testing.T) {
	spoolEach(t, func(t *testing.T, b apitest.Backend, kind string) {
		limit := int64(2) // messages
		if kind == "file" {
			limit = 700 // bytes: two framed entries of this size
		}
		fs := &faultyStore{}
		s := apitest.Start(t, b, apitest.Config{
			WrapStore: faultWrap(fs), Breaker: breaker.Config{OpenFor: 50 * time.Millisecond},
			Spool: openSpool(t, kind, limit), SpoolInterval: time.Hour,
		})
		tok := s.Token(apitest.AllScopes...)
		fs.down.Store(true)
		acked := faultAcks{}
		var full int
		for i := range 6 {
			key := fmt.Sprintf("f-%d", i)
			r := s.Do("POST", faultProcessPath, tok, faultAccrualBody(key, "jill", int64(i+1)))
			switch r.Status {
			case 202:
				if full > 0 {
					t.Fatalf("%s queued after the spool was full", key)
				}
				acked[key] = int64(i + 1)
			case 503:
				faultWant503(t, key, r)
				full++
			default:
				t.Fatalf("%s: %d %s", key, r.Status, r.Body)
			}
		}
		if len(acked) != 2 || full != 4 {
			t.Fatalf("queued %d, refused %d; want 2 and 4", len(acked), full)
		}
		if v, _ := faultMetric(t, s.Metric(), `tally_spool_appends_total{result="full"}`); v != 4 {
			t.Fatalf(`tally_spool_appends_total{result="full"} = %v, want 4`, v)
		}
		fs.down.Store(false)
		time.Sleep(100 * time.Millisecond)
		spoolDrain(t, s)
		faultCheckLedger(t, s, "jill", acked)
	})
}

// TestSpoolWriteDeadline: an accrual whose write outlives the write deadline is queued (202); whether the
// slow commit lands or not, once drained the ledger holds it exactly once.
func TestSpoolWriteDeadline(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			fs := &faultyStore{}
			s := apitest.Start(t, b, apitest.Config{
				WrapStore: faultWrap(fs), Options: api.Options{WriteDeadline: 100 * time.Millisecond},
				Spool: openSpool(t, "file", 0), SpoolInterval: time.Hour,
			})
			tok := s.Token(apitest.AllScopes...)
			fs.updateDelay.Store(int64(time.Second))
			r := s.Do("POST", faultProcessPath, tok, faultAccrualBody("slow-1", "kim", 12))
			spoolWantQueued(t, "slow write", r, "idempotency_key", "slow-1", "e2e")
			fs.updateDelay.Store(0)
			spoolDrain(t, s)
			faultCheckLedger(t, s, "kim", faultAcks{"slow-1": 12})
			if r := s.Do("POST", faultProcessPath, tok, faultAccrualBody("slow-1", "kim", 12)); r.Status != 200 {
				t.Fatalf("the slow write sent again: %d %s", r.Status, r.Body)
			}
		})
	}
}

// TestSpoolUnwritable: a spool that cannot keep an entry answers 503 with Retry-After, never 202.
func TestSpoolUnwritable(t *testing.T) {
	t.Parallel()
	fs := &faultyStore{}
	sp := openSpool(t, "file", 0)
	s := apitest.Start(t, apitest.SQLite, apitest.Config{WrapStore: faultWrap(fs), Spool: sp, SpoolInterval: time.Hour})
	tok := s.Token(apitest.AllScopes...)
	sp.Close() // as a spool whose disk went away
	fs.down.Store(true)
	faultWant503(t, "accrual with the spool unwritable", s.Do("POST", faultProcessPath, tok, faultAccrualBody("u-1", "lee", 4)))
	faultWantMetric(t, s, `tally_spool_appends_total{result="error"}`, 1)
	fs.down.Store(false)
	if r := s.Do("POST", faultProcessPath, tok, faultAccrualBody("u-1", "lee", 4)); r.Status != 201 {
		t.Fatalf("the refused accrual sent again once the store is back: %d %s", r.Status, r.Body)
	}
}

// TestSpoolCommitAckLost: a write that committed but whose acknowledgement was lost is spooled (the
// server cannot tell it from a failed one); its replay finds the outcome and applies nothing.
func TestSpoolCommitAckLost(t *testing.T) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			fs := &faultyStore{}
			s := apitest.Start(t, b, apitest.Config{WrapStore: faultWrap(fs), Spool: openSpool(t, "file", 0), SpoolInterval: time.Hour})
			tok := s.Token(apitest.AllScopes...)
			fs.lostAck.Store(true)
			spoolWantQueued(t, "write whose commit was not acknowledged", s.Do("POST", faultProcessPath, tok, faultAccrualBody("la-1", "max", 30)),
				"idempotency_key", "la-1", "e2e")
			fs.lostAck.Store(false)
			spoolDrain(t, s)
			faultWantMetric(t, s, `tally_spool_replayed_total{outcome="replayed"}`, 1)
			faultCheckLedger(t, s, "max", faultAcks{"la-1": 30})
		})
	}
}
