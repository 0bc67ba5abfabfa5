package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
	"github.com/tally-ledger/tally/fulfillment"
	"github.com/tally-ledger/tally/webhooks"
)

func TestE2EWebhooks(t *testing.T) {
	t.Parallel()
	e2eEach(t, func(t *testing.T, srv *apitest.Server) {
		admin := srv.Token(tally.ScopeAdmin)
		var (
			mu     sync.Mutex
			secret string
			got    []map[string]any
		)
		receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			mu.Lock()
			defer mu.Unlock()
			if err := fulfillment.Verify(secret, r.Header, body, time.Now(), time.Minute); err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			var m map[string]any
			json.Unmarshal(body, &m)
			got = append(got, m)
		}))
		defer receiver.Close()

		e2eProblem(t, e2eDo(t, srv, "POST", "/v1/admin/webhooks", admin, e2eJSON(t, map[string]any{"url": receiver.URL, "event_types": []string{"points.gifted"}})),
			http.StatusUnprocessableEntity, tally.EINVALID)
		e2eProblem(t, e2eDo(t, srv, "POST", "/v1/admin/webhooks", srv.Token(tally.ScopeLedgerWrite), e2eJSON(t, map[string]any{"url": receiver.URL, "event_types": []string{"points.earned"}})),
			http.StatusForbidden, tally.EFORBIDDEN)
		res := e2eDo(t, srv, "POST", "/v1/admin/webhooks", admin, e2eJSON(t, map[string]any{
			"url": receiver.URL + "/tally", "event_types": []string{"points.earned", "points.redeemed"}, "filter": "$.data.points > 10"}))
		e2eStatus(t, res, http.StatusCreated)
		var created struct {
			ID, Secret string
			Active     bool
		}
		if err := json.Unmarshal(res.Body, &created); err != nil || !strings.HasPrefix(created.ID, "whs_") || len(created.Secret) != 64 || !created.Active {
			t.Fatalf("created %s", res.Body)
		}
		if loc := res.Header.Get("Location"); loc != "/v1/admin/webhooks/"+created.ID {
			t.Fatalf("Location %q", loc)
		}
		mu.Lock()
		secret = created.Secret
		mu.Unlock()

		e2eAccrue(t, srv, "hooked", "h-1", 50)
		e2eAccrue(t, srv, "hooked", "h-2", 5) // filtered out

		w := webhooks.NewWorker(webhooks.Options{Store: srv.Store, Signer: mustSigner(t)})
		if n, err := w.RunOnce(context.Background()); err != nil || n != 2 {
			t.Fatalf("worker leased %d (%v)", n, err)
		}
		mu.Lock()
		if len(got) != 1 || got[0]["type"] != "points.earned" || got[0]["customer_hash"] != "th_"+srv.Hasher.Hash("hooked") {
			t.Fatalf("receiver got %v", got)
		}
		mu.Unlock()

		res = e2eDo(t, srv, "GET", "/v1/admin/webhooks/"+created.ID+"/deliveries?status=skipped", admin, nil)
		e2eStatus(t, res, http.StatusOK)
		if !strings.Contains(string(res.Body), `"status":"skipped"`) || strings.Count(string(res.Body), `"event_id"`) != 1 {
			t.Fatalf("skipped deliveries %s", res.Body)
		}
		e2eProblem(t, e2eDo(t, srv, "GET", "/v1/admin/webhooks/"+created.ID+"/deliveries?status=lost", admin, nil), http.StatusUnprocessableEntity, tally.EINVALID)

		res = e2eDo(t, srv, "PATCH", "/v1/admin/webhooks/"+created.ID, admin, e2eJSON(t, map[string]any{"active": false}))
		e2eStatus(t, res, http.StatusOK)
		if !strings.Contains(string(res.Body), `"active":false`) || strings.Contains(string(res.Body), "secret\"") {
			t.Fatalf("patched %s", res.Body)
		}
		e2eProblem(t, e2eDo(t, srv, "PATCH", "/v1/admin/webhooks/"+created.ID, admin, e2eJSON(t, map[string]any{"event_types": []string{}})), http.StatusUnprocessableEntity, tally.EINVALID)

		res = e2eDo(t, srv, "POST", "/v1/admin/webhooks/"+created.ID+"/secret", admin, nil)
		e2eStatus(t, res, http.StatusOK)
		var rotated struct {
			Secret        string `json:"secret"`
			SecretVersion int    `json:"secret_version"`
		}
		if err := json.Unmarshal(res.Body, &rotated); err != nil || rotated.Secret == created.Secret || rotated.SecretVersion != 2 {
			t.Fatalf("rotated %s", res.Body)
		}

		res = e2eDo(t, srv, "GET", "/v1/admin/webhooks", admin, nil)
		e2eStatus(t, res, http.StatusOK)
		if strings.Count(string(res.Body), `"id":"whs_`) != 1 || strings.Contains(string(res.Body), created.Secret) {
			t.Fatalf("list %s", res.Body)
		}
		res = e2eDo(t, srv, "DELETE", "/v1/admin/webhooks/"+created.ID, admin, nil)
		e2eStatus(t, res, http.StatusNoContent)
		e2eProblem(t, e2eDo(t, srv, "GET", "/v1/admin/webhooks/"+created.ID, admin, nil), http.StatusNotFound, tally.ENOTFOUND)
		e2eProblem(t, e2eDo(t, srv, "DELETE", "/v1/admin/webhooks/"+created.ID, admin, nil), http.StatusNotFound, tally.ENOTFOUND)
	})
}

func mustSigner(t *testing.T) *fulfillment.Signer {
	t.Helper()
	s, err := fulfillment.NewSigner(apitest.Key.WebhookKey())
	if err != nil {
		t.Fatal(err)
	}
	return s
}
