package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tally-ledger/tally/ledger"
)

// testTamper edits the database behind the ledger's back, as an attacker with SQL access would, and
// checks that verify names the account and transaction that were touched.
func testTamper(t *testing.T, h Harness) {
	cases := []struct {
		name    string
		sql     string // {seq} is the victim transaction, {account} the victim account
		problem string
		noSeq   bool
	}{
		{"posting amount", "UPDATE postings SET amount = amount + 1 WHERE seq = {seq} AND idx = 0", "sum to", false},
		{"both postings", "UPDATE postings SET amount = amount * 2 WHERE seq = {seq}", "hash", false},
		{"hash", "UPDATE transactions SET hash = (CASE WHEN substr(hash, 1, 2) = 'ab' THEN 'cd' ELSE 'ab' END) || substr(hash, 3) WHERE seq = {seq}", "hash", false},
		{"deleted posting", "DELETE FROM postings WHERE seq = {seq} AND idx = 1", "postings", false},
		{"transaction amount", "UPDATE transactions SET amount = amount + 5 WHERE seq = {seq}", "hash", false},
		{"reason", "UPDATE transactions SET reason = 'forged' WHERE seq = {seq}", "hash", false},
		{"account balance", "UPDATE accounts SET balance = balance + 1000 WHERE id = '{account}'", "balance", true},
		{"last hash", "UPDATE accounts SET last_tx_hash = '00' WHERE id = '{account}'", "last_tx_hash", true},
		// A lot renumbered to a debit: no foreign key stops it, verify must.
		{"lot of no credit", "UPDATE lots SET seq = {seq} WHERE seq = (SELECT max(seq) FROM lots WHERE account_id = '{account}')", "no transaction that credited", false},
		{"qualifying bound", "UPDATE accounts SET qualifying_bound = 0 WHERE id = '{account}'", "qualifying bound", true},
		{"rule line on a debit", "INSERT INTO accrual_rules (seq, rule, version, points) VALUES ({seq}, 'forged', 1, 5)", "not an accrual", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, h)
			victim, bystander := e.customer("victim"), e.customer("bystander")
			e.mustAccrue(bystander, "b1", 10)
			e.mustAccrue(victim, "v1", 100)
			mid := e.mustWrite(ledger.Request{Kind: "redemption", Account: victim, Key: "v2", Amount: 30})
			e.mustAccrue(victim, "v3", 7)
			e.mustVerify()

			e.h.Exec(t, e.store, strings.NewReplacer("{seq}", itoa(int(mid.Transaction.Seq)), "{account}", victim).Replace(tc.sql))
			_, err := ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key})
			var b *ledger.Breach
			if !errors.As(err, &b) {
				t.Fatalf("verify after tampering: %v, want a breach", err)
			}
			if b.AccountID != victim {
				t.Fatalf("breach names account %s, want the victim %s: %v", b.AccountID, victim, b)
			}
			if !tc.noSeq && b.Seq != mid.Transaction.Seq {
				t.Fatalf("breach names transaction %d, want %d: %v", b.Seq, mid.Transaction.Seq, b)
			}
			if !strings.Contains(b.Problem, tc.problem) {
				t.Fatalf("breach %q does not mention %q", b.Problem, tc.problem)
			}
		})
	}

	t.Run("deleted transaction", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, h)
		victim := e.customer("victim")
		e.mustAccrue(victim, "v1", 100)
		mid := e.mustAccrue(victim, "v2", 50)
		last := e.mustAccrue(victim, "v3", 5)
		seq := mid.Transaction.Seq
		e.h.Exec(t, e.store, fmt.Sprintf("DELETE FROM postings WHERE seq = %d", seq))
		e.h.Exec(t, e.store, fmt.Sprintf("UPDATE processed_events SET tx_seq = NULL WHERE tx_seq = %d", seq))
		e.dropLots(victim)
		e.h.Exec(t, e.store, fmt.Sprintf("DELETE FROM transactions WHERE seq = %d", seq))
		e.h.Exec(t, e.store, fmt.Sprintf("UPDATE accounts SET balance = balance - 50, balance_version = balance_version - 1 WHERE id = '%s'", victim))
		_, err := ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key})
		var b *ledger.Breach
		if !errors.As(err, &b) || b.AccountID != victim || b.Seq != last.Transaction.Seq {
			t.Fatalf("verify after deleting a transaction: %v, want a breach at %d", err, last.Transaction.Seq)
		}
	})
}

// testPrivacy checks that no raw customer identifier reaches the database.
func testPrivacy(t *testing.T, h Harness) {
	e := newEnv(t, h)
	raws := []string{"c7d1e3f0-22aa-4b6e-9c10-5e8f7a6b4d21", "jane.doe@example.com", "+44 7700 900123"}
	for i, raw := range raws {
		c := e.customer(raw)
		e.mustAccrue(c, "p"+itoa(i), 100)
		e.mustWrite(ledger.Request{Kind: "redemption", Account: c, Key: "pr" + itoa(i), Amount: 10})
		if _, err := e.ledger.Write(e.ctx, ledger.Request{Kind: "redemption", Account: c, Key: "px" + itoa(i), Amount: 1000}); err == nil {
			t.Fatal("overdraft accepted")
		}
	}
	dump := e.h.Dump(t, e.store)
	if len(dump) == 0 {
		t.Fatal("empty dump")
	}
	if !bytes.Contains(dump, []byte(e.customer(raws[0]))) {
		t.Fatal("dump does not hold the customer hash: it is not a dump of the data")
	}
	for _, raw := range raws {
		if bytes.Contains(dump, []byte(raw)) {
			t.Errorf("raw customer id %q found in the database", raw)
		}
	}
}
