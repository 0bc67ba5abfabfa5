package main

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/sqlite"
)

// TestCLIExpireAndLots runs the lifecycle commands on a ledger with a lapsed lot and a pending one.
func TestCLIExpireAndLots(t *testing.T) {
	t.Parallel()
	db := tempDB(t)
	mustCLI(t, "migrate", "--db", db)
	ctx := context.Background()
	path := strings.TrimPrefix(db, "sqlite:")
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := tally.NewCustomerHasher([]byte("cli-test-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	c := h.Hash("eve")
	l := ledger.New(store, ledger.Options{Key: mustKeyFile(t, path)})
	lapsed, later := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	for _, r := range []ledger.Request{
		{Kind: tally.KindAccrual, Account: c, Key: "old", Amount: 40, ExpiresAt: &lapsed},
		{Kind: tally.KindAccrual, Account: c, Key: "kept", Amount: 7},
	} {
		if _, err := l.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	held, err := l.Write(ctx, ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "held", Amount: 5, PendingUntil: &later})
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	store.Close()

	if out := mustCLI(t, "expire", "--db", db); !strings.Contains(out, "expired 40 points of 1 lapsed lots in 1 accounts: 1 expiry transactions posted") {
		t.Fatalf("expire printed %q", out)
	}
	if out := mustCLI(t, "expire", "--db", db, "--json"); !strings.Contains(out, `"transactions":0`) {
		t.Fatalf("a second expire printed %q, want nothing posted", out)
	}
	if out := mustCLI(t, "lots", "activate", "--db", db); !strings.Contains(out, "activated 0 pending lots") {
		t.Fatalf("lots activate printed %q: the pending lot is not due", out)
	}
	seq := strconv.FormatInt(held.Transaction.Seq, 10)
	if out := mustCLI(t, "lots", "activate", "--db", db, seq); !strings.Contains(out, "5 of 5 points spendable") {
		t.Fatalf("lots activate %s printed %q", seq, out)
	}
	var lots []tally.Lot
	if err := json.Unmarshal([]byte(mustCLI(t, "lots", "list", "--db", db, c)), &lots); err != nil {
		t.Fatal(err)
	}
	if len(lots) != 2 || lots[0].Pending() || lots[1].Pending() {
		t.Fatalf("lots list = %+v, want the kept and the activated lots", lots)
	}
	if out := mustCLI(t, "verify", "--db", db, "--quiet"); !strings.HasPrefix(out, "ledger verified: ") {
		t.Fatalf("verify printed %q", out)
	}
}

// TestCLILotsWarn writes the expiring-soon warning a subscription asks for, once however often it runs.
func TestCLILotsWarn(t *testing.T) {
	t.Parallel()
	db := tempDB(t)
	mustCLI(t, "migrate", "--db", db)
	if out := mustCLI(t, "lots", "warn", "--db", db); !strings.Contains(out, "0 expiring-soon warnings") {
		t.Fatalf("lots warn without subscriptions printed %q", out)
	}
	ctx := context.Background()
	path := strings.TrimPrefix(db, "sqlite:")
	store, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := store.PutSubscription(ctx, tally.WebhookSubscription{ID: "whs_cli", URL: "https://example.com/hook",
		EventTypes: []string{tally.EventPointsExpiringSoon}, ExpiringDays: 7, SecretVersion: 1, Active: true, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	h, err := tally.NewCustomerHasher([]byte("cli-test-secret-0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	l := ledger.New(store, ledger.Options{Key: mustKeyFile(t, path)})
	soon, later := now.Add(48*time.Hour), now.Add(30*24*time.Hour)
	for _, r := range []ledger.Request{
		{Kind: tally.KindAccrual, Account: h.Hash("wen"), Key: "soon", Amount: 12, ExpiresAt: &soon},
		{Kind: tally.KindAccrual, Account: h.Hash("wen"), Key: "later", Amount: 30, ExpiresAt: &later},
	} {
		if _, err := l.Write(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	for range 2 {
		if out := mustCLI(t, "lots", "warn", "--db", db); !strings.Contains(out, "1 expiring-soon warnings") {
			t.Fatalf("lots warn printed %q, want the lot expiring in 2 days", out)
		}
	}
	ds, err := store.Deliveries(ctx, "whs_cli", "", 10)
	store.Close()
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries %+v %v, want one warning", ds, err)
	}
}
