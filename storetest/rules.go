package storetest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

func testValidation(t *testing.T, h Harness) {
	e := newEnv(t, h)
	c := e.customer("validation")
	e.mustAccrue(c, "seed", 100)
	v := int64(-1)
	cases := []struct {
		name string
		req  ledger.Request
	}{
		{"zero amount", ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "k1", Amount: 0}},
		{"negative amount", ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "k2", Amount: -5}},
		{"overflowing amount", ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "k3", Amount: tally.MaxAmount + 1}},
		{"unknown kind", ledger.Request{Kind: "gift", Account: c, Key: "k4", Amount: 5}},
		{"missing key", ledger.Request{Kind: tally.KindAccrual, Account: c, Amount: 5}},
		{"raw customer id", ledger.Request{Kind: tally.KindAccrual, Account: "alice@example.com", Key: "k5", Amount: 5}},
		{"adjustment without actor", ledger.Request{Kind: tally.KindAdjustment, Account: c, Key: "k6", Amount: 5, Reason: "x"}},
		{"adjustment of zero", ledger.Request{Kind: tally.KindAdjustment, Account: c, Key: "k7", Reason: "x", Actor: "y"}},
		{"reversal without target", ledger.Request{Kind: tally.KindReversal, Key: "k8", Reason: "x"}},
		{"reversal with amount", ledger.Request{Kind: tally.KindReversal, Key: "k9", ReversesSeq: 1, Amount: 3, Reason: "x"}},
		{"metadata not an object", ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "k10", Amount: 5, Metadata: json.RawMessage(`[1]`)}},
		{"metadata too long", ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "k11", Amount: 5, Metadata: json.RawMessage(`{"a":"` + strings.Repeat("x", 5000) + `"}`)}},
		{"key too long", ledger.Request{Kind: tally.KindAccrual, Account: c, Key: strings.Repeat("k", 201), Amount: 5}},
		{"NUL in reason", ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "k12", Amount: 5, Reason: "a\x00b"}},
		{"negative version", ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "k13", Amount: 5, ExpectedVersion: &v}},
	}
	for _, tc := range cases {
		_, err := e.ledger.Write(e.ctx, tc.req)
		if tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("%s: got %v, want code %q", tc.name, err, tally.EINVALID)
		}
	}
	// A balance overflow is refused as a whole, with nothing written.
	_, err := e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "big", Amount: tally.MaxAmount})
	wantCode(t, err, tally.EINVALID)
	if got := e.balance(c); got != 100 {
		t.Fatalf("balance %d after refused writes, want 100", got)
	}
	rep := e.mustVerify()
	if rep.Transactions != 1 {
		t.Fatalf("%d transactions after refused writes, want 1", rep.Transactions)
	}
}

func testIdempotency(t *testing.T, h Harness) {
	e := newEnv(t, h)
	c := e.customer("idem")
	first := e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "evt-1", Amount: 40, Reason: "chat", Metadata: json.RawMessage(`{ "b": 1, "a": "x" }`)})
	if first.Replayed || first.Balance != 40 || first.BalanceVersion != 1 {
		t.Fatalf("first write: %+v", first)
	}

	t.Run("replay", func(t *testing.T) {
		e := e.on(t)
		again := e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "evt-1", Amount: 40, Reason: "chat", Metadata: json.RawMessage(`{"b":1,"a":"x"}`)})
		if !again.Replayed {
			t.Fatal("replay not marked as replayed")
		}
		if again.Transaction.Seq != first.Transaction.Seq || again.Balance != 40 || again.Transaction.Hash != first.Transaction.Hash {
			t.Fatalf("replay %+v differs from original %+v", again, first)
		}
		if !again.Transaction.CreatedAt.Equal(first.Transaction.CreatedAt) {
			t.Fatal("replay has another created_at")
		}
		if got := e.balance(c); got != 40 {
			t.Fatalf("balance %d after replay, want 40", got)
		}
	})

	t.Run("conflicting replay", func(t *testing.T) {
		e := e.on(t)
		_, err := e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "evt-1", Amount: 41, Reason: "chat"})
		wantCode(t, err, tally.EIDEMPOTENCY)
		_, err = e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "evt-1", Amount: 40, Reason: "chat"})
		wantCode(t, err, tally.EIDEMPOTENCY)
		if got := e.balance(c); got != 40 {
			t.Fatalf("balance %d after conflicting replays, want 40", got)
		}
	})

	t.Run("same key in another channel is another write", func(t *testing.T) {
		e := e.on(t)
		rc := e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Channel: "webchat", Account: c, Key: "evt-1", Amount: 40, Reason: "chat"})
		if rc.Replayed || rc.Balance != 80 {
			t.Fatalf("other channel: %+v", rc)
		}
	})

	t.Run("remembered failure", func(t *testing.T) {
		e := e.on(t)
		req := ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "redeem-too-much", Amount: 1000}
		_, err := e.ledger.Write(e.ctx, req)
		wantCode(t, err, tally.EINSUFFICIENT)
		e.mustAccrue(c, "top-up", 5000)
		// The balance now covers it, but the key's answer was given: a retry gets the same refusal.
		_, err = e.ledger.Write(e.ctx, req)
		wantCode(t, err, tally.EINSUFFICIENT)
		out, err := e.ledger.Outcome(e.ctx, "", "redeem-too-much")
		wantCode(t, err, tally.EINSUFFICIENT)
		_ = out
		if got := e.balance(c); got != 5080 {
			t.Fatalf("balance %d, want 5080", got)
		}
	})

	t.Run("records and identities", func(t *testing.T) {
		e := e.on(t)
		rec := e.mustWrite(ledger.Request{Kind: ledger.KindNone, Channel: "webchat", Key: "ignored-1", Identity: "event:x"})
		if rec.Replayed || rec.Transaction.Seq != 0 {
			t.Fatalf("record: %+v", rec)
		}
		// Same key and identity, now asking for points: the first answer stands.
		again := e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Channel: "webchat", Key: "ignored-1", Identity: "event:x", Account: c, Amount: 10})
		if !again.Replayed || again.Transaction.Seq != 0 {
			t.Fatalf("replay of a record: %+v", again)
		}
		_, err := e.ledger.Write(e.ctx, ledger.Request{Kind: ledger.KindNone, Channel: "webchat", Key: "ignored-1", Identity: "event:y"})
		wantCode(t, err, tally.EIDEMPOTENCY)
		before := e.balance(c)
		first := e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Channel: "webchat", Key: "earned-1", Identity: "event:z", Account: c, Amount: 10, Reason: "rule a"})
		second := e.mustWrite(ledger.Request{Kind: tally.KindAccrual, Channel: "webchat", Key: "earned-1", Identity: "event:z", Account: c, Amount: 99, Reason: "rule b"})
		if !second.Replayed || second.Transaction.Seq != first.Transaction.Seq || e.balance(c) != before+10 {
			t.Fatalf("identity replay: %+v after %+v", second, first)
		}
	})

	t.Run("stale version is not remembered", func(t *testing.T) {
		e := e.on(t)
		v := int64(1)
		req := ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "versioned", Amount: 10, ExpectedVersion: &v}
		_, err := e.ledger.Write(e.ctx, req)
		wantCode(t, err, tally.EVERSION)
		a, err := e.ledger.Balance(e.ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		req.ExpectedVersion = &a.BalanceVersion
		rc := e.mustWrite(req)
		if rc.Replayed || rc.Balance != a.Balance-10 || rc.BalanceVersion != a.BalanceVersion+1 {
			t.Fatalf("retry with fresh version: %+v (was %+v)", rc, a)
		}
	})
	e.mustVerify()
}

func testBusinessRules(t *testing.T, h Harness) {
	e := newEnv(t, h)
	c, stranger := e.customer("rules"), e.customer("stranger")
	e.mustAccrue(c, "a1", 500)

	_, err := e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindRedemption, Account: stranger, Key: "r0", Amount: 1})
	wantCode(t, err, tally.ENOTFOUND)
	if _, err := e.ledger.Balance(e.ctx, stranger); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("refused redemption created an account: %v", err)
	}

	rc := e.mustWrite(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "r1", Amount: 200})
	if rc.Balance != 300 {
		t.Fatalf("after redemption %d, want 300", rc.Balance)
	}
	rc = e.mustWrite(ledger.Request{Kind: tally.KindExpiry, Account: c, Key: "x1", Amount: 50})
	if rc.Balance != 250 {
		t.Fatalf("after expiry %d, want 250", rc.Balance)
	}
	rc = e.mustWrite(ledger.Request{Kind: tally.KindAdjustment, Account: c, Key: "adj1", Amount: -25, Reason: "goodwill revoked", Actor: "ops@example"})
	if rc.Balance != 225 {
		t.Fatalf("after debit adjustment %d, want 225", rc.Balance)
	}
	_, err = e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindAdjustment, Account: c, Key: "adj2", Amount: -226, Reason: "x", Actor: "y"})
	wantCode(t, err, tally.EINSUFFICIENT)

	if _, err := e.ledger.SetStatus(e.ctx, c, tally.StatusFrozen); err != nil {
		t.Fatal(err)
	}
	for _, k := range []tally.Kind{tally.KindAccrual, tally.KindRedemption, tally.KindExpiry} {
		_, err := e.ledger.Write(e.ctx, ledger.Request{Kind: k, Account: c, Key: "frozen-" + string(k), Amount: 1})
		wantCode(t, err, tally.EFROZEN)
	}
	rc = e.mustWrite(ledger.Request{Kind: tally.KindAdjustment, Account: c, Key: "adj3", Amount: 5, Reason: "fix", Actor: "ops"})
	if rc.Balance != 230 {
		t.Fatalf("adjustment on frozen account: %d, want 230", rc.Balance)
	}
	if _, err := e.ledger.SetStatus(e.ctx, c, tally.StatusClosed); err != nil {
		t.Fatal(err)
	}
	_, err = e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindAdjustment, Account: c, Key: "adj4", Amount: 5, Reason: "fix", Actor: "ops"})
	wantCode(t, err, tally.ECLOSED)
	if _, err := e.ledger.SetStatus(e.ctx, stranger, tally.StatusFrozen); tally.ErrorCode(err) != tally.ENOTFOUND {
		t.Fatalf("freezing an unknown customer: %v", err)
	}

	// System accounts hold exactly what left or entered customers.
	want := map[string]int64{tally.AccountIssuance: -500, tally.AccountRedemptions: 200, tally.AccountExpired: 50, tally.AccountAdjustments: 20}
	for id, w := range want {
		a, err := e.store.Account(e.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if a.Balance != w {
			t.Errorf("%s balance %d, want %d", id, a.Balance, w)
		}
	}
	e.mustVerify()
}

func testReversal(t *testing.T, h Harness) {
	e := newEnv(t, h)
	c := e.customer("reversal")
	acc := e.mustAccrue(c, "a1", 100)
	red := e.mustWrite(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "r1", Amount: 60})

	rev := e.mustWrite(ledger.Request{Kind: tally.KindReversal, Key: "rev-r1", ReversesSeq: red.Transaction.Seq, Reason: "reward out of stock"})
	if rev.Balance != 100 || rev.Transaction.Amount != 60 || rev.Transaction.AccountID != c {
		t.Fatalf("reversal of redemption: %+v", rev)
	}
	_, err := e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindReversal, Key: "rev-r1-again", ReversesSeq: red.Transaction.Seq, Reason: "again"})
	wantCode(t, err, tally.EALREADY)
	_, err = e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindReversal, Key: "rev-rev", ReversesSeq: rev.Transaction.Seq, Reason: "undo"})
	wantCode(t, err, tally.EINVALID)
	_, err = e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindReversal, Key: "rev-none", ReversesSeq: 999999, Reason: "x"})
	wantCode(t, err, tally.ENOTFOUND)

	// Reversing an accrual whose points were spent would make the balance negative.
	e.mustWrite(ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "r2", Amount: 90})
	_, err = e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindReversal, Key: "rev-a1", ReversesSeq: acc.Transaction.Seq, Reason: "fraud"})
	wantCode(t, err, tally.EINSUFFICIENT)

	// Many concurrent reversals of one transaction: exactly one applies.
	d := e.customer("reversal-2")
	a2 := e.mustAccrue(d, "a2", 70)
	errs := parallel(20, func(i int) error {
		_, err := e.ledger.Write(e.ctx, ledger.Request{Kind: tally.KindReversal, Key: "rev-race-" + itoa(i), ReversesSeq: a2.Transaction.Seq, Reason: "race"})
		return err
	})
	ok := 0
	for _, err := range errs {
		switch tally.ErrorCode(err) {
		case "":
			ok++
		case tally.EALREADY:
		default:
			t.Fatalf("concurrent reversal: %v", err)
		}
	}
	if ok != 1 || e.balance(d) != 0 {
		t.Fatalf("%d reversals applied, balance %d; want 1 and 0", ok, e.balance(d))
	}
	e.mustVerify()
}

func testHistory(t *testing.T, h Harness) {
	e := newEnv(t, h)
	c := e.customer("history")
	var seqs []int64
	for i := 0; i < 23; i++ {
		seqs = append(seqs, e.mustAccrue(c, "h"+itoa(i), int64(i+1)).Transaction.Seq)
	}
	e.mustAccrue(e.customer("other"), "other", 5)
	var got []int64
	cursor := ""
	for pages := 0; ; pages++ {
		p, err := e.ledger.History(e.ctx, c, cursor, 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, tx := range p.Transactions {
			if tx.AccountID != c || len(tx.Postings) != 2 {
				t.Fatalf("history row %+v", tx)
			}
			got = append(got, tx.Seq)
		}
		if p.Next == "" {
			break
		}
		if pages > 5 {
			t.Fatal("history does not end")
		}
		cursor = p.Next
	}
	if len(got) != len(seqs) {
		t.Fatalf("history has %d rows, want %d", len(got), len(seqs))
	}
	for i := range got {
		if got[i] != seqs[len(seqs)-1-i] {
			t.Fatalf("history order %v, want newest first of %v", got, seqs)
		}
	}
	for _, bad := range []string{"garbage", "c2VxOi0x", "c2VxOmFiYw"} {
		if _, err := e.ledger.History(e.ctx, c, bad, 10); tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("cursor %q: %v", bad, err)
		}
	}
	if _, err := e.ledger.History(e.ctx, c, "", ledger.MaxPageSize+1); tally.ErrorCode(err) != tally.EINVALID {
		t.Errorf("oversized page: %v", err)
	}
	p, err := e.ledger.History(e.ctx, e.customer("nobody"), "", 10)
	if err != nil || len(p.Transactions) != 0 {
		t.Fatalf("history of unknown customer: %v %v", p, err)
	}
}
