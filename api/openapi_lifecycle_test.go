package api_test

import (
	"context"
	"io"
	"net/http"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/api/apitest"
)

func init() {
	// CSV imports are described as a string body.
	openapi3filter.RegisterBodyDecoder("text/csv", func(body io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(body)
		return string(b), err
	})
}

// oaLifecycle exercises the erasure, import and webhook routes for TestOpenAPIConformance.
func oaLifecycle(t *testing.T, c *oaContract, s *apitest.Server) {
	admin := s.Token(tally.ScopeAdmin)
	read := s.Token(tally.ScopeLedgerRead)
	write := s.Token(tally.ScopeLedgerWrite)
	ok := func(name, method, path, token string, body []byte, status int, header ...string) oaExchange {
		return oaExchange{name: name, method: method, path: path, token: token, body: body, header: header, status: status, conforms: true}
	}
	bad := func(ex oaExchange) oaExchange { ex.conforms = false; return ex }
	csv := []string{"Content-Type", "text/csv"}

	t.Run("forget", func(t *testing.T) {
		c.do(t, s, ok("earn", "POST", "/v1/ledger/transaction/process", write,
			[]byte(`{"idempotency_key":"oa-forget-1","customer_hash":"oa-forget-me","kind":"accrual","amount":5}`), 201))
		path := "/v1/admin/customers/oa-forget-me/forget"
		for _, ex := range []oaExchange{
			ok("no token", "POST", path, "", []byte(`{"reason":"r"}`), 401),
			ok("read token", "POST", path, read, []byte(`{"reason":"r"}`), 403),
			bad(ok("not JSON", "POST", path, admin, []byte(`{`), 400)),
			bad(ok("no reason", "POST", path, admin, []byte(`{}`), 422)),
			ok("forget", "POST", path, admin, []byte(`{"reason":"GDPR request","actor":"dpo"}`), 200),
			ok("forget again", "POST", path, admin, []byte(`{"reason":"GDPR request"}`), 404),
		} {
			c.do(t, s, ex)
		}
	})

	t.Run("import", func(t *testing.T) {
		file := []byte("customer_id,points,reference\noa-imported,10,oa-1\noa-imported,x,\n")
		for _, ex := range []oaExchange{
			ok("no token", "POST", "/v1/admin/imports", "", file, 401, csv...),
			ok("write token", "POST", "/v1/admin/imports", write, file, 403, csv...),
			bad(ok("JSON", "POST", "/v1/admin/imports", admin, []byte(`{}`), 415)),
			ok("no header", "POST", "/v1/admin/imports", admin, []byte("name\nx\n"), 422, csv...),
			ok("import", "POST", "/v1/admin/imports", admin, file, 200, csv...),
		} {
			c.do(t, s, ex)
		}
	})

	t.Run("webhooks", func(t *testing.T) {
		body := []byte(`{"url":"https://crm.example.com/tally","event_types":["points.earned","points.expiring_soon"],"expiring_days":7,"filter":"$.data.points > 1"}`)
		for _, ex := range []oaExchange{
			ok("no token", "GET", "/v1/admin/webhooks", "", nil, 401),
			ok("read token", "GET", "/v1/admin/webhooks", read, nil, 403),
			ok("no token", "POST", "/v1/admin/webhooks", "", body, 401),
			ok("read token", "POST", "/v1/admin/webhooks", read, body, 403),
			bad(ok("not JSON", "POST", "/v1/admin/webhooks", admin, []byte(`[`), 400)),
			bad(ok("unknown type", "POST", "/v1/admin/webhooks", admin, []byte(`{"url":"https://x.example","event_types":["points.gifted"]}`), 422)),
		} {
			c.do(t, s, ex)
		}
		id := c.do(t, s, ok("create", "POST", "/v1/admin/webhooks", admin, body, 201)).JSON(t)["id"].(string)
		c.do(t, s, ok("earn", "POST", "/v1/ledger/transaction/process", write,
			[]byte(`{"idempotency_key":"oa-hook-1","customer_hash":"oa-hooked","kind":"accrual","amount":5}`), 201))
		one := "/v1/admin/webhooks/" + id
		for _, ex := range []oaExchange{
			ok("list", "GET", "/v1/admin/webhooks", admin, nil, 200),
			ok("get", "GET", one, admin, nil, 200),
			ok("get, no token", "GET", one, "", nil, 401),
			ok("get, read token", "GET", one, read, nil, 403),
			ok("get unknown", "GET", "/v1/admin/webhooks/whs_none", admin, nil, 404),
			ok("patch", "PATCH", one, admin, []byte(`{"filter":"$.data.points > 2"}`), 200),
			ok("patch, no token", "PATCH", one, "", []byte(`{"active":false}`), 401),
			ok("patch, read token", "PATCH", one, read, []byte(`{"active":false}`), 403),
			bad(ok("patch, not JSON", "PATCH", one, admin, []byte(`{`), 400)),
			bad(ok("patch, no types", "PATCH", one, admin, []byte(`{"event_types":[]}`), 422)),
			ok("patch unknown", "PATCH", "/v1/admin/webhooks/whs_none", admin, []byte(`{"active":false}`), 404),
			ok("rotate", "POST", one+"/secret", admin, nil, 200),
			ok("rotate, no token", "POST", one+"/secret", "", nil, 401),
			ok("rotate, read token", "POST", one+"/secret", read, nil, 403),
			ok("rotate unknown", "POST", "/v1/admin/webhooks/whs_none/secret", admin, nil, 404),
			ok("deliveries", "GET", one+"/deliveries?status=pending&limit=10", admin, nil, 200),
			ok("deliveries, no token", "GET", one+"/deliveries", "", nil, 401),
			ok("deliveries, read token", "GET", one+"/deliveries", read, nil, 403),
			bad(ok("deliveries, bad status", "GET", one+"/deliveries?status=lost", admin, nil, 422)),
			ok("deliveries unknown", "GET", "/v1/admin/webhooks/whs_none/deliveries", admin, nil, 404),
			ok("delete, no token", "DELETE", one, "", nil, 401),
			ok("delete, read token", "DELETE", one, read, nil, 403),
			ok("delete", "DELETE", one, admin, nil, 204),
			ok("delete again", "DELETE", one, admin, nil, 404),
		} {
			c.do(t, s, ex)
		}
	})
}

// oaLifecycleFaults sends the same routes while the store fails, for 503 and 500.
func oaLifecycleFaults(t *testing.T, c *oaContract, s *apitest.Server, store *oaFaultyStore, all string) {
	ok := func(name, method, path string, body []byte, status int, header ...string) oaExchange {
		return oaExchange{name: name, method: method, path: path, token: all, body: body, header: header, status: status, conforms: true}
	}
	for _, f := range []struct {
		mode   int32
		status int
	}{{oaModeUnavailable, 503}, {oaModeInternal, 500}} {
		store.mode.Store(f.mode)
		for _, ex := range []oaExchange{
			ok("forget", "POST", "/v1/admin/customers/someone/forget", []byte(`{"reason":"r"}`), f.status),
			ok("import", "POST", "/v1/admin/imports", []byte("customer_id,points\nsomeone,1\n"), f.status, "Content-Type", "text/csv"),
			ok("list webhooks", "GET", "/v1/admin/webhooks", nil, f.status),
			ok("create webhook", "POST", "/v1/admin/webhooks", []byte(`{"url":"https://x.example","event_types":["points.earned"]}`), f.status),
			ok("get webhook", "GET", "/v1/admin/webhooks/whs_x", nil, f.status),
			ok("patch webhook", "PATCH", "/v1/admin/webhooks/whs_x", []byte(`{"active":false}`), f.status),
			ok("delete webhook", "DELETE", "/v1/admin/webhooks/whs_x", nil, f.status),
			ok("rotate secret", "POST", "/v1/admin/webhooks/whs_x/secret", nil, f.status),
			ok("deliveries", "GET", "/v1/admin/webhooks/whs_x/deliveries", nil, f.status),
		} {
			c.do(t, s, ex)
		}
		store.mode.Store(oaModeOK)
	}
}

// The faulty store fails the lifecycle's store calls too.

func (f *oaFaultyStore) Erase(ctx context.Context, id string, plan func(tally.ErasureState) (tally.Rekeying, error)) (tally.Erasure, error) {
	if err := f.fault(ctx); err != nil {
		return tally.Erasure{}, err
	}
	return f.Store.Erase(ctx, id, plan)
}

func (f *oaFaultyStore) PutSubscription(ctx context.Context, sub tally.WebhookSubscription) error {
	if err := f.fault(ctx); err != nil {
		return err
	}
	return f.Store.PutSubscription(ctx, sub)
}

func (f *oaFaultyStore) Subscriptions(ctx context.Context) ([]tally.WebhookSubscription, error) {
	if err := f.fault(ctx); err != nil {
		return nil, err
	}
	return f.Store.Subscriptions(ctx)
}

func (f *oaFaultyStore) Subscription(ctx context.Context, id string) (tally.WebhookSubscription, error) {
	if err := f.fault(ctx); err != nil {
		return tally.WebhookSubscription{}, err
	}
	return f.Store.Subscription(ctx, id)
}

func (f *oaFaultyStore) DeleteSubscription(ctx context.Context, id string) error {
	if err := f.fault(ctx); err != nil {
		return err
	}
	return f.Store.DeleteSubscription(ctx, id)
}

func (f *oaFaultyStore) Deliveries(ctx context.Context, id, status string, limit int) ([]tally.WebhookDelivery, error) {
	if err := f.fault(ctx); err != nil {
		return nil, err
	}
	return f.Store.Deliveries(ctx, id, status, limit)
}
