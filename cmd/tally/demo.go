package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/auth"
	"github.com/tally-ledger/tally/ledger"
)

// demoCustomer is the customer of the integration guide's sample events.
const demoCustomer = "c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21"

// demoWelcome is the demo customer's first credit.
const demoWelcome = 3000

// demoClientName names the OAuth client --demo creates.
const demoClientName = "demo"

func int64p(v int64) *int64 { return &v }

// demoRewards is the demo catalog.
func demoRewards() []tally.Reward {
	return []tally.Reward{
		{ID: "RWD-8842", Name: "£25 gift card", PointCost: 2500, FulfillmentMethod: "email", Active: true},
		{ID: "RWD-1001", Name: "Free coffee", PointCost: 500, Inventory: int64p(100), FulfillmentMethod: "email", Active: true},
		{ID: "RWD-2002", Name: "Priority support for a month", PointCost: 1500, MinTier: "silver", FulfillmentMethod: "manual", Active: true},
	}
}

// seedDemo puts a small catalog, a customer with points and an OAuth client in the store, and prints how
// to use them. Run again on the same database it changes nothing a user may have changed since: rewards
// already in the catalog are left as they are, the customer is credited only when it has no account yet,
// and the demo client is kept when its credentials file beside the database still names a working one.
func seedDemo(ctx context.Context, s *openedStore, l *ledger.Service, h *tally.CustomerHasher, issuer *auth.Issuer, base string, out io.Writer) error {
	added, err := seedDemoCatalog(ctx, s)
	if err != nil {
		return err
	}
	hash := h.Hash(demoCustomer)
	account, credited, err := seedDemoCustomer(ctx, l, hash)
	if err != nil {
		return err
	}
	client, err := demoClient(ctx, s, base, time.Now().UTC())
	if err != nil {
		return err
	}
	session, _, err := issuer.IssueSession(ctx, hash, 24*time.Hour)
	if err != nil {
		return err
	}

	var ids []string
	for _, r := range demoRewards() {
		ids = append(ids, r.ID)
	}
	catalog := strings.Join(ids, ", ")
	if added == 0 {
		catalog += " (already there: left as they are)"
	}
	balance := fmt.Sprintf("balance %d points", account.Balance)
	if !credited {
		balance += " (no welcome points this time: the customer already had an account)"
	}
	fmt.Fprintf(out, `Demo data ready.
  OAuth client:   client_id=%s
                  client_secret=%s   (scopes: ledger:read ledger:write admin)
`, client.id, client.secret)
	for _, n := range client.notes {
		fmt.Fprintf(out, "                  %s\n", n)
	}
	fmt.Fprintf(out, `  Demo customer:  %s (hash th_%s), %s
  Catalog:        %s
  Portal:         %s/#session=%s&customer=%s
                  (open it in a browser: the LoyaltyWidget, redeem a reward; the session lasts 24 hours)

Try it:
  TOKEN=$(curl -s -u '%s:%s' -d grant_type=client_credentials %s/oauth/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
  curl -s -H "Authorization: Bearer $TOKEN" -d '{"customer_hash":"%s","channel":"webchat","request_id":"r1"}' %s/v1/ledger/balance/lookup
  curl -s -H "Authorization: Bearer $TOKEN" -d '{"event_id":"evt-1","type":"WebChat","state":"closed","user_id":"%s","channel":"webchat"}' %s/v1/ledger/transaction/process
`, demoCustomer, hash, balance, catalog, base, session, demoCustomer, client.id, client.secret, base, demoCustomer, base, demoCustomer, base)
	return nil
}

// seedDemoCatalog adds the demo rewards the catalog lacks and returns how many it added. A reward
// already there keeps its inventory, price and active flag: a second --demo must not undo redemptions
// or edits.
func seedDemoCatalog(ctx context.Context, s *openedStore) (int, error) {
	existing, err := s.Rewards(ctx)
	if err != nil {
		return 0, err
	}
	have := map[string]bool{}
	for _, r := range existing {
		have[r.ID] = true
	}
	added := 0
	for _, r := range demoRewards() {
		if have[r.ID] {
			continue
		}
		if err := s.PutReward(ctx, r); err != nil {
			return 0, err
		}
		added++
	}
	return added, nil
}

// seedDemoCustomer credits the welcome points when the demo customer has no account yet, and returns
// its account as the ledger has it now. The account's existence, not the idempotency key alone, decides:
// remembered outcomes are purged after --event-retention, after which the key would credit again.
func seedDemoCustomer(ctx context.Context, l *ledger.Service, hash string) (tally.Account, bool, error) {
	account, err := l.Balance(ctx, hash)
	if tally.ErrorCode(err) != tally.ENOTFOUND {
		return account, false, err
	}
	if _, err := l.Accrue(ctx, ledger.Request{Channel: "demo", Key: "demo-seed", Account: hash, Amount: demoWelcome, Reason: "demo welcome points"}); err != nil {
		return tally.Account{}, false, err
	}
	account, err = l.Balance(ctx, hash)
	return account, err == nil, err
}

// demoCreds is the demo client to print, with what became of earlier ones.
type demoCreds struct {
	id, secret string
	notes      []string
}

// demoClient returns the demo client: the one saved in the credentials file beside the embedded
// database when it still works, else a new one. Earlier demo clients are revoked when a new one is made,
// since nobody can learn their secrets again, and the notes say so.
func demoClient(ctx context.Context, s *openedStore, base string, now time.Time) (demoCreds, error) {
	path := ""
	if s.kind == "sqlite" {
		path = s.sqlitePath + demoEnvSuffix
	}
	var notes []string
	if path != "" {
		saved, err := readDemoEnv(path)
		switch {
		case err == nil:
			ok, why, err := demoClientWorks(ctx, s, saved)
			if err != nil {
				return demoCreds{}, err
			}
			if ok {
				saved.URL = base
				if err := writeDemoEnv(path, saved); err != nil {
					return demoCreds{}, fmt.Errorf("keep the demo credentials: %w", err)
				}
				return demoCreds{id: saved.ClientID, secret: saved.ClientSecret, notes: []string{
					"kept from " + path + " (the client of an earlier --demo)",
					"load it into a shell with:  . " + sourcePath(path),
				}}, nil
			}
			notes = append(notes, fmt.Sprintf("the client saved in %s %s: replaced by this new one", path, why))
		case errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, fs.ErrPermission):
			return demoCreds{}, fmt.Errorf("read the demo credentials: %w", err)
		default:
			notes = append(notes, fmt.Sprintf("%v: replaced by this new client", err))
		}
	}

	revoked, err := revokeDemoClients(ctx, s, now)
	if err != nil {
		return demoCreds{}, err
	}
	client, secret, err := auth.NewClient(demoClientName, []string{tally.ScopeLedgerRead, tally.ScopeLedgerWrite, tally.ScopeAdmin}, now)
	if err != nil {
		return demoCreds{}, err
	}
	if err := s.creds.CreateClient(ctx, client); err != nil {
		return demoCreds{}, err
	}
	if len(revoked) > 0 {
		why := "their secrets were not saved"
		if path != "" {
			why += " in " + path
		}
		notes = append(notes, fmt.Sprintf("new: revoked the earlier demo client(s) %s (%s, so they could not be shown again)", strings.Join(revoked, ", "), why))
	}
	if path != "" {
		if err := writeDemoEnv(path, demoEnv{ClientID: client.ID, ClientSecret: secret, URL: base}); err != nil {
			return demoCreds{}, fmt.Errorf("keep the demo credentials: %w", err)
		}
		notes = append(notes, "saved in "+path+" (mode 0600); load it into a shell with:  . "+sourcePath(path))
	}
	return demoCreds{id: client.ID, secret: secret, notes: notes}, nil
}

// demoClientWorks reports whether the saved credentials still get tokens, and if not, why not.
func demoClientWorks(ctx context.Context, s *openedStore, saved demoEnv) (bool, string, error) {
	c, err := s.creds.Client(ctx, saved.ClientID)
	switch {
	case tally.ErrorCode(err) == tally.ENOTFOUND:
		return false, "is not in this database", nil
	case err != nil:
		return false, "", err
	case c.RevokedAt != nil:
		return false, "was revoked", nil
	case !auth.SecretMatches(c.SecretHash, saved.ClientSecret):
		return false, "has another secret", nil
	}
	return true, "", nil
}

// revokeDemoClients revokes every active demo client and returns their ids.
func revokeDemoClients(ctx context.Context, s *openedStore, now time.Time) ([]string, error) {
	clients, err := s.creds.Clients(ctx)
	if err != nil {
		return nil, err
	}
	var revoked []string
	for _, c := range clients {
		if c.Name == demoClientName && c.RevokedAt == nil {
			if err := s.creds.RevokeClient(ctx, c.ID, now); err != nil {
				return nil, err
			}
			revoked = append(revoked, c.ID)
		}
	}
	return revoked, nil
}
