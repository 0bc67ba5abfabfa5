package api_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
)

func TestE2EImport(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		admin := srv.Token(tally.ScopeAdmin)
		file := []byte("customer_id,points,kind,reference\nimp-ann,120,opening,L-1\nimp-bob,30,,\nimp-bad,x,,\n")
		type summary struct {
			Rows, Imported  int
			AlreadyImported int `json:"already_imported"`
			Points          int64
			Rejected        []struct {
				Line   int
				Reason string
			}
		}
		send := func() summary {
			t.Helper()
			res := e2eDo(t, srv, "POST", "/v1/admin/imports", admin, file, "Content-Type", "text/csv")
			e2eStatus(t, res, http.StatusOK)
			var s summary
			if err := json.Unmarshal(res.Body, &s); err != nil {
				t.Fatal(err)
			}
			return s
		}
		first := send()
		if first.Rows != 3 || first.Imported != 2 || first.Points != 150 || len(first.Rejected) != 1 || first.Rejected[0].Line != 4 {
			t.Fatalf("first import %+v", first)
		}
		again := send()
		if again.Imported != 0 || again.AlreadyImported != 2 {
			t.Fatalf("second import %+v", again)
		}
		if b := e2eBalance(t, srv, "imp-ann"); b.Balance != 120 {
			t.Fatalf("balance %d", b.Balance)
		}
		e2eProblem(t, e2eDo(t, srv, "POST", "/v1/admin/imports", admin, file), http.StatusUnsupportedMediaType, "unsupported_media_type")
		e2eProblem(t, e2eDo(t, srv, "POST", "/v1/admin/imports", admin, []byte("name\nx\n"), "Content-Type", "text/csv"), http.StatusUnprocessableEntity, tally.EINVALID)
		e2eProblem(t, e2eDo(t, srv, "POST", "/v1/admin/imports", srv.Token(tally.ScopeLedgerWrite), file, "Content-Type", "text/csv"), http.StatusForbidden, tally.EFORBIDDEN)
	})
}
