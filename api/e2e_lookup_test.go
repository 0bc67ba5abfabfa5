package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
)

const e2eLookupPath = "/v1/ledger/balance/lookup"

// e2eLookupAnswer is the body of a balance lookup.
type e2eLookupAnswer struct {
	CustomerHash     string `json:"customer_hash"`
	Balance          int64  `json:"balance"`
	Tier             string `json:"tier"`
	BalanceVersion   int64  `json:"balance_version"`
	SessionToken     string `json:"session_token"`
	SessionExpiresIn int64  `json:"session_expires_in"`
	Stale            bool   `json:"stale"`
	AsOf             string `json:"as_of"`
}

// e2eLookup looks a customer up and expects 200.
func e2eLookup(t testing.TB, srv *apitest.Server, body []byte) e2eLookupAnswer {
	t.Helper()
	res := e2eDo(t, srv, "POST", e2eLookupPath, srv.Token(tally.ScopeLedgerRead), body)
	e2eStatus(t, res, http.StatusOK)
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var a e2eLookupAnswer
	if err := json.Unmarshal(res.Body, &a); err != nil {
		t.Fatalf("lookup body %s: %v", res.Body, err)
	}
	return a
}

func TestE2ELookupUnknownCustomer(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		a := e2eLookup(t, srv, e2eSample(t, "guide-lookup-request.json"))
		hash := srv.Hasher.Hash("c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21")
		if a.CustomerHash != "th_"+hash || !tally.IsCustomerHash(strings.TrimPrefix(a.CustomerHash, "th_")) {
			t.Errorf("customer_hash %q, want th_%s", a.CustomerHash, hash)
		}
		if a.Balance != 0 || a.Tier != "base" || a.BalanceVersion != 0 || a.Stale {
			t.Errorf("unknown customer: %+v", a)
		}
		if a.SessionToken == "" || a.SessionExpiresIn <= 0 || a.AsOf == "" {
			t.Errorf("session token %q expiring in %d s, as_of %q", a.SessionToken, a.SessionExpiresIn, a.AsOf)
		}
		// A lookup creates nothing.
		if _, err := srv.Store.Account(context.Background(), hash); tally.ErrorCode(err) != tally.ENOTFOUND {
			t.Errorf("the lookup of an unknown customer made an account: %v", err)
		}
		if n := e2eCount(t, srv); n != 0 {
			t.Errorf("a lookup wrote %d transactions", n)
		}
	})
}

func TestE2ELookupAfterAccruals(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		const cust = "cust-lookup"
		e2eAccrue(t, srv, cust, "acc-1", 100)
		last := e2eAccrue(t, srv, cust, "acc-2", 4950)
		a := e2eLookup(t, srv, []byte(`{"customer_hash":"`+cust+`","channel":"webchat"}`))
		if a.Balance != 5050 || a.BalanceVersion != 2 || a.Tier != "silver" || a.Stale {
			t.Errorf("after two accruals: %+v", a)
		}
		if a.CustomerHash != last.CustomerHash || a.BalanceVersion != *last.BalanceVersion {
			t.Errorf("lookup %+v disagrees with the last write %+v", a, last)
		}

		// The customer_hash a lookup returns is taken as is, by lookups and by writes.
		again := e2eLookup(t, srv, []byte(`{"customer_hash":"`+a.CustomerHash+`"}`))
		if again.CustomerHash != a.CustomerHash || again.Balance != 5050 {
			t.Errorf("lookup by th_ hash: %+v", again)
		}
		e2eWrite(t, srv, srv.Token(tally.ScopeLedgerWrite), map[string]any{"idempotency_key": "red-1", "customer_hash": a.CustomerHash,
			"kind": "redemption", "amount": 100, "reason": "RWD-8842", "balance_version": a.BalanceVersion}, http.StatusCreated)
		if got := e2eLookup(t, srv, []byte(`{"customer_hash":"`+cust+`"}`)); got.Balance != 4950 || got.BalanceVersion != 3 || got.Tier != "silver" {
			// Redemptions do not lower qualifying points: the tier earned stays.
			t.Errorf("after a redemption by th_ hash: %+v", got)
		}
		// Surrounding white space does not make another customer.
		if got := e2eLookup(t, srv, []byte(`{"customer_hash":"  `+cust+`\n"}`)); got.CustomerHash != a.CustomerHash {
			t.Errorf("padded identifier looked up %q, want %q", got.CustomerHash, a.CustomerHash)
		}
	})
}

func TestE2ELookupRefusals(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		token := srv.Token(tally.ScopeLedgerRead)
		hex64 := strings.Repeat("ab", 32)
		for _, tc := range []struct {
			name   string
			body   string
			status int
			code   tally.Code
		}{
			{"empty customer_hash", `{"customer_hash":""}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"blank customer_hash", `{"customer_hash":"   "}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"no customer_hash", `{"channel":"webchat"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"th_ and not hex", `{"customer_hash":"th_not-hex-at-all"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"th_ and short hex", `{"customer_hash":"th_abcdef"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"th_ and upper-case hex", `{"customer_hash":"th_` + strings.ToUpper(hex64) + `"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"th_ alone", `{"customer_hash":"th_"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"too long", `{"customer_hash":"` + strings.Repeat("x", 257) + `"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"customer_hash a number", `{"customer_hash":42}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"array", `["c7d1e3f0"]`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"malformed JSON", `{"customer_hash":"abc"`, http.StatusBadRequest, "malformed_request"},
			{"not JSON", `customer_hash=abc`, http.StatusBadRequest, "malformed_request"},
			{"empty", ``, http.StatusBadRequest, "malformed_request"},
			// JSON that parses, with a string that is not text: 422 like every other unusable value (the
			// bad-text cases of every route are in e2e_input_test.go).
			{"invalid UTF-8", "{\"customer_hash\":\"cust-\xff\"}", http.StatusUnprocessableEntity, tally.EINVALID},
			{"nested 51 deep", `{"customer_hash":"c","x":` + strings.Repeat("[", 50) + strings.Repeat("]", 50) + `}`, http.StatusBadRequest, "malformed_request"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e2eProblem(t, e2eDo(t, srv, "POST", e2eLookupPath, token, []byte(tc.body)), tc.status, tc.code)
			})
		}
		t.Run("nested 50 deep", func(t *testing.T) {
			body := `{"customer_hash":"c","x":` + strings.Repeat("[", 49) + strings.Repeat("]", 49) + `}`
			e2eStatus(t, e2eDo(t, srv, "POST", e2eLookupPath, token, []byte(body)), http.StatusOK)
		})
		t.Run("a valid th_ hash of no account", func(t *testing.T) {
			if a := e2eLookup(t, srv, []byte(`{"customer_hash":"th_`+hex64+`"}`)); a.CustomerHash != "th_"+hex64 || a.Balance != 0 {
				t.Errorf("%+v", a)
			}
		})
	})
}

func TestE2ELookupSessionTokens(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		ctx := context.Background()
		first := e2eLookup(t, srv, []byte(`{"customer_hash":"session-a","channel":"webchat","request_id":"1"}`))
		again := e2eLookup(t, srv, []byte(`{"customer_hash":"session-a","channel":"webchat","request_id":"2"}`))
		other := e2eLookup(t, srv, []byte(`{"customer_hash":"session-b","channel":"webchat","request_id":"3"}`))
		// Lookups of one conversation reuse the session token; another customer gets another one.
		if first.SessionToken != again.SessionToken {
			t.Error("a second lookup signed a new session token while the first had most of its life left")
		}
		if other.SessionToken == first.SessionToken {
			t.Fatal("two customers share a session token")
		}
		for _, c := range []struct {
			raw string
			a   e2eLookupAnswer
		}{{"session-a", again}, {"session-b", other}} {
			got, err := srv.Issuer.VerifySession(ctx, c.a.SessionToken)
			if err != nil || got != srv.Hasher.Hash(c.raw) {
				t.Errorf("session of %s names %q (%v)", c.raw, got, err)
			}
			if c.a.SessionExpiresIn <= 0 || c.a.SessionExpiresIn > 900 {
				t.Errorf("session_expires_in %d", c.a.SessionExpiresIn)
			}
		}
	})
}
