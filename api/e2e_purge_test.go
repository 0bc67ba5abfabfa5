package api_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/sqlite"
)

// e2eForgetOutcome deletes the remembered answer of a key, as a purge of an earlier version did.
func e2eForgetOutcome(t testing.TB, srv *apitest.Server, channel, key string) {
	t.Helper()
	ctx := context.Background()
	var err error
	switch db := srv.Store.(type) {
	case *sqlite.DB:
		_, err = db.SQL().ExecContext(ctx, `DELETE FROM processed_events WHERE channel = ? AND event_id = ?`, channel, key)
	case *postgres.DB:
		_, err = db.Pool().Exec(ctx, `DELETE FROM processed_events WHERE channel = $1 AND event_id = $2`, channel, key)
	default:
		t.Fatalf("no SQL access to a %T", srv.Store)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestE2EProcessKeyWhoseAnswerIsGone(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		token := srv.Token(tally.ScopeLedgerWrite)
		tr := map[string]any{"idempotency_key": "forgotten", "customer_hash": "cust-forgotten", "kind": "accrual", "amount": 10}
		w := e2eWrite(t, srv, token, tr, http.StatusCreated)
		e2eForgetOutcome(t, srv, "api", "forgotten")
		names := "transaction " + strconv.FormatInt(w.TransactionID, 10)

		same := e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, token, e2eJSON(t, tr)), http.StatusConflict, tally.ECONFLICT)
		if d, _ := same["detail"].(string); !strings.Contains(d, names) {
			t.Errorf("replay detail %q does not name %s", d, names)
		}
		tr["amount"] = 11
		other := e2eProblem(t, e2eDo(t, srv, "POST", e2eProcessPath, token, e2eJSON(t, tr)), http.StatusConflict, tally.EIDEMPOTENCY)
		if d, _ := other["detail"].(string); !strings.Contains(d, names) {
			t.Errorf("reuse detail %q does not name %s", d, names)
		}
		if a := e2eBalance(t, srv, "cust-forgotten"); a.Balance != 10 || a.BalanceVersion != 1 {
			t.Errorf("balance %d version %d, want 10 written once", a.Balance, a.BalanceVersion)
		}
	})
}
