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
