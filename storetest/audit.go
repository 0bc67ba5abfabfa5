package storetest

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// testAudit attacks the ledger as an insider who can write the database but does not hold the ledger
// key, and checks that the keyed chains, the chain seal and signed checkpoints kept outside the
// database catch every attack, naming the account and the checkpoint.
func testAudit(t *testing.T, h Harness) {
	t.Run("deleted newest redemption", func(t *testing.T) {
		t.Parallel()
		e, victim, cp := newAuditEnv(t, h)
		newest := e.mustWrite(ledger.Request{Kind: tally.KindRedemption, Account: victim, Key: "v4", Amount: 20})
		cp2 := e.mustCheckpoint()
		e.deleteNewest(victim, newest.Transaction)
		if _, err := ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key}); err != nil {
			t.Fatalf("without checkpoints the deletion should be invisible (the attack is faithful): %v", err)
		}
		b := e.wantBreach([]tally.Checkpoint{cp, cp2}, victim)
		if b.Checkpoint != cp2.No || !strings.Contains(b.Problem, "deleted") {
			t.Fatalf("breach %v: want checkpoint %d and a deletion", b, cp2.No)
		}
		// A checkpoint taken after the attack refuses, naming the account.
		_, err := ledger.TakeCheckpoint(e.ctx, e.store, e.key, time.Now(), false, nil)
		if !errors.As(err, &b) || b.AccountID != victim {
			t.Fatalf("checkpoint after the deletion: %v, want a breach naming %s", err, victim)
		}
	})

	t.Run("rolled back balance", func(t *testing.T) {
		t.Parallel()
		e, victim, cp := newAuditEnv(t, h)
		e.h.Exec(t, e.store, fmt.Sprintf("UPDATE accounts SET balance = balance + 30 WHERE id = '%s'", victim))
		b := e.wantBreach([]tally.Checkpoint{cp}, victim)
		if !strings.Contains(b.Problem, "balance") {
			t.Fatalf("breach %v does not name the balance", b)
		}
	})

	t.Run("chain rewritten with unkeyed hashes", func(t *testing.T) {
		t.Parallel()
		e, victim, cp := newAuditEnv(t, h)
		e.rewriteChain(victim, func(t *tally.Transaction) bool { return false }, tally.ChainHash)
		b := e.wantBreach(nil, victim)
		if !strings.Contains(b.Problem, "hash") {
			t.Fatalf("breach %v does not name the hash", b)
		}
		e.wantBreach([]tally.Checkpoint{cp}, victim)
	})

	t.Run("chain rewritten under another key", func(t *testing.T) {
		t.Parallel()
		e, victim, cp := newAuditEnv(t, h)
		forger, err := tally.NewChain(tally.RandomLedgerKey(), tally.RandomLedgerKey().NewChainSeal(0))
		if err == nil {
			t.Fatal("a seal made with one key passed under another")
		}
		other := tally.RandomLedgerKey()
		forger, err = tally.NewChain(other, other.NewChainSeal(0))
		if err != nil {
			t.Fatal(err)
		}
		e.rewriteChain(victim, func(t *tally.Transaction) bool { return false }, forger.Hash)
		e.wantBreach([]tally.Checkpoint{cp}, victim)
	})

	t.Run("forged seal", func(t *testing.T) {
		t.Parallel()
		e, _, _ := newAuditEnv(t, h)
		e.h.Exec(t, e.store, "UPDATE ledger_meta SET value = '1000000 "+strings.Repeat("ab", 32)+"' WHERE name = 'chain_seal'")
		b := e.wantBreach(nil, "(ledger)")
		if !strings.Contains(b.Problem, "seal") {
			t.Fatalf("breach %v does not name the seal", b)
		}
	})

	t.Run("deleted seal", func(t *testing.T) {
		t.Parallel()
		e, _, _ := newAuditEnv(t, h)
		e.h.Exec(t, e.store, "DELETE FROM ledger_meta WHERE name = 'chain_seal'")
		if _, err := ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key}); err == nil {
			t.Fatal("verify passed keyed chains without their seal")
		}
	})

	t.Run("seal deleted and every chain recomputed unkeyed", func(t *testing.T) {
		t.Parallel()
		e, victim, cp := newAuditEnv(t, h)
		e.rewriteChain(victim, func(t *tally.Transaction) bool {
			if t.Kind != tally.KindRedemption {
				return false
			}
			t.Amount, t.Postings[0].Amount, t.Postings[1].Amount = 1, -1, 1
			return true
		}, tally.ChainHash)
		e.rewriteChain(e.customer("bystander"), func(*tally.Transaction) bool { return false }, tally.ChainHash)
		e.exec(fmt.Sprintf("UPDATE accounts SET balance = 106 WHERE id = '%s'", victim))
		e.rebaseLots(victim)
		e.fixShards()
		e.exec("DELETE FROM ledger_meta")
		// The forgery is a consistent unkeyed ledger: only its missing seal gives it away...
		if _, err := ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key, AllowUnsealed: true}); err != nil {
			t.Fatalf("the forgery is not consistent (the test is not faithful): %v", err)
		}
		b := e.wantBreach(nil, "(ledger)")
		if !strings.Contains(b.Problem, "seal") {
			t.Fatalf("breach %v does not name the missing seal", b)
		}
		// ...and neither serve nor migrate seals it on its own,
		if _, err := ledger.OpenChain(e.ctx, e.store, e.key); !errors.Is(err, ledger.ErrUnsealed) {
			t.Fatalf("open the chains of the forgery: %v, want ErrUnsealed", err)
		}
		// while the checkpoint names an account whose chain was recomputed (both were).
		_, err := ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key, Checkpoints: []tally.Checkpoint{cp}})
		var b2 *ledger.Breach
		if !errors.As(err, &b2) || b2.Checkpoint != cp.No || b2.AccountID != victim && b2.AccountID != e.customer("bystander") {
			t.Fatalf("verify with the checkpoint: %v, want a breach naming a rewritten account and checkpoint %d", err, cp.No)
		}
	})

	t.Run("deleted account", func(t *testing.T) {
		t.Parallel()
		e, victim, cp := newAuditEnv(t, h)
		e.dropLots(victim)
		for _, sql := range []string{
			"DELETE FROM processed_events WHERE tx_seq IN (SELECT seq FROM transactions WHERE account_id = '{a}')",
			"DELETE FROM postings WHERE seq IN (SELECT seq FROM transactions WHERE account_id = '{a}')",
			"DELETE FROM transactions WHERE account_id = '{a}'",
			"DELETE FROM accounts WHERE id = '{a}'",
		} {
			e.h.Exec(t, e.store, strings.ReplaceAll(sql, "{a}", victim))
		}
		e.fixShards()
		if _, err := ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key}); err != nil {
			t.Fatalf("without checkpoints the deletion should be invisible (the attack is faithful): %v", err)
		}
		if b := e.wantBreach([]tally.Checkpoint{cp}, victim); b.Checkpoint != cp.No {
			t.Fatalf("breach %v does not name checkpoint %d", b, cp.No)
		}
	})

	t.Run("recorded heads altered", func(t *testing.T) {
		t.Parallel()
		e, victim, cp := newAuditEnv(t, h)
		e.h.Exec(t, e.store, fmt.Sprintf("DELETE FROM checkpoint_heads WHERE account_id = '%s'", victim))
		b := e.wantBreach([]tally.Checkpoint{cp}, "(ledger)")
		if b.Checkpoint != cp.No {
			t.Fatalf("breach %v does not name checkpoint %d", b, cp.No)
		}
	})

	t.Run("checkpoint checks the one before", func(t *testing.T) {
		t.Parallel()
		e, victim, cp := newAuditEnv(t, h)
		e.mustAccrue(victim, "more", 5)
		next, err := ledger.TakeCheckpoint(e.ctx, e.store, e.key, time.Now(), false, &cp)
		if err != nil || next.No != cp.No+1 {
			t.Fatalf("a checkpoint after an honest write: %+v, %v", next, err)
		}
		for _, attack := range []struct{ name, sql string }{
			{"recorded head altered", "UPDATE checkpoint_heads SET balance = balance + 1 WHERE account_id = '" + victim + "'"},
			{"recorded heads deleted", "DELETE FROM checkpoint_heads WHERE account_id = '" + victim + "'"},
			{"checkpoints deleted", "DELETE FROM checkpoint_heads; DELETE FROM checkpoints"},
		} {
			t.Run(attack.name, func(t *testing.T) {
				e, _, cp := newAuditEnv(t, h)
				for _, q := range strings.Split(attack.sql, "; ") {
					e.exec(q)
				}
				_, err := ledger.TakeCheckpoint(e.ctx, e.store, e.key, time.Now(), false, &cp)
				var b *ledger.Breach
				if !errors.As(err, &b) || b.Checkpoint != cp.No {
					t.Fatalf("a checkpoint after %s: %v, want a breach naming checkpoint %d", attack.name, err, cp.No)
				}
			})
		}
	})

	t.Run("checkpoint altered", func(t *testing.T) {
		t.Parallel()
		e, _, cp := newAuditEnv(t, h)
		for _, forge := range []func(c *tally.Checkpoint){
			func(c *tally.Checkpoint) { c.Transactions-- },
			func(c *tally.Checkpoint) { c.Root = strings.Repeat("0", 64) },
			func(c *tally.Checkpoint) { tally.RandomLedgerKey().SignCheckpoint(c) },
		} {
			c := cp
			forge(&c)
			e.wantBreach([]tally.Checkpoint{c}, "(checkpoints)")
		}
	})

	t.Run("unkeyed history anchored by a checkpoint", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, h)
		old, victim := e.customer("old"), e.customer("victim")
		e.mustAccrue(old, "o1", 40)
		e.mustAccrue(victim, "v1", 100)
		e.mustWrite(ledger.Request{Kind: tally.KindRedemption, Account: victim, Key: "v2", Amount: 30})
		// Make it a ledger written before the ledger key: v1 hashes and no seal.
		e.rewriteChain(old, func(*tally.Transaction) bool { return false }, tally.ChainHash)
		e.rewriteChain(victim, func(*tally.Transaction) bool { return false }, tally.ChainHash)
		e.h.Exec(t, e.store, "DELETE FROM ledger_meta")
		rep, err := ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key, AllowUnsealed: true})
		if err != nil || rep.Sealed {
			t.Fatalf("an unsealed v1 ledger: %+v, %v; want it verified, unsealed", rep, err)
		}
		// It is not sealed behind the operator's back...
		if _, err := ledger.OpenChain(e.ctx, e.store, e.key); !errors.Is(err, ledger.ErrUnsealed) {
			t.Fatalf("opening the chains of an unsealed ledger with transactions: %v, want ErrUnsealed", err)
		}
		// ...but on purpose, after which an upgraded Tally writes keyed transactions.
		if _, err := ledger.SealExisting(e.ctx, e.store, e.key); err != nil {
			t.Fatal(err)
		}
		l := ledger.New(e.store, ledger.Options{Key: e.key})
		defer l.Close()
		if _, err := l.Write(e.ctx, ledger.Request{Kind: tally.KindAccrual, Account: old, Key: "o2", Amount: 5}); err != nil {
			t.Fatal(err)
		}
		rep = e.mustVerify()
		if !rep.Sealed || rep.V1Through != 3 {
			t.Fatalf("after the upgrade: %+v, want sealed through 3", rep)
		}
		cp := e.mustCheckpoint()
		// The victim has only v1 transactions: rewriting them is invisible to the chains alone...
		e.rewriteChain(victim, func(t *tally.Transaction) bool {
			if t.Kind != tally.KindRedemption {
				return false
			}
			t.Amount, t.Postings[0].Amount, t.Postings[1].Amount = 1, -1, 1
			return true
		}, tally.ChainHash)
		e.h.Exec(t, e.store, fmt.Sprintf("UPDATE accounts SET balance = 99 WHERE id = '%s'", victim))
		e.rebaseLots(victim)
		e.fixShards()
		e.mustVerify()
		// ...and caught by the checkpoint that anchors them.
		if b := e.wantBreach([]tally.Checkpoint{cp}, victim); b.Checkpoint != cp.No {
			t.Fatalf("breach %v does not name checkpoint %d", b, cp.No)
		}
	})
}

// newAuditEnv is a ledger with a bystander and a victim with a little history, checkpointed.
func newAuditEnv(t *testing.T, h Harness) (*env, string, tally.Checkpoint) {
	e := newEnv(t, h)
	victim, bystander := e.customer("victim"), e.customer("bystander")
	e.mustAccrue(bystander, "b1", 10)
	e.mustAccrue(victim, "v1", 100)
	e.mustWrite(ledger.Request{Kind: tally.KindRedemption, Account: victim, Key: "v2", Amount: 30})
	e.mustAccrue(victim, "v3", 7)
	cp := e.mustCheckpoint()
	rep, err := ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key, Checkpoints: []tally.Checkpoint{cp}})
	if err != nil || rep.Checkpoints != 1 || !rep.Sealed {
		t.Fatalf("verify of an untouched ledger with its checkpoint: %+v, %v", rep, err)
	}
	return e, victim, cp
}

func (e *env) mustCheckpoint() tally.Checkpoint {
	e.t.Helper()
	cp, err := ledger.TakeCheckpoint(e.ctx, e.store, e.key, time.Now(), false, nil)
	if err != nil {
		e.t.Fatalf("checkpoint: %v", err)
	}
	return cp
}

// wantBreach runs verify with the checkpoints and wants a breach naming account.
func (e *env) wantBreach(cps []tally.Checkpoint, account string) *ledger.Breach {
	e.t.Helper()
	_, err := ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key, Checkpoints: cps})
	var b *ledger.Breach
	if !errors.As(err, &b) {
		e.t.Fatalf("verify after the attack: %v, want a breach", err)
	}
	if b.AccountID != account {
		e.t.Fatalf("breach names account %s, want %s: %v", b.AccountID, account, b)
	}
	return b
}

// deleteNewest removes an account's newest transaction as an insider would: its postings and event row,
// the amount back on the balance, the version and head stepped back, the system shard fixed.
func (e *env) deleteNewest(account string, t tally.Transaction) {
	e.t.Helper()
	for _, sql := range []string{
		"DELETE FROM processed_events WHERE tx_seq = {seq}",
		"DELETE FROM postings WHERE seq = {seq}",
		"DELETE FROM transactions WHERE seq = {seq}",
		"UPDATE accounts SET balance = balance - ({delta}), balance_version = balance_version - 1, " +
			"last_tx_hash = (SELECT hash FROM transactions WHERE seq = (SELECT MAX(seq) FROM transactions WHERE account_id = '{a}')) WHERE id = '{a}'",
	} {
		if strings.HasPrefix(sql, "DELETE FROM transactions") {
			e.dropLots(account)
		}
		e.exec(strings.NewReplacer("{seq}", itoa(int(t.Seq)), "{delta}", fmt.Sprint(t.Delta()), "{a}", account).Replace(sql))
	}
	e.rebaseLots(account)
	e.fixShards()
}

// dropLots deletes an account's lots and their uses, as an insider about to delete its transactions must.
func (e *env) dropLots(account string) {
	e.t.Helper()
	for _, sql := range []string{
		"DELETE FROM lot_uses WHERE lot_seq IN (SELECT seq FROM lots WHERE account_id = '{a}')",
		"DELETE FROM lot_uses WHERE debit_seq IN (SELECT seq FROM transactions WHERE account_id = '{a}')",
		"DELETE FROM lots WHERE account_id = '{a}'",
	} {
		e.exec(strings.ReplaceAll(sql, "{a}", account))
	}
}

// rebaseLots replaces an account's lots by one holding its whole balance, as a careful insider who
// rewrote the balance would, so that the lots agree with it.
func (e *env) rebaseLots(account string) {
	e.t.Helper()
	e.dropLots(account)
	for _, sql := range []string{
		"UPDATE accounts SET pending = 0 WHERE id = '{a}'",
		`INSERT INTO lots (seq, account_id, points, remaining, created_at)
		SELECT t.seq, t.account_id, a.balance, a.balance, t.created_at FROM transactions t JOIN accounts a ON a.id = t.account_id
		WHERE a.balance > 0 AND t.seq = (SELECT MAX(t2.seq) FROM transactions t2 JOIN postings p ON p.seq = t2.seq AND p.account_id = t2.account_id
			WHERE t2.account_id = '{a}' AND p.amount > 0)`,
	} {
		e.exec(strings.ReplaceAll(sql, "{a}", account))
	}
}

// fixShards makes the system accounts' shards agree with the postings again, as a careful insider would.
func (e *env) fixShards() {
	e.t.Helper()
	for _, id := range tally.SystemAccounts {
		e.exec(strings.ReplaceAll(`UPDATE account_shards SET balance = CASE WHEN shard = (SELECT MIN(shard) FROM account_shards WHERE account_id = '{s}')
			THEN (SELECT COALESCE(SUM(amount), 0) FROM postings WHERE account_id = '{s}') ELSE 0 END WHERE account_id = '{s}'`, "{s}", id))
	}
}

// rewriteChain recomputes an account's whole chain with hash after change has edited its transactions,
// and points the account at the new head, as an insider without the ledger key would.
func (e *env) rewriteChain(account string, change func(*tally.Transaction) bool, hash func(string, *tally.Transaction) (string, error)) {
	e.t.Helper()
	var txs []tally.Transaction
	err := e.store.Audit().ScanTransactions(e.ctx, func(t tally.Transaction) error {
		if t.AccountID == account {
			txs = append(txs, t)
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	prev := ""
	for i := range txs {
		t := &txs[i]
		if change(t) {
			e.exec(fmt.Sprintf("UPDATE transactions SET amount = %d WHERE seq = %d", t.Amount, t.Seq))
			for idx, p := range t.Postings {
				e.exec(fmt.Sprintf("UPDATE postings SET amount = %d WHERE seq = %d AND idx = %d", p.Amount, t.Seq, idx))
			}
		}
		h, err := hash(prev, t)
		if err != nil {
			e.t.Fatal(err)
		}
		e.exec(fmt.Sprintf("UPDATE transactions SET hash = '%s' WHERE seq = %d", h, t.Seq))
		prev = h
	}
	e.exec(fmt.Sprintf("UPDATE accounts SET last_tx_hash = '%s' WHERE id = '%s'", prev, account))
}

// exec runs SQL as the attacker, reporting to the test that built e.
func (e *env) exec(sql string) {
	e.t.Helper()
	t, ok := e.t.(testing.TB)
	if !ok {
		e.t.Fatalf("exec needs a testing.TB, have %T", e.t)
	}
	e.h.Exec(t, e.store, sql)
}
