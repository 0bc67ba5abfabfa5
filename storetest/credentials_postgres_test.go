package storetest_test

import (
	"testing"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/postgres/pgtest"
	"github.com/tally-ledger/tally/storetest"
)

func TestPostgresCredentials(t *testing.T) {
	storetest.RunCredentials(t, func(t testing.TB) tally.CredentialStore {
		return pgtest.Open(t) // closed by pgtest when the test ends
	})
}
