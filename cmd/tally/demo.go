package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/auth"
	"github.com/tally-ledger/tally/ledger"
)

// demoCustomer is the customer of the integration guide's sample events.
const demoCustomer = "c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21"

func int64p(v int64) *int64 { return &v }

// seedDemo puts a small catalog, a customer with points and an OAuth client in the store, idempotently
// (the client is new on each run, since only its creation reveals the secret), and prints how to use them.
func seedDemo(ctx context.Context, s *openedStore, l *ledger.Service, h *tally.CustomerHasher, issuer *auth.Issuer, base string, out io.Writer) error {
	rewards := []tally.Reward{
		{ID: "RWD-8842", Name: "£25 gift card", PointCost: 2500, FulfillmentMethod: "email", Active: true},
		{ID: "RWD-1001", Name: "Free coffee", PointCost: 500, Inventory: int64p(100), FulfillmentMethod: "email", Active: true},
		{ID: "RWD-2002", Name: "Priority support for a month", PointCost: 1500, MinTier: "silver", FulfillmentMethod: "manual", Active: true},
	}
	for _, r := range rewards {
		if err := s.PutReward(ctx, r); err != nil {
			return err
		}
	}
	hash := h.Hash(demoCustomer)
	rc, err := l.Accrue(ctx, ledger.Request{Channel: "demo", Key: "demo-seed", Account: hash, Amount: 3000, Reason: "demo welcome points"})
	if err != nil {
		return err
	}
	clients, err := s.creds.Clients(ctx)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	for _, c := range clients {
		if c.Name == "demo" && c.RevokedAt == nil {
			if err := s.creds.RevokeClient(ctx, c.ID, now); err != nil {
				return err
			}
		}
	}
	client, secret, err := auth.NewClient("demo", []string{tally.ScopeLedgerRead, tally.ScopeLedgerWrite, tally.ScopeAdmin}, now)
	if err != nil {
		return err
	}
	if err := s.creds.CreateClient(ctx, client); err != nil {
		return err
	}
	session, _, err := issuer.IssueSession(ctx, hash, 24*time.Hour)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, `Demo data ready.
  OAuth client:   client_id=%s
                  client_secret=%s   (scopes: ledger:read ledger:write admin)
  Demo customer:  %s (hash th_%s), balance %d points
  Catalog:        RWD-8842, RWD-1001, RWD-2002
  Portal:         %s/portal/#session=%s

Try it:
  TOKEN=$(curl -s -u '%s:%s' -d grant_type=client_credentials %s/oauth/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  curl -s -H "Authorization: Bearer $TOKEN" -d '{"customer_hash":"%s","channel":"webchat","request_id":"r1"}' %s/v1/ledger/balance/lookup
  curl -s -H "Authorization: Bearer $TOKEN" -d '{"event_id":"evt-1","type":"WebChat","state":"closed","user_id":"%s","channel":"webchat"}' %s/v1/ledger/transaction/process
`, client.ID, secret, demoCustomer, hash, rc.Balance, base, session, client.ID, secret, base, demoCustomer, base, demoCustomer, base)
	return nil
}
