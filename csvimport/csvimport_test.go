package csvimport_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/csvimport"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/storetest/eachstore"
)

// eachLedger runs fn against a ledger on SQLite and on PostgreSQL.
func eachLedger(t *testing.T, fn func(t *testing.T, s tally.Store, l *ledger.Service, key *tally.LedgerKey)) {
	eachstore.Run(t, func(t *testing.T, s tally.Store) {
		key := tally.RandomLedgerKey()
		l := ledger.New(s, ledger.Options{Key: key})
		t.Cleanup(l.Close)
		fn(t, s, l, key)
	})
}

var hasher, _ = tally.NewCustomerHasher([]byte("csvimport-test-secret-0123"))

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

const file = `customer_id,points,kind,earned_at,expires_at,reference
ann@example.com,1500,opening,,,legacy-0001
bob@example.com,200,accrual,2026-01-15,2027-01-15,
bob@example.com,200,accrual,2026-01-15,2027-01-15,
,10,accrual,,,
carol@example.com,-5,accrual,,,
carol@example.com,ten,accrual,,,
carol@example.com,10,bonus,,,
carol@example.com,10,accrual,2026-13-01,,
carol@example.com,10,accrual,2027-01-01,,
carol@example.com,10,accrual,2026-01-01,2025-12-01,
carol@example.com,10,accrual,2025-01-01,2026-01-01,
carol@example.com,10,accrual,,,legacy-0001

dave@example.com,75,Opening,2025-03-01T10:00:00Z,,legacy-0002
`

func TestImportTwiceImportsOnce(t *testing.T) {
	t.Parallel()
	eachLedger(t, func(t *testing.T, s tally.Store, l *ledger.Service, key *tally.LedgerKey) {
		ctx := context.Background()
		var progress []int
		opts := csvimport.Options{Hasher: hasher, Actor: "ops", Now: func() time.Time { return now },
			Progress: func(done int) { progress = append(progress, done) }, Concurrency: 4}
		sum, err := csvimport.Import(ctx, l, strings.NewReader(file), opts)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Rows != 13 || sum.Imported != 4 || sum.AlreadyImported != 0 || sum.Points != 1500+200+200+75 {
			t.Fatalf("first run: %+v", sum)
		}
		wantRejected := map[int]string{
			5: "customer_id is empty", 6: "points must be", 7: "points must be", 8: "kind must be",
			9: "earned_at:", 10: "in the future", 11: "not after earned_at", 12: "expired on", 13: "used by line 2",
		}
		if len(sum.Rejected) != len(wantRejected) {
			t.Fatalf("rejected %+v, want lines %v", sum.Rejected, wantRejected)
		}
		for i, r := range sum.Rejected {
			if i > 0 && sum.Rejected[i-1].Line >= r.Line {
				t.Fatalf("rejections not by line: %+v", sum.Rejected)
			}
			if want, ok := wantRejected[r.Line]; !ok || !strings.Contains(r.Reason, want) {
				t.Errorf("line %d rejected with %q, want %q", r.Line, r.Reason, want)
			}
		}
		if len(progress) != 13 || progress[12] != 13 {
			t.Fatalf("progress %v", progress)
		}
		balance := func(c string) int64 {
			a, err := s.Account(ctx, hasher.Hash(c))
			if err != nil {
				t.Fatalf("%s: %v", c, err)
			}
			return a.Balance
		}
		if balance("ann@example.com") != 1500 || balance("bob@example.com") != 400 || balance("dave@example.com") != 75 {
			t.Fatal("balances after the import are wrong")
		}
		tx, err := s.TransactionByKey(ctx, csvimport.Channel, "ref:legacy-0002")
		if err != nil {
			t.Fatal(err)
		}
		var md map[string]csvimport.Metadata
		if err := json.Unmarshal(tx.Metadata, &md); err != nil || md["import"].Kind != "opening" || md["import"].EarnedAt != "2025-03-01T10:00:00Z" || tx.Actor != "ops" || tx.Kind != tally.KindAccrual {
			t.Fatalf("imported transaction %+v (%v)", tx, err)
		}

		// bob's rows carry an expiry: their lots expire then.
		lots, err := s.AccountLots(ctx, hasher.Hash("bob@example.com"))
		if err != nil || len(lots) != 2 || lots[0].ExpiresAt == nil || !lots[0].ExpiresAt.Equal(time.Date(2027, 1, 15, 0, 0, 0, 0, time.UTC)) {
			t.Fatalf("bob's lots %+v (%v), want two expiring on 2027-01-15", lots, err)
		}

		// Again, by someone else, with a row added: only the new row is written.
		opts.Actor, opts.Progress = "someone else", nil
		again, err := csvimport.Import(ctx, l, strings.NewReader(file+"erin@example.com,5,,,,\n"), opts)
		if err != nil {
			t.Fatal(err)
		}
		if again.Imported != 1 || again.AlreadyImported != 4 || again.Points != 5 || len(again.Rejected) != len(wantRejected) {
			t.Fatalf("second run: %+v", again)
		}
		if balance("bob@example.com") != 400 {
			t.Fatal("the second run imported bob's rows again")
		}
		// A reference reused with other values is refused, naming the key.
		changed, err := csvimport.Import(ctx, l, strings.NewReader("customer_id,points,reference\nann@example.com,1600,legacy-0001\n"), opts)
		if err != nil || changed.Imported != 0 || len(changed.Rejected) != 1 || !strings.Contains(changed.Rejected[0].Reason, "other values") {
			t.Fatalf("reference reused: %+v, %v", changed, err)
		}
		if _, err := ledger.Verify(ctx, s.Audit(), ledger.VerifyOptions{Key: key}); err != nil {
			t.Fatal(err)
		}
	})
}

func TestImportBadFiles(t *testing.T) {
	t.Parallel()
	eachLedger(t, func(t *testing.T, s tally.Store, l *ledger.Service, key *tally.LedgerKey) {
		for _, c := range []struct{ name, file, want string }{
			{"empty", "", "empty"},
			{"no points column", "customer_id,reference\nann,1\n", `no "points"`},
			{"misspelt column", "customer_id,points,expiry\nann,1,\n", `unknown column "expiry"`},
			{"repeated column", "customer_id,points,points\nann,1,1\n", "twice"},
			{"not csv", "customer_id,points\n\"ann,1\n", "not valid CSV"},
		} {
			sum, err := csvimport.Import(context.Background(), l, strings.NewReader(c.file), csvimport.Options{Hasher: hasher})
			if tally.ErrorCode(err) != tally.EINVALID || !strings.Contains(err.Error(), c.want) || sum.Imported != 0 {
				t.Errorf("%s: %+v, %v; want an error mentioning %q", c.name, sum, err, c.want)
			}
		}
		if n, _ := s.Audit().CountTransactions(context.Background()); n != 0 {
			t.Fatalf("bad files wrote %d transactions", n)
		}
	})
}

func TestImportMany(t *testing.T) {
	t.Parallel()
	eachLedger(t, func(t *testing.T, s tally.Store, l *ledger.Service, key *tally.LedgerKey) {
		var b strings.Builder
		b.WriteString("customer_id,points\n")
		for i := range 500 {
			fmt.Fprintf(&b, "c%d,%d\n", i%50, i+1)
		}
		sum, err := csvimport.Import(context.Background(), l, strings.NewReader(b.String()), csvimport.Options{Hasher: hasher})
		if err != nil || sum.Imported != 500 || sum.Points != 500*501/2 {
			t.Fatalf("%+v, %v", sum, err)
		}
		iss, err := s.Account(context.Background(), tally.AccountIssuance)
		if err != nil || iss.Balance != -500*501/2 {
			t.Fatalf("issuance %d (%v)", iss.Balance, err)
		}
	})
}
