package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/bench"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/sqlite"
)

func main() {
	ctx := context.Background()
	n := 100000
	for _, base := range []string{"sqlite:x", "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"} {
		f, err := bench.NewFresh(ctx, base)
		if err != nil {
			panic(err)
		}
		var store tally.Store
		var exec func(string)
		if f.Kind == "sqlite" {
			db, _ := sqlite.Open(ctx, f.URL[len("sqlite:"):])
			db.Migrate(ctx)
			store = db
			exec = func(q string) {
				if _, err := db.SQL().Exec(q); err != nil {
					panic(err)
				}
			}
		} else {
			db, err := postgres.Open(ctx, f.URL)
			if err != nil {
				panic(err)
			}
			db.Migrate(ctx)
			store = db
			exec = func(q string) {
				if _, err := db.Pool().Exec(ctx, q); err != nil {
					panic(err)
				}
			}
		}
		now := "1700000000000000"
		pad := "printf('%064d', i)"
		if f.Kind == "postgres" {
			pad = "lpad(i::text, 64, '0')"
		}
		if f.Kind == "postgres" {
			now = "now()"
		}
		exec(fmt.Sprintf(`INSERT INTO accounts (id, customer_hash, kind, balance, balance_version, last_tx_hash, created_at)
			WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d)
			SELECT %s, %s, 'customer', i, 1, 'ab', %s FROM c`, n, pad, pad, now))
		if f.Kind == "sqlite" {
			exec("PRAGMA wal_checkpoint(TRUNCATE)")
		}
		key := tally.RandomLedgerKey()
		for i := 0; i < 3; i++ {
			if i == 2 {
				exec(`UPDATE accounts SET balance_version = 2 WHERE id < '0000000000000000000000000000000000000000000000000000000000001000'`)
			}
			start := time.Now()
			cp, err := ledger.TakeCheckpoint(ctx, store, key, time.Now(), false)
			if err != nil {
				panic(err)
			}
			fmt.Fprintf(os.Stdout, "%s: checkpoint %d over %d accounts: %s\n", f.Kind, cp.No, cp.Accounts, time.Since(start))
		}
		store.Close()
		f.Drop(ctx)
	}
}
