package storetest_test

import (
	"context"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/postgres/pgtest"
	"github.com/tally-ledger/tally/storetest"
)

func TestPostgres(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t testing.TB) tally.Store {
			return pgtest.Open(t)
		},
		Exec: func(t testing.TB, s tally.Store, sql string) {
			t.Helper()
			if _, err := s.(*postgres.DB).Pool().Exec(context.Background(), sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		},
		Dump: func(t testing.TB, s tally.Store) []byte {
			t.Helper()
			ctx := context.Background()
			pool := s.(*postgres.DB).Pool()
			rows, err := pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`)
			if err != nil {
				t.Fatal(err)
			}
			var tables []string
			for rows.Next() {
				var name string
				if err := rows.Scan(&name); err != nil {
					t.Fatal(err)
				}
				tables = append(tables, name)
			}
			rows.Close()
			if len(tables) < 5 {
				t.Fatalf("found only tables %v", tables)
			}
			var all []byte
			for _, table := range tables {
				rows, err := pool.Query(ctx, `SELECT t::text FROM "`+table+`" t`)
				if err != nil {
					t.Fatal(err)
				}
				for rows.Next() {
					var line string
					if err := rows.Scan(&line); err != nil {
						t.Fatal(err)
					}
					all = append(all, line...)
					all = append(all, '\n')
				}
				rows.Close()
			}
			return all
		},
		Workers: 4,
	})
}
