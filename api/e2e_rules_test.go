package api_test

import (
	"bytes"
	"net/http"
	"sync"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
)

// TestE2EEarningRules drives the rules over HTTP: a rule created through the admin API pays events at
// once, a new version pays new events while a redelivered event replays its first answer, a day cap
// holds against concurrent events of one customer, and the accrual that reaches a tier's threshold
// raises the stored tier that lookups answer.
func TestE2EEarningRules(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		admin, write, read := srv.Token(tally.ScopeAdmin), srv.Token(tally.ScopeLedgerWrite), srv.Token(tally.ScopeLedgerRead)
		must := func(res apitest.Response, status int) map[string]any {
			t.Helper()
			if res.Status != status {
				t.Fatalf("answered %d, want %d: %s", res.Status, status, res.Body)
			}
			return res.JSON(t)
		}
		must(srv.Do("POST", "/v1/admin/rules", admin, []byte(`{"name":"call","filter":"$.type = 'Voice'","points":"handle_time_seconds / 60","priority":5}`)), 201)
		must(srv.Do("POST", "/v1/admin/rules", admin, []byte(`{"name":"survey","filter":"exists($.survey_score)","points":4,"stackable":true,"caps":{"day":10}}`)), 201)

		call := []byte(`{"event_id":"call-1","channel":"voice","user_id":"dana","type":"Voice","handle_time_seconds":600,"survey_score":9}`)
		first := must(srv.Do("POST", "/v1/ledger/transaction/process", write, call), 201)
		if first["amount"] != float64(14) || len(first["rules"].([]any)) != 2 {
			t.Fatalf("first answer: %v", first)
		}
		must(srv.Do("PUT", "/v1/admin/rules/call", admin, []byte(`{"filter":"$.type = 'Voice'","points":100,"expected_version":1}`)), 200)
		again := srv.Do("POST", "/v1/ledger/transaction/process", write, call)
		if again.Status != 200 || !bytes.Equal(again.Body, srv.Do("POST", "/v1/ledger/transaction/process", write, call).Body) || again.JSON(t)["amount"] != float64(14) {
			t.Fatalf("a redelivery after the rule changed: %d %s", again.Status, again.Body)
		}

		// Eight surveys at once: the day cap of 10 leaves 6 after the first event's 4.
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				body := []byte(`{"event_id":"survey-` + string(rune('a'+i)) + `","user_id":"dana","survey_score":5}`)
				if res := srv.Do("POST", "/v1/ledger/transaction/process", write, body); res.Status != 201 && res.Status != 200 {
					t.Errorf("survey %d: %d %s", i, res.Status, res.Body)
				}
			}()
		}
		wg.Wait()
		look := must(srv.Do("POST", "/v1/ledger/balance/lookup", read, []byte(`{"customer_hash":"dana"}`)), 200)
		if look["balance"] != float64(14+6) || look["tier"] != "base" {
			t.Fatalf("after the surveys: %v", look)
		}

		// A long call reaches silver (5000 qualifying points) at once.
		long := []byte(`{"event_id":"call-2","user_id":"dana","type":"Voice","handle_time_seconds":60}`)
		must(srv.Do("PUT", "/v1/admin/rules/call", admin, []byte(`{"filter":"$.type = 'Voice'","points":4980}`)), 200)
		res := must(srv.Do("POST", "/v1/ledger/transaction/process", write, long), 201)
		if res["tier_upgrade"] != "silver" {
			t.Fatalf("the accrual that reaches silver: %v", res)
		}
		if look := must(srv.Do("POST", "/v1/ledger/balance/lookup", read, []byte(`{"customer_hash":"dana"}`)), 200); look["tier"] != "silver" {
			t.Fatalf("lookup after the upgrade: %v", look)
		}
		st := must(srv.Do("GET", "/v1/admin/customers/dana/tier", admin, nil), 200)
		if st["tier"] != "silver" || st["qualifying_points"] != float64(5000) || len(st["history"].([]any)) != 1 {
			t.Fatalf("tier standing: %v", st)
		}
		test := must(srv.Do("POST", "/v1/admin/rules/test", admin, long), 200)
		if test["points"] != float64(4980) || test["tier"] != "silver" {
			t.Fatalf("rules test: %v", test)
		}
		if res := srv.Do("GET", "/v1/admin/rules/test", admin, nil); res.Status != http.StatusMethodNotAllowed {
			t.Fatalf("GET /v1/admin/rules/test: %d", res.Status)
		}
	})
}
