package api_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
)

// e2eHistoryPage is a page of GET /v1/ledger/accounts/{customer}/history.
type e2eHistoryPage struct {
	CustomerHash string `json:"customer_hash"`
	Transactions []struct {
		TransactionID int64  `json:"transaction_id"`
		Kind          string `json:"kind"`
		CustomerHash  string `json:"customer_hash"`
		Amount        int64  `json:"amount"`
		Delta         int64  `json:"delta"`
		Key           string `json:"idempotency_key"`
	} `json:"transactions"`
	NextCursor *string `json:"next_cursor"`
}

func TestE2EAdminHistory(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		read := srv.Token(tally.ScopeLedgerRead)
		const cust = "cust-history"
		var written []e2eWritten
		for i := range 5 {
			written = append(written, e2eAccrue(t, srv, cust, fmt.Sprintf("acc-%d", i), int64(10+i)))
		}
		e2eAccrue(t, srv, "someone-else", "other-1", 99)
		hash := written[0].CustomerHash

		// Pages of two, newest first, until a page names no next cursor.
		var seen []int64
		path := "/v1/ledger/accounts/" + hash + "/history?limit=2"
		for page := 0; ; page++ {
			if page > 3 {
				t.Fatalf("paging does not end: %v", seen)
			}
			res := e2eDo(t, srv, "GET", path, read, nil)
			e2eStatus(t, res, http.StatusOK)
			var p e2eHistoryPage
			if err := json.Unmarshal(res.Body, &p); err != nil {
				t.Fatal(err)
			}
			if p.CustomerHash != hash || len(p.Transactions) == 0 || len(p.Transactions) > 2 {
				t.Fatalf("page %d: %s", page, res.Body)
			}
			for _, tx := range p.Transactions {
				if tx.CustomerHash != hash || tx.Kind != "accrual" || tx.Delta != tx.Amount {
					t.Errorf("history shows %+v", tx)
				}
				seen = append(seen, tx.TransactionID)
			}
			if p.NextCursor == nil {
				break
			}
			if *p.NextCursor == "" {
				t.Fatalf("empty next_cursor: %s", res.Body)
			}
			path = "/v1/ledger/accounts/" + hash + "/history?limit=2&cursor=" + url.QueryEscape(*p.NextCursor)
		}
		want := []int64{written[4].TransactionID, written[3].TransactionID, written[2].TransactionID, written[1].TransactionID, written[0].TransactionID}
		if fmt.Sprint(seen) != fmt.Sprint(want) {
			t.Errorf("history %v, want %v", seen, want)
		}

		// The raw identifier names the same account.
		res := e2eDo(t, srv, "GET", "/v1/ledger/accounts/"+cust+"/history", read, nil)
		e2eStatus(t, res, http.StatusOK)
		var all e2eHistoryPage
		if err := json.Unmarshal(res.Body, &all); err != nil || len(all.Transactions) != 5 || all.NextCursor != nil {
			t.Errorf("whole history by raw identifier: %s", res.Body)
		}
		// A customer with no account has an empty history.
		res = e2eDo(t, srv, "GET", "/v1/ledger/accounts/nobody/history", read, nil)
		e2eStatus(t, res, http.StatusOK)
		if !strings.Contains(string(res.Body), `"transactions":[]`) {
			t.Errorf("empty history: %s", res.Body)
		}

		for _, tc := range []struct {
			name, query string
			status      int
			code        tally.Code
		}{
			{"limit zero", "?limit=0", http.StatusUnprocessableEntity, tally.EINVALID},
			{"limit negative", "?limit=-1", http.StatusUnprocessableEntity, tally.EINVALID},
			{"limit not a number", "?limit=two", http.StatusUnprocessableEntity, tally.EINVALID},
			{"limit too large", "?limit=501", http.StatusUnprocessableEntity, tally.EINVALID},
			{"cursor malformed", "?cursor=bogus", http.StatusUnprocessableEntity, tally.EINVALID},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e2eProblem(t, e2eDo(t, srv, "GET", "/v1/ledger/accounts/"+hash+"/history"+tc.query, read, nil), tc.status, tc.code)
			})
		}
		t.Run("bad th_ hash", func(t *testing.T) {
			e2eProblem(t, e2eDo(t, srv, "GET", "/v1/ledger/accounts/th_123/history", read, nil), http.StatusUnprocessableEntity, tally.EINVALID)
		})
		t.Run("without a token", func(t *testing.T) {
			e2eProblem(t, e2eDo(t, srv, "GET", "/v1/ledger/accounts/"+hash+"/history", "", nil), http.StatusUnauthorized, tally.EUNAUTHORIZED)
		})
	})
}

func TestE2EAdminTransaction(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		read := srv.Token(tally.ScopeLedgerRead)
		w := e2eWrite(t, srv, srv.Token(tally.ScopeLedgerWrite), map[string]any{"idempotency_key": "acc-meta", "customer_hash": "cust-tx",
			"kind": "accrual", "amount": 25, "reason": "survey", "metadata": map[string]any{"survey": "nps", "score": 9}}, http.StatusCreated)

		res := e2eDo(t, srv, "GET", fmt.Sprintf("/v1/ledger/transactions/%d", w.TransactionID), read, nil)
		e2eStatus(t, res, http.StatusOK)
		var tx struct {
			TransactionID int64           `json:"transaction_id"`
			Kind          string          `json:"kind"`
			CustomerHash  string          `json:"customer_hash"`
			Amount        int64           `json:"amount"`
			Delta         int64           `json:"delta"`
			Channel       string          `json:"channel"`
			Key           string          `json:"idempotency_key"`
			Reason        string          `json:"reason"`
			Metadata      json.RawMessage `json:"metadata"`
			CreatedAt     string          `json:"created_at"`
			Postings      []tally.Posting `json:"postings"`
			Hash          string          `json:"hash"`
		}
		if err := json.Unmarshal(res.Body, &tx); err != nil {
			t.Fatal(err)
		}
		if tx.TransactionID != w.TransactionID || tx.Kind != "accrual" || tx.CustomerHash != w.CustomerHash || tx.Amount != 25 ||
			tx.Delta != 25 || tx.Channel != "api" || tx.Key != "acc-meta" || tx.Reason != "survey" || tx.Hash != w.Hash {
			t.Errorf("transaction %s, written %+v", res.Body, w)
		}
		if string(tx.Metadata) != `{"score":9,"survey":"nps"}` {
			t.Errorf("metadata %s", tx.Metadata)
		}
		if _, err := time.Parse(time.RFC3339Nano, tx.CreatedAt); err != nil {
			t.Errorf("created_at %q: %v", tx.CreatedAt, err)
		}
		var sum int64
		for _, p := range tx.Postings {
			sum += p.Amount
		}
		if len(tx.Postings) != 2 || sum != 0 || tx.Postings[0].AccountID != w.CustomerHash || tx.Postings[1].AccountID != tally.AccountIssuance {
			t.Errorf("postings %+v", tx.Postings)
		}

		for _, tc := range []struct {
			id     string
			status int
			code   tally.Code
		}{
			{"999999", http.StatusNotFound, tally.ENOTFOUND},
			{"0", http.StatusUnprocessableEntity, tally.EINVALID},
			{"-1", http.StatusUnprocessableEntity, tally.EINVALID},
			{"abc", http.StatusUnprocessableEntity, tally.EINVALID},
		} {
			t.Run(tc.id, func(t *testing.T) {
				e2eProblem(t, e2eDo(t, srv, "GET", "/v1/ledger/transactions/"+tc.id, read, nil), tc.status, tc.code)
			})
		}
	})
}

func TestE2EAdminRewards(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		admin := srv.Token(tally.ScopeAdmin)
		read := srv.Token(tally.ScopeLedgerRead)
		const path = "/v1/catalog/rewards/RWD-8842"
		body := []byte(`{"name":"Coffee voucher","point_cost":2500,"inventory":10,"fulfillment_method":"email"}`)

		e2eProblem(t, e2eDo(t, srv, "PUT", path, read, body), http.StatusForbidden, tally.EFORBIDDEN)
		before := time.Now().Add(-time.Second)
		res := e2eDo(t, srv, "PUT", path, admin, body)
		e2eStatus(t, res, http.StatusOK)
		var put tally.Reward
		if err := json.Unmarshal(res.Body, &put); err != nil {
			t.Fatal(err)
		}
		if put.ID != "RWD-8842" || put.Name != "Coffee voucher" || put.PointCost != 2500 || put.Inventory == nil || *put.Inventory != 10 || !put.Active {
			t.Errorf("PUT answered %s", res.Body)
		}
		if put.CreatedAt.Before(before) || put.UpdatedAt.Before(before) {
			t.Errorf("PUT answered timestamps %v, %v", put.CreatedAt, put.UpdatedAt)
		}

		get := e2eDo(t, srv, "GET", path, read, nil)
		e2eStatus(t, get, http.StatusOK)
		var got tally.Reward
		if err := json.Unmarshal(get.Body, &got); err != nil {
			t.Fatal(err)
		}
		if got.ID != put.ID || got.Name != put.Name || got.PointCost != put.PointCost || !got.CreatedAt.Equal(put.CreatedAt) {
			t.Errorf("GET %s after PUT %s", get.Body, res.Body)
		}
		e2eProblem(t, e2eDo(t, srv, "GET", "/v1/catalog/rewards/RWD-none", read, nil), http.StatusNotFound, tally.ENOTFOUND)

		// A second PUT replaces the reward but keeps its creation time.
		res = e2eDo(t, srv, "PUT", path, admin, []byte(`{"name":"Large coffee","point_cost":3000,"inventory":null,"fulfillment_method":"email","active":false}`))
		e2eStatus(t, res, http.StatusOK)
		var replaced tally.Reward
		if err := json.Unmarshal(res.Body, &replaced); err != nil {
			t.Fatal(err)
		}
		if replaced.Name != "Large coffee" || replaced.Inventory != nil || replaced.Active || !replaced.CreatedAt.Equal(put.CreatedAt) {
			t.Errorf("replaced: %s (created first at %v)", res.Body, put.CreatedAt)
		}
		list := e2eDo(t, srv, "GET", "/v1/catalog/rewards", read, nil)
		e2eStatus(t, list, http.StatusOK)
		var catalog struct {
			Rewards []tally.Reward `json:"rewards"`
		}
		if err := json.Unmarshal(list.Body, &catalog); err != nil || len(catalog.Rewards) != 1 || catalog.Rewards[0].Name != "Large coffee" {
			t.Errorf("catalog %s", list.Body)
		}

		for _, tc := range []struct {
			name, id, body string
			status         int
			code           tally.Code
		}{
			{"no name", "R1", `{"point_cost":1,"fulfillment_method":"email"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"blank name", "R1", `{"name":"  ","point_cost":1,"fulfillment_method":"email"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"zero cost", "R1", `{"name":"n","point_cost":0,"fulfillment_method":"email"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"negative cost", "R1", `{"name":"n","point_cost":-1,"fulfillment_method":"email"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"cost beyond MaxAmount", "R1", `{"name":"n","point_cost":9007199254740992,"fulfillment_method":"email"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"cost a string", "R1", `{"name":"n","point_cost":"1","fulfillment_method":"email"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"negative inventory", "R1", `{"name":"n","point_cost":1,"inventory":-1,"fulfillment_method":"email"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"no fulfillment", "R1", `{"name":"n","point_cost":1}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"webhook without URL", "R1", `{"name":"n","point_cost":1,"fulfillment_method":"webhook"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"webhook with ftp URL", "R1", `{"name":"n","point_cost":1,"fulfillment_method":"webhook","webhook_url":"ftp://x"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"id differs from path", "R1", `{"reward_id":"R2","name":"n","point_cost":1,"fulfillment_method":"email"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"id with a space", "R%201", `{"name":"n","point_cost":1,"fulfillment_method":"email"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"id too long", strings.Repeat("R", 65), `{"name":"n","point_cost":1,"fulfillment_method":"email"}`, http.StatusUnprocessableEntity, tally.EINVALID},
			{"malformed", "R1", `{"name":`, http.StatusBadRequest, "malformed_request"},
			{"empty", "R1", ``, http.StatusBadRequest, "malformed_request"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e2eProblem(t, e2eDo(t, srv, "PUT", "/v1/catalog/rewards/"+tc.id, admin, []byte(tc.body)), tc.status, tc.code)
			})
		}
		list = e2eDo(t, srv, "GET", "/v1/catalog/rewards", read, nil)
		if err := json.Unmarshal(list.Body, &catalog); err != nil || len(catalog.Rewards) != 1 {
			t.Errorf("refused PUTs changed the catalog: %s", list.Body)
		}
		t.Run("webhook with URL", func(t *testing.T) {
			e2eStatus(t, e2eDo(t, srv, "PUT", "/v1/catalog/rewards/R-hook", admin,
				[]byte(`{"name":"n","point_cost":1,"fulfillment_method":"webhook","webhook_url":"https://fulfil.example.com/x"}`)), http.StatusOK)
		})
	})
}

func TestE2EAdminPortal(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		admin := srv.Token(tally.ScopeAdmin)
		const cust = "cust-portal"
		e2eAccrue(t, srv, cust, "acc-1", 6000)
		for id, body := range map[string]string{
			"R-active":   `{"name":"Mug","point_cost":500,"fulfillment_method":"webhook","webhook_url":"https://secret.example.com/hook","min_tier":"silver"}`,
			"R-inactive": `{"name":"Old","point_cost":100,"fulfillment_method":"email","active":false}`,
		} {
			e2eStatus(t, e2eDo(t, srv, "PUT", "/v1/catalog/rewards/"+id, admin, []byte(body)), http.StatusOK)
		}
		a := e2eLookup(t, srv, []byte(`{"customer_hash":"`+cust+`"}`))

		res := e2eDo(t, srv, "GET", "/v1/portal/me", a.SessionToken, nil)
		e2eStatus(t, res, http.StatusOK)
		var me struct {
			CustomerHash string `json:"customer_hash"`
			Balance      int64  `json:"balance"`
			Tier         string `json:"tier"`
			Stale        bool   `json:"stale"`
			Rewards      []struct {
				ID        string `json:"reward_id"`
				PointCost int64  `json:"point_cost"`
				MinTier   string `json:"min_tier"`
			} `json:"rewards"`
		}
		if err := json.Unmarshal(res.Body, &me); err != nil {
			t.Fatal(err)
		}
		if me.CustomerHash != a.CustomerHash || me.Balance != 6000 || me.Tier != "silver" || me.Stale {
			t.Errorf("portal/me %s", res.Body)
		}
		if len(me.Rewards) != 1 || me.Rewards[0].ID != "R-active" || me.Rewards[0].MinTier != "silver" {
			t.Errorf("portal rewards %s", res.Body)
		}
		if strings.Contains(string(res.Body), "secret.example.com") || strings.Contains(string(res.Body), "fulfillment") {
			t.Errorf("portal shows how rewards are fulfilled: %s", res.Body)
		}

		// The session of an unknown customer works and shows nothing.
		unknown := e2eLookup(t, srv, []byte(`{"customer_hash":"cust-portal-new"}`))
		res = e2eDo(t, srv, "GET", "/v1/portal/me", unknown.SessionToken, nil)
		e2eStatus(t, res, http.StatusOK)
		if m := res.JSON(t); m["balance"] != float64(0) || m["tier"] != "base" {
			t.Errorf("portal/me of an unknown customer: %s", res.Body)
		}

		for _, tc := range []struct{ name, token string }{
			{"no token", ""},
			{"access token", srv.Token(tally.ScopeLedgerRead)},
			{"garbage", "garbage"},
			{"tampered session", a.SessionToken[:len(a.SessionToken)-4] + "AAAA"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				res := e2eDo(t, srv, "GET", "/v1/portal/me", tc.token, nil)
				e2eProblem(t, res, http.StatusUnauthorized, tally.EUNAUTHORIZED)
				if !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
				}
			})
		}

		t.Run("portal page", func(t *testing.T) {
			res := e2eDo(t, srv, "GET", "/portal/", "", nil)
			e2eStatus(t, res, http.StatusOK)
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Errorf("Content-Type %q", ct)
			}
			if !strings.Contains(strings.ToLower(string(res.Body)), "<html") {
				t.Errorf("portal page is not HTML: %.200s", res.Body)
			}
			if res.Header.Get("Content-Security-Policy") == "" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("portal headers %v", res.Header)
			}
		})
	})
}

func TestE2EUnknownPath(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		for _, tc := range []struct{ method, path string }{
			{"GET", "/nope"},
			{"POST", "/v1/ledger/nope"},
			{"GET", "/v1/ledger/accounts"},
			{"DELETE", "/v2/anything"},
		} {
			t.Run(tc.method+" "+tc.path, func(t *testing.T) {
				res := e2eDo(t, srv, tc.method, tc.path, srv.Token(apitest.AllScopes...), nil)
				e2eProblem(t, res, http.StatusNotFound, tally.ENOTFOUND)
			})
		}
		t.Run("known path, other method", func(t *testing.T) {
			res := e2eDo(t, srv, "GET", e2eProcessPath, srv.Token(apitest.AllScopes...), nil)
			e2eProblem(t, res, http.StatusMethodNotAllowed, "method_not_allowed")
			if allow := res.Header.Get("Allow"); allow != "POST" {
				t.Errorf("Allow %q", allow)
			}
		})
	})
}
