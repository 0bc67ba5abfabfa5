package csvimport_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/csvimport"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/postgres/pgtest"
)

// FuzzImport feeds arbitrary files to the importer on a real (embedded) ledger. Whatever the bytes, it
// does not panic; every data row is accounted for exactly once (imported, already imported, or rejected
// with a line and a reason); and importing the same file again writes nothing: each row it wrote before
// is answered as already imported.
func FuzzImport(f *testing.F) {
	f.Add([]byte(file))
	f.Add([]byte("customer_id,points\nann,10\n"))
	f.Add([]byte("customer_id,points,kind,reference\nann,10,opening,r1\nann,11,opening,r1\n"))
	f.Add([]byte("points,customer_id\n\"1\n0\",\"a\"\"b\"\n"))
	f.Add([]byte("customer_id,points,expires_at\nth_" + hasher.Hash("x") + ",9223372036854775807,2026-01-01\n"))
	f.Add([]byte("\xef\xbb\xbfcustomer_id,points\r\nann,1\r\n"))

	// PostgreSQL, not the embedded store: coverage instrumentation of the pure-Go SQLite makes every
	// execution slow. Opened at the first input, inside the fuzzing worker that runs it.
	db := pgtest.Open(f)
	var (
		once sync.Once
		l    *ledger.Service
	)
	open := func() *ledger.Service {
		once.Do(func() {
			l = ledger.New(db, ledger.Options{Key: tally.RandomLedgerKey()})
		})
		return l
	}

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		ctx := context.Background()
		l := open()
		opts := csvimport.Options{Hasher: hasher, Actor: "fuzz", Now: func() time.Time { return now }, Concurrency: 4}
		first, err := csvimport.Import(ctx, l, bytes.NewReader(data), opts)
		if err != nil {
			if tally.ErrorCode(err) != tally.EINVALID {
				t.Fatalf("import failed with %v, want a clear refusal (invalid)", err)
			}
			return
		}
		accounted := func(s csvimport.Summary) int { return s.Imported + s.AlreadyImported + len(s.Rejected) }
		if accounted(first) != first.Rows {
			t.Fatalf("%d rows, but %d imported + %d already + %d rejected", first.Rows, first.Imported, first.AlreadyImported, len(first.Rejected))
		}
		for _, r := range first.Rejected {
			if r.Line < 2 || r.Reason == "" {
				t.Fatalf("rejection without a data line or a reason: %+v", r)
			}
		}
		again, err := csvimport.Import(ctx, l, bytes.NewReader(data), opts)
		if err != nil {
			t.Fatalf("the second import of a file the first accepted failed: %v", err)
		}
		if again.Imported != 0 || again.Points != 0 || again.AlreadyImported < first.Imported+first.AlreadyImported {
			t.Fatalf("importing again wrote %d rows (%d points); first %+v, again %+v", again.Imported, again.Points, first, again)
		}
	})
}
