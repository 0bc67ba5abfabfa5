package csvimport_test

import (
	"bytes"
	"context"
	"math/rand"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/csvimport"
	"github.com/tally-ledger/tally/ledger"
	"github.com/tally-ledger/tally/postgres/pgtest"
)

// TestImportMutatedFiles imports 1,000 files made by mutating valid ones (bytes changed, dropped, or CSV
// punctuation inserted), with a fixed seed so that a failure reproduces: every import ends, with a summary
// that accounts for every row or a clear refusal (invalid), and importing a file again writes nothing.
// It complements FuzzImport, whose coverage-guided runs are slow on a ledger.
func TestImportMutatedFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	db := pgtest.Open(t)
	l := ledger.New(db, ledger.Options{Key: tally.RandomLedgerKey()})
	t.Cleanup(l.Close)
	seeds := [][]byte{[]byte(file), []byte("customer_id,points\nann,10\n"),
		[]byte("customer_id,points,kind,reference\nann,10,opening,r1\nann,11,opening,r1\n")}
	rnd := rand.New(rand.NewSource(20261201))
	opts := csvimport.Options{Hasher: hasher, Actor: "mutate", Now: func() time.Time { return now }, Concurrency: 4}
	for i := 0; i < 1000; i++ {
		d := append([]byte(nil), seeds[rnd.Intn(len(seeds))]...)
		for k := rnd.Intn(4); k >= 0 && len(d) > 0; k-- {
			j := rnd.Intn(len(d))
			switch rnd.Intn(3) {
			case 0:
				d[j] = byte(rnd.Intn(256))
			case 1:
				d = append(d[:j], d[j+1:]...)
			default:
				d = append(d[:j], append([]byte{",\n\"0-9a"[rnd.Intn(7)]}, d[j:]...)...)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		first, err := csvimport.Import(ctx, l, bytes.NewReader(d), opts)
		if err != nil {
			cancel()
			if tally.ErrorCode(err) != tally.EINVALID {
				t.Fatalf("file %q: %v, want a summary or a clear refusal", d, err)
			}
			continue
		}
		if n := first.Imported + first.AlreadyImported + len(first.Rejected); n != first.Rows {
			t.Fatalf("file %q: %d rows, %d accounted for", d, first.Rows, n)
		}
		again, err := csvimport.Import(ctx, l, bytes.NewReader(d), opts)
		cancel()
		if err != nil || again.Imported != 0 || again.AlreadyImported < first.Imported+first.AlreadyImported {
			t.Fatalf("file %q imported again: %+v, %v (first %+v)", d, again, err, first)
		}
	}
}
