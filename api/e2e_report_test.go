package api_test

import (
	"encoding/csv"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api"
	"github.com/tally-ledger/tally/api/apitest"
)

func TestE2EReports(t *testing.T) {
	t.Parallel()
	for _, b := range apitest.Backends {
		t.Run(string(b), func(t *testing.T) {
			t.Parallel()
			srv := apitest.Start(t, b, apitest.Config{Options: api.Options{PointValue: "0.01", Currency: "EUR"}})
			e2eAccrue(t, srv, "report-ann", "acc-1", 100)
			e2eAccrue(t, srv, "report-bob", "acc-2", 50)
			e2eWrite(t, srv, srv.Token(tally.ScopeLedgerWrite), map[string]any{
				"idempotency_key": "red-1", "customer_hash": "report-ann", "kind": "redemption", "amount": 30, "reason": "test"}, http.StatusCreated)
			admin := srv.Token(tally.ScopeAdmin)
			today := time.Now().UTC().Format("2006-01-02")

			// JSON by default, money at the server's value per point.
			res := e2eDo(t, srv, "GET", "/v1/admin/reports/rollforward?period=day&from="+today+"&to="+today, admin, nil)
			e2eStatus(t, res, http.StatusOK)
			var rf struct {
				PointValue string `json:"point_value"`
				Currency   string `json:"currency"`
				Rows       []struct {
					Issued, Redeemed, Closing int64
					Value                     map[string]string `json:"value"`
				} `json:"rows"`
				Reconciliation struct {
					CustomerBalances int64 `json:"customer_balances"`
					Reconciled       bool  `json:"reconciled"`
				} `json:"reconciliation"`
			}
			if err := json.Unmarshal(res.Body, &rf); err != nil {
				t.Fatal(err)
			}
			if len(rf.Rows) != 1 || rf.Rows[0].Issued != 150 || rf.Rows[0].Redeemed != -30 || rf.Rows[0].Closing != 120 ||
				rf.Rows[0].Value["closing"] != "1.20" || rf.PointValue != "0.01" || rf.Currency != "EUR" ||
				rf.Reconciliation.CustomerBalances != 120 || !rf.Reconciliation.Reconciled ||
				res.Header.Get("Tally-Reconciled") != "true" || res.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("rollforward %s %s", res.Header, res.Body)
			}

			// CSV by ?format=csv or by Accept; a query's point value replaces the server's.
			for _, r := range []struct{ path, accept string }{
				{"/v1/admin/reports/rollforward?format=csv&period=year&point_value=0.5&currency=USD", ""},
				{"/v1/admin/reports/rollforward?period=year&point_value=0.5&currency=USD", "text/csv"},
			} {
				res := e2eDo(t, srv, "GET", r.path, admin, nil, "Accept", r.accept)
				e2eStatus(t, res, http.StatusOK)
				if ct := res.Header.Get("Content-Type"); ct != "text/csv; charset=utf-8" {
					t.Fatalf("Content-Type %q", ct)
				}
				rows, err := csv.NewReader(strings.NewReader(string(res.Body))).ReadAll()
				if err != nil || len(rows) != 2 || rows[0][0] != "period" || rows[1][0] != today[:4] || rows[1][8] != "120" ||
					rows[1][9] != "USD" || rows[1][15] != "60.00" {
					t.Fatalf("CSV %v: %q", err, rows)
				}
			}

			for _, name := range []string{"outstanding", "breakage"} {
				res := e2eDo(t, srv, "GET", "/v1/admin/reports/"+name, admin, nil)
				e2eStatus(t, res, http.StatusOK)
				if !strings.Contains(string(res.Body), `"report":"`+name+`"`) && !strings.Contains(string(res.Body), `"report": "`+name+`"`) {
					t.Fatalf("%s: %s", name, res.Body)
				}
			}

			// Bad parameters are refused with a problem that says which.
			for _, c := range []struct {
				path   string
				status int
				code   tally.Code
				says   string
			}{
				{"/v1/admin/reports/rollforward?period=week", 422, tally.EINVALID, "week"},
				{"/v1/admin/reports/rollforward?from=2026-02-30", 422, tally.EINVALID, "YYYY-MM-DD"},
				{"/v1/admin/reports/rollforward?from=2026-03-01&to=2026-02-01", 422, tally.EINVALID, "after"},
				{"/v1/admin/reports/rollforward?form=2026-03-01", 422, tally.EINVALID, `"form"`},
				{"/v1/admin/reports/rollforward?period=day&period=month", 422, tally.EINVALID, "more than once"},
				{"/v1/admin/reports/outstanding?format=xlsx", 422, tally.EINVALID, "json or csv"},
				{"/v1/admin/reports/outstanding?point_value=0.01", 422, tally.EINVALID, "ISO 4217"},
				{"/v1/admin/reports/outstanding?point_value=-1&currency=EUR", 422, tally.EINVALID, "decimal"},
				{"/v1/admin/reports/breakage?period=month", 422, tally.EINVALID, "rollforward report only"},
				{"/v1/admin/reports/liability", 404, tally.ENOTFOUND, "outstanding, rollforward, breakage"},
			} {
				res := e2eDo(t, srv, "GET", c.path, admin, nil)
				p := e2eProblem(t, res, c.status, c.code)
				if detail, _ := p["detail"].(string); !strings.Contains(detail, c.says) {
					t.Fatalf("%s: detail %q does not say %q", c.path, detail, c.says)
				}
			}
			// Reports are for administrators.
			res = e2eDo(t, srv, "GET", "/v1/admin/reports/outstanding", srv.Token(tally.ScopeLedgerRead), nil)
			e2eProblem(t, res, http.StatusForbidden, tally.EFORBIDDEN)
		})
	}
}
