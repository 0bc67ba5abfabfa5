package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/balancecache"
)

func TestE2EForget(t *testing.T) {
	t.Parallel()
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			cache := balancecache.NewMemory(100, time.Hour)
			srv := apitest.Start(t, b, apitest.Config{Cache: cache})
			const cust = "forget-me-api"
			e2eAccrue(t, srv, cust, "f-1", 40)
			e2eAccrue(t, srv, "stay", "s-1", 9)
			hash := srv.Hasher.Hash(cust)
			if err := cache.Put(context.Background(), balancecache.Entry{CustomerHash: hash, Balance: 40, BalanceVersion: 1}); err != nil {
				t.Fatal(err)
			}
			admin := srv.Token(tally.ScopeAdmin)
			path := "/v1/admin/customers/" + cust + "/forget"

			e2eProblem(t, e2eDo(t, srv, "POST", path, srv.Token(tally.ScopeLedgerRead), e2eJSON(t, map[string]any{"reason": "r"})), http.StatusForbidden, tally.EFORBIDDEN)
			e2eProblem(t, e2eDo(t, srv, "POST", path, admin, e2eJSON(t, map[string]any{})), http.StatusUnprocessableEntity, tally.EINVALID)
			e2eProblem(t, e2eDo(t, srv, "POST", path, admin, e2eJSON(t, map[string]any{"reason": "r", "pseudonym": "x"})), http.StatusUnprocessableEntity, tally.EINVALID)

			res := e2eDo(t, srv, "POST", path, admin, e2eJSON(t, map[string]any{"reason": "GDPR request 7", "actor": "dpo@example.com"}))
			e2eStatus(t, res, http.StatusOK)
			var got map[string]any
			if err := json.Unmarshal(res.Body, &got); err != nil {
				t.Fatal(err)
			}
			if got["erasure"] != 1.0 || got["reason"] != "GDPR request 7" || got["transactions"] != 1.0 || got["actor"] == "" || got["account_id"] != nil {
				t.Fatalf("forget answered %s", res.Body)
			}
			if _, err := srv.Store.Account(context.Background(), hash); tally.ErrorCode(err) != tally.ENOTFOUND {
				t.Fatalf("account by the old hash after forgetting: %v", err)
			}
			if _, ok, _ := cache.Get(context.Background(), hash); ok {
				t.Fatal("the balance cache still holds the forgotten customer")
			}
			list, err := srv.Store.Erasures(context.Background())
			if err != nil || len(list) != 1 || !strings.HasPrefix(list[0].Actor, "dpo@example.com (via client:") {
				t.Fatalf("erasures %+v, %v", list, err)
			}
			pseudo, err := srv.Store.Account(context.Background(), list[0].AccountID)
			if err != nil || pseudo.Balance != 40 {
				t.Fatalf("pseudonymous account %+v, %v", pseudo, err)
			}

			// Again: nothing to forget, and nothing changes.
			p := e2eProblem(t, e2eDo(t, srv, "POST", path, admin, e2eJSON(t, map[string]any{"reason": "again"})), http.StatusNotFound, tally.ENOTFOUND)
			if p["detail"] == nil {
				t.Fatalf("problem without a detail: %v", p)
			}
			if list, _ := srv.Store.Erasures(context.Background()); len(list) != 1 {
				t.Fatalf("a second forget recorded another erasure: %+v", list)
			}
			e2eVerify(t, srv)
		})
	}
}
