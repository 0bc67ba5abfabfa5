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
)

// TestCLIExpireAndLots runs the lifecycle commands on a ledger with a lapsed lot and a pending one.
func TestCLIExpireAndLots(t *testing.T) {
	t.Parallel()
	db := migratedDB(t)
	store, l := mustOpenLedger(t, db, ledger.Options{})
	c := mustHasher(t, testCustomerSecret).Hash("eve")
	lapsed, later := time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	held := mustWrite(t, l,
		ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "old", Amount: 40, ExpiresAt: &lapsed},
		ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "kept", Amount: 7},
		ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "held", Amount: 5, PendingUntil: &later},
	)[2]
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
	db := migratedDB(t)
	if out := mustCLI(t, "lots", "warn", "--db", db); !strings.Contains(out, "0 expiring-soon warnings") {
		t.Fatalf("lots warn without subscriptions printed %q", out)
	}
	ctx := context.Background()
	store, l := mustOpenLedger(t, db, ledger.Options{})
	now := time.Now().UTC()
	if err := store.PutSubscription(ctx, tally.WebhookSubscription{ID: "whs_cli", URL: "https://example.com/hook",
		EventTypes: []string{tally.EventPointsExpiringSoon}, ExpiringDays: 7, SecretVersion: 1, Active: true, CreatedAt: now, UpdatedAt: now}); err != nil {
		t.Fatal(err)
	}
	wen := mustHasher(t, testCustomerSecret).Hash("wen")
	soon, later := now.Add(48*time.Hour), now.Add(30*24*time.Hour)
	mustWrite(t, l,
		ledger.Request{Kind: tally.KindAccrual, Account: wen, Key: "soon", Amount: 12, ExpiresAt: &soon},
		ledger.Request{Kind: tally.KindAccrual, Account: wen, Key: "later", Amount: 30, ExpiresAt: &later},
	)
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
