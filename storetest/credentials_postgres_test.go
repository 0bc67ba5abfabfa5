package storetest_test

import (
	"context"
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/postgres"
	"github.com/tally-ledger/tally/postgres/pgtest"
	"github.com/tally-ledger/tally/storetest"
)

func TestPostgresCredentials(t *testing.T) {
	storetest.RunCredentials(t, func(t testing.TB) tally.CredentialStore {
		return pgtest.Open(t) // closed by pgtest when the test ends
	})
}

// TestPostgresKeysAtRest steals the signing keys with a plain SELECT, as anyone who can read the
// database (or a dump of it) can.
func TestPostgresKeysAtRest(t *testing.T) {
	open := func(t testing.TB) tally.CredentialStore { return pgtest.Open(t) }
	storetest.RunKeysAtRest(t, open, func(t testing.TB, s tally.CredentialStore) []storetest.StolenRow {
		rows, err := s.(*postgres.DB).Pool().Query(context.Background(), `SELECT * FROM signing_keys`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []storetest.StolenRow
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				t.Fatal(err)
			}
			row := storetest.StolenRow{}
			for i, f := range rows.FieldDescriptions() {
				row[f.Name] = vals[i]
			}
			out = append(out, row)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	})
}
