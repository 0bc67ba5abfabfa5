package api_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/breaker"
	"github.com/tally-ledger/tally/earning"
)

// The accrual spool attacked as an outsider would, through a real server on a loopback port: trying to
// get points applied twice, spent before they exist, acknowledged while invalid, or a 500.

// attackServer starts a server over a store that can be taken down, with a file spool the test drains
// itself.
func attackServer(t *testing.T, b apitest.Backend, cfg apitest.Config) (*apitest.Server, *faultyStore, string) {
	t.Helper()
	fs := &faultyStore{}
	cfg.WrapStore, cfg.Breaker = faultWrap(fs), breaker.Config{OpenFor: 50 * time.Millisecond}
	cfg.Spool, cfg.SpoolInterval = openSpool(t, "file", 0), time.Hour
	s := apitest.Start(t, b, cfg)
	t.Cleanup(func() {
		if strings.Contains(s.Metric(), `status="500"`) {
			t.Error("a request was answered 500")
		}
	})
	return s, fs, s.Token(apitest.AllScopes...)
}

// storeBack ends the outage and lets the breaker's open period pass.
func storeBack(fs *faultyStore) {
	fs.down.Store(false)
	time.Sleep(100 * time.Millisecond)
}

func attackEach(t *testing.T, f func(t *testing.T, b apitest.Backend)) {
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) { t.Parallel(); f(t, b) })
	}
}

// TestSpoolAttackEventLiveAndSpooled: an event applied live and sent again during the outage, and again
// once the store is back while the spool still holds it, is in the ledger once; the redelivery that
// reaches a healthy store is answered from the ledger (200, the first transaction), not queued.
func TestSpoolAttackEventLiveAndSpooled(t *testing.T) {
	attackEach(t, func(t *testing.T, b apitest.Backend) {
		s, fs, tok := attackServer(t, b, apitest.Config{})
		first := s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-live", "olga"))
		if first.Status != 201 {
			t.Fatalf("live event: %d %s", first.Status, first.Body)
		}
		fs.down.Store(true)
		spoolWantQueued(t, "the applied event during the outage", s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-live", "olga")),
			"event_id", "ev-live", "webchat")
		spoolWantQueued(t, "a new event during the outage", s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-new", "olga")),
			"event_id", "ev-new", "webchat")
		storeBack(fs)
		// The spool is not drained: the applied event is answered from the ledger, the queued one queued.
		r := s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-live", "olga"))
		if m := r.JSON(t); r.Status != 200 || m["transaction_id"] != first.JSON(t)["transaction_id"] || m["event_id"] != "ev-live" {
			t.Fatalf("the applied event with the spool not drained: %d %s, want 200 and transaction %v", r.Status, r.Body, first.JSON(t)["transaction_id"])
		}
		spoolWantQueued(t, "the queued event again", s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-new", "olga")),
			"event_id", "ev-new", "webchat")
		spoolDrain(t, s)
		faultWantMetric(t, s, `tally_spool_replayed_total{outcome="applied"}`, 1)
		faultWantMetric(t, s, `tally_spool_replayed_total{outcome="replayed"}`, 2)
		for _, id := range []string{"ev-live", "ev-new"} {
			if n := spoolEventCount(t, s, "olga", id); n != 1 {
				t.Fatalf("%s is in the ledger %d times", id, n)
			}
		}
	})
}

// TestSpoolAttackKeyReuse: an explicit accrual key reused with a different body is refused (409) as soon
// as the server can tell: against the spool's own entries during the outage, against the ledger once
// the store is back; one reused against a key applied before the outage, which nothing can tell while
// the store is down, is queued but refused at the replay, never applied as new.
func TestSpoolAttackKeyReuse(t *testing.T) {
	attackEach(t, func(t *testing.T, b apitest.Backend) {
		s, fs, tok := attackServer(t, b, apitest.Config{})
		if r := s.Do("POST", faultProcessPath, tok, faultAccrualBody("k-live", "paul", 10)); r.Status != 201 {
			t.Fatalf("live accrual: %d %s", r.Status, r.Body)
		}
		fs.down.Store(true)
		spoolWantQueued(t, "k-spool", s.Do("POST", faultProcessPath, tok, faultAccrualBody("k-spool", "paul", 5)), "idempotency_key", "k-spool", "e2e")
		wantReused := func(what string, r apitest.Response) {
			t.Helper()
			if r.Status != 409 || r.JSON(t)["code"] != "idempotency_conflict" {
				t.Fatalf("%s: %d %s, want 409 idempotency_conflict", what, r.Status, r.Body)
			}
		}
		wantReused("a spooled key with another amount", s.Do("POST", faultProcessPath, tok, faultAccrualBody("k-spool", "paul", 6)))
		wantReused("a spooled key for another customer", s.Do("POST", faultProcessPath, tok, faultAccrualBody("k-spool", "quinn", 5)))
		spoolWantQueued(t, "an event", s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-x", "pia")), "event_id", "ev-x", "webchat")
		wantReused("the event's id for another customer", s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-x", "quinn")))
		spoolWantQueued(t, "k-spool sent again as it was", s.Do("POST", faultProcessPath, tok, faultAccrualBody("k-spool", "paul", 5)),
			"idempotency_key", "k-spool", "e2e")
		// Applied before the outage: only the ledger knows it, and it is down.
		spoolWantQueued(t, "k-live reused while the store is down", s.Do("POST", faultProcessPath, tok, faultAccrualBody("k-live", "paul", 99)),
			"idempotency_key", "k-live", "e2e")

		storeBack(fs)
		wantReused("k-live reused with the store back", s.Do("POST", faultProcessPath, tok, faultAccrualBody("k-live", "paul", 98)))
		wantReused("k-spool reused with the store back", s.Do("POST", faultProcessPath, tok, faultAccrualBody("k-spool", "paul", 7)))
		spoolWantQueued(t, "k-behind", s.Do("POST", faultProcessPath, tok, faultAccrualBody("k-behind", "paul", 3)), "idempotency_key", "k-behind", "e2e")
		// A write that is never spooled (a redemption) taking a spooled accrual's key would leave the accrual,
		// acknowledged, to be refused by the replay.
		wantReused("a redemption taking k-behind's key", s.Do("POST", faultProcessPath, tok, attackRedeemBody("k-behind", "paul", 5)))
		spoolDrain(t, s)
		faultWantMetric(t, s, `tally_spool_replayed_total{outcome="refused"}`, 1) // k-live with 99
		faultCheckLedger(t, s, "paul", faultAcks{"k-live": 10, "k-spool": 5, "k-behind": 3})
		if n := spoolEventCount(t, s, "pia", "ev-x"); n != 1 {
			t.Fatalf("ev-x is in the ledger %d times", n)
		}
		if _, err := s.Ledger.Balance(context.Background(), s.Hasher.Hash("quinn")); tally.ErrorCode(err) != tally.ENOTFOUND {
			t.Fatalf("quinn has an account (%v): a refused request was applied", err)
		}
		wantReused("k-spool as a redemption after the replay", s.Do("POST", faultProcessPath, tok, attackRedeemBody("k-spool", "paul", 5)))
		wantReused("k-live with 99 after the replay", s.Do("POST", faultProcessPath, tok, faultAccrualBody("k-live", "paul", 99)))
		wantReused("k-spool with 6 after the replay", s.Do("POST", faultProcessPath, tok, faultAccrualBody("k-spool", "paul", 6)))
	})
}

// TestSpoolAttackRedeemDuringDrain: redemptions racing the drain of a customer's spooled accruals spend
// only points already applied: never a negative balance, never more than was accrued, never a 500.
func TestSpoolAttackRedeemDuringDrain(t *testing.T) {
	attackEach(t, func(t *testing.T, b apitest.Backend) {
		s, fs, tok := attackServer(t, b, apitest.Config{})
		fs.down.Store(true)
		acked := faultAcks{}
		for i := range 20 {
			key := fmt.Sprintf("acc-%d", i)
			spoolWantQueued(t, key, s.Do("POST", faultProcessPath, tok, faultAccrualBody(key, "rita", 10)), "idempotency_key", key, "e2e")
			acked[key] = 10
		}
		// While down, a redemption is refused (it needs the balance now).
		faultWant503(t, "redemption while down", s.Do("POST", faultProcessPath, tok, attackRedeemBody("red-down", "rita", 15)))
		storeBack(fs)

		var wg sync.WaitGroup
		var spent, refused atomic.Int64
		var bad atomic.Value
		wg.Add(1)
		go func() { defer wg.Done(); spoolDrain(t, s) }()
		for c := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 10 {
					r := s.Do("POST", faultProcessPath, tok, attackRedeemBody(fmt.Sprintf("red-%d-%d", c, i), "rita", 15))
					switch {
					case r.Status == 201:
						spent.Add(15)
						if m := r.JSON(t); m["balance"].(float64) < 0 {
							bad.Store(fmt.Sprintf("a redemption left a negative balance: %s", r.Body))
						}
					case r.Status == 422 && strings.Contains(string(r.Body), "insufficient"),
						r.Status == 404 && strings.Contains(string(r.Body), "no account"): // nothing applied yet
						refused.Add(1)
					case r.Status == 503:
					default:
						bad.Store(fmt.Sprintf("redemption: %d %s", r.Status, r.Body))
					}
					l := s.Do("POST", faultLookupPath, tok, faultLookupBody("rita"))
					if l.Status == 200 && l.JSON(t)["balance"].(float64) < 0 {
						bad.Store(fmt.Sprintf("a lookup saw a negative balance: %s", l.Body))
					}
				}
			}()
		}
		wg.Wait()
		if v := bad.Load(); v != nil {
			t.Fatal(v)
		}
		spoolDrain(t, s)
		acct, err := s.Ledger.Balance(context.Background(), s.Hasher.Hash("rita"))
		if err != nil {
			t.Fatal(err)
		}
		if spent.Load() > 200 || acct.Balance != 200-spent.Load() || acct.Balance < 0 {
			t.Fatalf("accrued 200, redeemed %d, balance %d", spent.Load(), acct.Balance)
		}
		t.Logf("redeemed %d points in %d redemptions, %d refused for insufficient points, balance %d", spent.Load(), spent.Load()/15, refused.Load(), acct.Balance)
	})
}

func attackRedeemBody(key, customer string, amount int64) []byte {
	return []byte(strings.Replace(string(faultAccrualBody(key, customer, amount)), `"accrual"`, `"redemption"`, 1))
}

// spoolCapProgramme pays 10 points for a closed chat, at most 30 a customer a day.
const spoolCapProgramme = `{
  "earning_rules": [{"name": "chat", "filter": "$.state = 'closed'", "points": 10, "caps": {"day": 30}}],
  "tiers": [{"name": "base", "min_points": 0}]
}`

// TestSpoolAttackCaps: a daily cap holds over spooled events, events sent again while queued, and live
// events racing the drain: the customer gets exactly the cap, each event is recorded once.
func TestSpoolAttackCaps(t *testing.T) {
	attackEach(t, func(t *testing.T, b apitest.Backend) {
		p, err := earning.ParseProgramme([]byte(spoolCapProgramme))
		if err != nil {
			t.Fatal(err)
		}
		s, fs, tok := attackServer(t, b, apitest.Config{Programme: p})
		fs.down.Store(true)
		for i := range 6 {
			id := fmt.Sprintf("cap-%d", i)
			spoolWantQueued(t, id, s.Do("POST", faultProcessPath, tok, spoolEventBody(id, "sara")), "event_id", id, "webchat")
		}
		storeBack(fs)
		var wg sync.WaitGroup
		var bad atomic.Value
		wg.Add(1)
		go func() { defer wg.Done(); spoolDrain(t, s) }()
		for c := range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 4 {
					id := fmt.Sprintf("cap-%d", (c*4+i)%9) // some spooled, some new
					r := s.Do("POST", faultProcessPath, tok, spoolEventBody(id, "sara"))
					if r.Status != 200 && r.Status != 201 && r.Status != 202 {
						bad.Store(fmt.Sprintf("%s: %d %s", id, r.Status, r.Body))
					}
				}
			}()
		}
		wg.Wait()
		if v := bad.Load(); v != nil {
			t.Fatal(v)
		}
		spoolDrain(t, s)
		acct, err := s.Ledger.Balance(context.Background(), s.Hasher.Hash("sara"))
		if err != nil || acct.Balance != 30 {
			t.Fatalf("balance %d (%v), want the day's cap, 30", acct.Balance, err)
		}
		for i := range 9 {
			id := fmt.Sprintf("cap-%d", i)
			if n := spoolEventCount(t, s, "sara", id); n > 1 {
				t.Fatalf("%s is in the ledger %d times", id, n)
			}
		}
		faultCheckLedger(t, s, "sara", faultAcks{"cap-0": 10, "cap-1": 10, "cap-2": 10})
	})
}

// TestSpoolAttackInvalidWhileDown: while the store is down nothing invalid is acknowledged: every bad
// body is answered 4xx, and an accrual conditional on a balance_version (which only the store can
// check) 503, never 202; nothing reaches the spool.
func TestSpoolAttackInvalidWhileDown(t *testing.T) {
	attackEach(t, func(t *testing.T, b apitest.Backend) {
		s, fs, tok := attackServer(t, b, apitest.Config{})
		fs.down.Store(true)
		long := strings.Repeat("x", 300)
		bodies := map[string]string{
			"not JSON":                  `{"idempotency_key":"a1","kind":"accrual"`,
			"an array":                  `[1,2]`,
			"duplicate member":          `{"idempotency_key":"a2","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":5,"amount":500}`,
			"unknown member":            `{"idempotency_key":"a3","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":5,"bonus":1}`,
			"negative amount":           `{"idempotency_key":"a4","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":-5}`,
			"zero amount":               `{"idempotency_key":"a5","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":0}`,
			"amount over the maximum":   `{"idempotency_key":"a6","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":10000000000000000}`,
			"amount a float":            `{"idempotency_key":"a7","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":5.5}`,
			"amount a string":           `{"idempotency_key":"a8","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":"5"}`,
			"unknown kind":              `{"idempotency_key":"a9","channel":"e2e","customer_hash":"tom","kind":"gift","amount":5}`,
			"reserved channel":          `{"idempotency_key":"a10","channel":"portal","customer_hash":"tom","kind":"accrual","amount":5}`,
			"event-looking channel":     `{"idempotency_key":"a11","channel":"event:genesys","customer_hash":"tom","kind":"accrual","amount":5}`,
			"empty key":                 `{"idempotency_key":"","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":5}`,
			"key too long":              `{"idempotency_key":"` + long + `","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":5}`,
			"NUL in the key":            `{"idempotency_key":"a\u0000b","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":5}`,
			"no customer":               `{"idempotency_key":"a12","channel":"e2e","kind":"accrual","amount":5}`,
			"accrual naming a reward":   `{"idempotency_key":"a13","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":5,"reward_id":"mug"}`,
			"accrual reversing":         `{"idempotency_key":"a14","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":5,"reverses_transaction_id":1}`,
			"metadata not an object":    `{"idempotency_key":"a15","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":5,"metadata":[1]}`,
			"negative balance_version":  `{"idempotency_key":"a16","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":5,"balance_version":-1}`,
			"event that earns, no user": `{"event_id":"e1","type":"WebChat","state":"closed","channel":"webchat"}`,
			"event without an id":       `{"type":"WebChat","state":"closed","user_id":"tom","channel":"webchat"}`,
			"event id too long":         `{"event_id":"` + long + `","type":"WebChat","state":"closed","user_id":"tom","channel":"webchat"}`,
			"event, duplicate user":     `{"event_id":"e2","type":"WebChat","state":"closed","user_id":"tom","user_id":"ann","channel":"webchat"}`,
		}
		for name, body := range bodies {
			r := s.Do("POST", faultProcessPath, tok, []byte(body))
			if r.Status/100 != 4 {
				t.Errorf("%s while the store is down: %d %s, want a 4xx", name, r.Status, r.Body)
			}
		}
		conditional := `{"idempotency_key":"c1","channel":"e2e","customer_hash":"tom","kind":"accrual","amount":5,"balance_version":3}`
		faultWant503(t, "an accrual conditional on a balance_version", s.Do("POST", faultProcessPath, tok, []byte(conditional)))
		if v, ok := faultMetric(t, s.Metric(), `tally_spool_appends_total{result="ok"}`); ok && v != 0 {
			t.Fatalf("%v invalid requests were kept in the spool", v)
		}
		storeBack(fs)
		spoolDrain(t, s)
		if _, err := s.Ledger.Balance(context.Background(), s.Hasher.Hash("tom")); tally.ErrorCode(err) != tally.ENOTFOUND {
			t.Fatalf("tom has an account (%v): something invalid was applied", err)
		}
	})
}
