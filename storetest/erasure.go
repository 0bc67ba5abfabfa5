package storetest

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// testErasure forgets a customer who has transactions, a redemption, a mirrored contact and heads
// recorded by a checkpoint, and checks that nothing left in the database names the old id, that
// balances and system totals are unchanged, that verify stays green with and without the checkpoints
// taken before and after, and that forgetting again, or someone never seen, says so and changes nothing.
func testErasure(t *testing.T, h Harness) {
	e := newEnv(t, h)
	raw := "forget-me@example.com"
	victim, other := e.customer(raw), e.customer("keep-me@example.com")
	// Events about the customer wait in the webhook outbox: they name it too.
	if err := e.store.PutSubscription(e.ctx, tally.WebhookSubscription{ID: "whs_erasure", URL: "https://example.com/hook",
		EventTypes: []string{tally.EventPointsEarned}, SecretVersion: 1, Active: true, CreatedAt: time.Now(), UpdatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	e.mustAccrue(victim, "v1", 100)
	reward := MustPutReward(t, e.store, "erasure-mug", tally.MethodWebhook, "https://example.com/hook", 30)
	red := MustRedeem(t, e.ledger, victim, reward)
	e.mustAccrue(other, "o1", 50)
	if ms, ok := e.store.(tally.MirrorStore); ok {
		if err := ms.WantMirror(e.ctx, victim, e.key.Seal([]byte(raw), []byte(victim)), 3, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	cp1 := e.mustCheckpoint()
	e.mustAccrue(victim, "v2", 5) // a head newer than the one recorded
	// Points still pending sit in a lot and in the account's pending column: both move with it.
	until := time.Now().Add(30 * 24 * time.Hour)
	e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Account: victim, Key: "v3", Amount: 10, Reason: "test", PendingUntil: &until})
	before, err := e.ledger.Balance(e.ctx, victim)
	if err != nil {
		t.Fatal(err)
	}
	issued, err := e.store.Account(e.ctx, tally.AccountIssuance)
	if err != nil {
		t.Fatal(err)
	}

	er, err := e.ledger.Forget(e.ctx, victim, "dpo@example.com", "GDPR art. 17 request 42")
	if err != nil {
		t.Fatalf("forget: %v", err)
	}
	if er.No == 0 || er.AccountID == victim || !tally.IsCustomerHash(er.AccountID) || er.Actor != "dpo@example.com" ||
		er.Reason != "GDPR art. 17 request 42" || er.Transactions != 5 || er.CheckpointThrough != cp1.No || er.ErasedAt.IsZero() {
		t.Fatalf("erasure record %+v", er)
	}
	if _, err := e.ledger.Balance(e.ctx, victim); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("balance by the old hash after forgetting: %v, want not found", err)
	}
	after, err := e.ledger.Balance(e.ctx, er.AccountID)
	if err != nil || after.Balance != before.Balance || after.BalanceVersion != before.BalanceVersion || !after.CreatedAt.Equal(before.CreatedAt) ||
		after.Pending != 10 || after.Pending != before.Pending {
		t.Fatalf("pseudonymous account %+v (%v), want the balance and version of %+v", after, err, before)
	}
	if got, err := e.store.Account(e.ctx, tally.AccountIssuance); err != nil || got.Balance != issued.Balance {
		t.Fatalf("issuance after forgetting %d (%v), want %d", got.Balance, err, issued.Balance)
	}
	page, err := e.ledger.History(e.ctx, er.AccountID, "", 10)
	if err != nil || len(page.Transactions) != 5 {
		t.Fatalf("history of the pseudonym: %d transactions (%v), want 5", len(page.Transactions), err)
	}
	if r, err := e.store.Redemption(e.ctx, red.ReceiptID); err != nil || r.AccountID != er.AccountID {
		t.Fatalf("redemption after forgetting: %+v, %v: want it on the pseudonym", r, err)
	}
	// A replay of a request made before the erasure names the old id: it is refused, not replayed.
	_, err = e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindAccrual, Account: victim, Key: "v1", Amount: 100, Reason: "test"})
	wantCode(t, err, tally.EIDEMPOTENCY)

	rep, err := ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key, Checkpoints: []tally.Checkpoint{cp1}})
	if err != nil || rep.Erasures != 1 || rep.ErasedRoots != 1 {
		t.Fatalf("verify with the checkpoint taken before forgetting: %+v, %v", rep, err)
	}
	cp2, err := ledger.TakeCheckpoint(e.ctx, e.store, e.key, time.Now(), false, &cp1)
	if err != nil {
		t.Fatalf("checkpoint after forgetting: %v", err)
	}
	e.mustAccrue(er.AccountID, "p1", 7) // the pseudonym goes on earning
	cp3, err := ledger.TakeCheckpoint(e.ctx, e.store, e.key, time.Now(), false, &cp2)
	if err != nil {
		t.Fatalf("checkpoint after forgetting: %v", err)
	}
	rep, err = ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key, Checkpoints: []tally.Checkpoint{cp1, cp2, cp3}})
	if err != nil || rep.ErasedRoots != 1 || rep.Checkpoints != 3 {
		t.Fatalf("verify with checkpoints before and after forgetting: %+v, %v", rep, err)
	}

	dump := e.h.Dump(t, e.store)
	if !bytes.Contains(dump, []byte(er.AccountID)) || !bytes.Contains(dump, []byte(other)) {
		t.Fatal("the dump holds neither the pseudonym nor the other customer: it is not a dump of the data")
	}
	ds, err := e.store.Deliveries(e.ctx, "whs_erasure", "", 10)
	named := 0
	for _, d := range ds {
		if bytes.Contains(d.Payload, []byte(er.AccountID)) {
			named++
		}
	}
	if err != nil || len(ds) != 6 || named != 5 {
		t.Fatalf("events after forgetting: %d (%v), %d naming the pseudonym; want 6, 5", len(ds), err, named)
	}
	if bytes.Contains(dump, []byte(victim)) {
		t.Error("the old customer hash is still in the database")
	}

	t.Run("again", func(t *testing.T) {
		_, err := e.ledger.Forget(e.ctx, victim, "dpo@example.com", "again")
		wantCode(t, err, tally.ENOTFOUND)
		_, err = e.ledger.Forget(e.ctx, e.customer("never-seen"), "dpo@example.com", "typo")
		wantCode(t, err, tally.ENOTFOUND)
		if list, err := e.store.Erasures(e.ctx); err != nil || len(list) != 1 {
			t.Fatalf("erasures %+v, %v: want the one", list, err)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		for _, c := range []struct{ account, actor, reason string }{
			{other, "", "why"}, {other, "dpo", ""}, {"not-a-hash", "dpo", "why"},
		} {
			_, err := e.ledger.Forget(e.ctx, c.account, c.actor, c.reason)
			wantCode(t, err, tally.EINVALID)
		}
		if e.balance(other) != 50 {
			t.Fatal("a refused erasure changed the account")
		}
	})
	t.Run("forged record", func(t *testing.T) {
		e.exec("UPDATE erasures SET checkpoint_through = 99")
		_, err := ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key})
		if err == nil || !strings.Contains(err.Error(), "erasure record") {
			t.Fatalf("verify with an altered erasure record: %v, want a breach", err)
		}
	})
}

// testErasureWhileWriting forgets a customer while writers keep accruing to it and to others: every
// accrual that succeeded is on the pseudonym or, when it came after the erasure, on a new account under
// the old hash; nothing is lost or doubled, and the ledger verifies.
func testErasureWhileWriting(t *testing.T, h Harness) {
	e := newEnv(t, h)
	victim := e.customer("busy-customer")
	e.mustAccrue(victim, "first", 1)
	var wg sync.WaitGroup
	var mu sync.Mutex
	succeeded := int64(1)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				account := victim
				if i%2 == 1 {
					account = e.customer("bystander-" + itoa(w))
				}
				_, err := e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindAccrual, Account: account, Key: "w" + itoa(w) + "-" + itoa(i), Amount: 1})
				if err == nil && account == victim {
					mu.Lock()
					succeeded++
					mu.Unlock()
				}
			}
		}()
	}
	er, err := e.ledger.Forget(e.ctx, victim, "dpo", "while writing")
	wg.Wait()
	if err != nil {
		t.Fatalf("forget while writing: %v", err)
	}
	var got int64
	for _, id := range []string{er.AccountID, victim} {
		if a, err := e.store.Account(e.ctx, id); err == nil {
			got += a.Balance
		} else if tally.ErrorCode(err) != tally.ENOTFOUND {
			t.Fatal(err)
		}
	}
	if got != succeeded {
		t.Fatalf("the pseudonym and the old hash hold %d points, %d accruals succeeded", got, succeeded)
	}
	e.mustVerify()
}
