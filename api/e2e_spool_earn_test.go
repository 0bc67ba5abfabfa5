package api_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/breaker"
	"github.com/tally-ledger/tally/earning"
	"github.com/tally-ledger/tally/ledger"
)

// spoolClock is a test's controllable time: the ledger's, the earning engine's and the spool's.
type spoolClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *spoolClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *spoolClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// spoolCampaignProgramme pays 10 points for a closed chat, and 20 more during a campaign that ends at
// midnight on 2026-03-11, at most 40 campaign points a customer a day.
const spoolCampaignProgramme = `{
  "earning_rules": [
    {"name": "chat", "filter": "$.state = 'closed'", "points": 10, "priority": 1},
    {"name": "campaign", "filter": "$.state = 'closed'", "points": 20, "stackable": true,
     "start": "2026-03-01T00:00:00Z", "end": "2026-03-11T00:00:00Z", "caps": {"day": 40}}
  ],
  "tiers": [{"name": "base", "min_points": 0}]
}`

// TestSpoolEarnsAsOfArrival: an event that arrived while the store was down, during a campaign that
// closed before the store came back, earns the campaign's points when replayed, and counts in the
// campaign's daily cap of the day it arrived; the lot of its points expires counting from its arrival;
// an event the spool holds twice is applied once, and a redelivery after the replay answers the first
// award, not a new decision by the rules of the day.
func TestSpoolEarnsAsOfArrival(t *testing.T) {
	spoolEach(t, func(t *testing.T, b apitest.Backend, kind string) {
		p, err := earning.ParseProgramme([]byte(spoolCampaignProgramme))
		if err != nil {
			t.Fatal(err)
		}
		clk := &spoolClock{now: time.Date(2026, 3, 10, 23, 0, 0, 0, time.UTC)}
		fs := &faultyStore{}
		s := apitest.Start(t, b, apitest.Config{
			WrapStore: faultWrap(fs), Breaker: breaker.Config{OpenFor: 50 * time.Millisecond},
			Spool: openSpool(t, kind, 0), SpoolInterval: time.Hour, Programme: p, Clock: clk.Now,
			Lots: tally.LotPolicy{Expiry: tally.ExpiryPolicy{Policy: tally.ExpireAfterDays, Days: 30}},
		})
		tok := s.Token(apitest.AllScopes...)
		earned := func(what string, r apitest.Response, status int, points float64) {
			t.Helper()
			if r.Status != status {
				t.Fatalf("%s: status %d, want %d; body %s", what, r.Status, status, r.Body)
			}
			if m := r.JSON(t); m["amount"] != points {
				t.Fatalf("%s: earned %v, want %v; body %s", what, m["amount"], points, r.Body)
			}
		}

		// 23:00, the store is up: chat 10 + campaign 20; the campaign's day cap has 20 left.
		earned("live event in the campaign", s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-1", "nina")), 201, 30)

		// 23:40 and 23:45: the store is down, both events are queued (the first one twice).
		fs.down.Store(true)
		clk.Set(time.Date(2026, 3, 10, 23, 40, 0, 0, time.UTC))
		arrived := clk.Now()
		spoolWantQueued(t, "ev-2", s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-2", "nina")), "event_id", "ev-2", "webchat")
		clk.Set(time.Date(2026, 3, 10, 23, 45, 0, 0, time.UTC))
		spoolWantQueued(t, "ev-3", s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-3", "nina")), "event_id", "ev-3", "webchat")
		spoolWantQueued(t, "ev-2 again", s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-2", "nina")), "event_id", "ev-2", "webchat")

		// 01:00 the next day: the campaign is over and a new cap day has begun when the store is back.
		clk.Set(time.Date(2026, 3, 11, 1, 0, 0, 0, time.UTC))
		fs.down.Store(false)
		time.Sleep(100 * time.Millisecond) // let the breaker's open period pass
		spoolDrain(t, s)
		faultWantMetric(t, s, `tally_spool_replayed_total{outcome="applied"}`, 2)
		faultWantMetric(t, s, `tally_spool_replayed_total{outcome="replayed"}`, 1)

		// ev-2 earned the campaign (30); ev-3 found the day's cap of March 10th spent (10), where the
		// replay's own day, March 11th, would have had the whole cap left.
		earned("ev-2 redelivered after the replay", s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-2", "nina")), 200, 30)
		earned("ev-3 redelivered after the replay", s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-3", "nina")), 200, 10)
		// A live event now: the campaign is over.
		earned("live event after the campaign", s.Do("POST", faultProcessPath, tok, spoolEventBody("ev-4", "nina")), 201, 10)
		for _, id := range []string{"ev-1", "ev-2", "ev-3", "ev-4"} {
			if n := spoolEventCount(t, s, "nina", id); n != 1 {
				t.Fatalf("%s is in the ledger %d times", id, n)
			}
		}
		acct, err := s.Ledger.Balance(context.Background(), s.Hasher.Hash("nina"))
		if err != nil || acct.Balance != 80 {
			t.Fatalf("balance %d (%v), want 80", acct.Balance, err)
		}

		// The lot of ev-2's points expires 30 days after it arrived, not after its replay.
		lots, err := s.Ledger.Lots(context.Background(), s.Hasher.Hash("nina"))
		if err != nil {
			t.Fatal(err)
		}
		want := arrived.AddDate(0, 0, 30)
		found := false
		for _, l := range lots {
			if l.Points == 30 && !l.CreatedAt.Before(clk.Now()) {
				found = true
				if l.ExpiresAt == nil || !l.ExpiresAt.Equal(want) {
					t.Fatalf("the replayed lot expires at %v, want %v (30 days after its arrival)", l.ExpiresAt, want)
				}
			}
		}
		if !found {
			t.Fatalf("no lot of the replayed event among %+v", lots)
		}
		if _, err := ledger.Verify(context.Background(), s.Store.Audit(), ledger.VerifyOptions{Key: apitest.Key}); err != nil {
			t.Fatalf("verify: %v", err)
		}
	})
}
