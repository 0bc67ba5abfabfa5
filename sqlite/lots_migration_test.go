package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// TestLotsMigrationOfExistingBalances upgrades a database written before lots existed: accounts is
// rebuilt with its rows and references intact, and each customer's balance becomes one lot that never
// expires, numbered by its latest credit.
func TestLotsMigrationOfExistingBalances(t *testing.T) {
	ctx := context.Background()
	db, err := Open(ctx, filepath.Join(t.TempDir(), "tally.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.migrator.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	const alice, bob = "aaaa", "bbbb"
	for _, q := range []string{
		`INSERT INTO accounts (id, customer_hash, kind, balance, balance_version, last_tx_hash, created_at) VALUES ('aaaa', 'aaaa', 'customer', 30, 3, 'h3', 1), ('bbbb', 'bbbb', 'customer', 0, 2, 'h5', 1)`,
		`INSERT INTO transactions (seq, kind, account_id, channel, idempotency_key, request_hash, amount, created_at, hash) VALUES
			(1, 'accrual', 'aaaa', 'api', 'k1', '', 40, 10, 'h1'), (2, 'accrual', 'aaaa', 'api', 'k2', '', 10, 20, 'h2'),
			(3, 'redemption', 'aaaa', 'api', 'k3', '', 20, 30, 'h3'), (4, 'accrual', 'bbbb', 'api', 'k4', '', 5, 40, 'h4'),
			(5, 'redemption', 'bbbb', 'api', 'k5', '', 5, 50, 'h5')`,
		`INSERT INTO postings (seq, idx, account_id, amount) VALUES (1, 0, 'aaaa', 40), (1, 1, 'system:issuance', -40),
			(2, 0, 'aaaa', 10), (2, 1, 'system:issuance', -10), (3, 0, 'aaaa', -20), (3, 1, 'system:redemptions', 20),
			(4, 0, 'bbbb', 5), (4, 1, 'system:issuance', -5), (5, 0, 'bbbb', -5), (5, 1, 'system:redemptions', 5)`,
	} {
		if _, err := db.writer.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	lots, err := db.AccountLots(ctx, alice)
	if err != nil || len(lots) != 1 || lots[0].Seq != 2 || lots[0].Points != 30 || lots[0].Remaining != 30 || lots[0].ExpiresAt != nil || lots[0].CreatedAt != fromMicros(20) {
		t.Fatalf("alice's lots after the upgrade = %+v, %v, want one lot of 30 numbered 2, never expiring", lots, err)
	}
	if lots, err := db.AccountLots(ctx, bob); err != nil || len(lots) != 0 {
		t.Fatalf("bob (balance 0) has lots %+v, %v", lots, err)
	}
	a, err := db.Account(ctx, alice)
	if err != nil || a.Balance != 30 || a.BalanceVersion != 3 || a.LastTxHash != "h3" || a.Pending != 0 {
		t.Fatalf("alice after the upgrade = %+v, %v", a, err)
	}
	var violations int
	rows, err := db.writer.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		violations++
	}
	rows.Close()
	if violations != 0 {
		t.Fatalf("%d foreign key violations after the rebuild of accounts", violations)
	}
	if _, err := db.writer.ExecContext(ctx, `UPDATE accounts SET balance = -1 WHERE id = 'aaaa'`); resultCode(err)&0xff != 19 {
		t.Fatalf("a negative balance without an overdraft limit: %v, want the constraint to refuse it", err)
	}
	if _, err := db.writer.ExecContext(ctx, `DELETE FROM accounts WHERE id = 'bbbb'`); err == nil {
		t.Fatal("deleting an account that transactions reference passed: the rebuilt table lost its references")
	}
	if ok, err := db.MigrationsCurrent(ctx); err != nil || !ok {
		t.Fatalf("MigrationsCurrent = %v, %v", ok, err)
	}
}
