package storetest

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

func testPurge(t *testing.T, h Harness) {
	t.Run("only events' outcomes", func(t *testing.T) {
		e := newEnv(t, h)
		c := e.customer("purge")
		explicit := ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "old", Amount: 10, Reason: "test"}
		applied := e.mustWrite(explicit)
		refused := ledger.Request{Kind: tally.KindRedemption, Account: c, Key: "too-much", Amount: 1000}
		_, err := e.ledger.Write(e.ctx, refused)
		wantCode(t, err, tally.EINSUFFICIENT)
		earned := ledger.Request{Kind: tally.KindAccrual, Event: true, Channel: "webchat", Account: c, Key: "ev-1", Amount: 5, Reason: "rule", Identity: "event:c"}
		event := e.mustWrite(earned)
		e.mustWrite(ledger.Request{Kind: ledger.KindNone, Event: true, Channel: "webchat", Key: "ev-2", Identity: "event:c"})

		n, err := e.store.PurgeOutcomes(e.ctx, time.Now().Add(time.Hour))
		if err != nil || n != 2 {
			t.Fatalf("purged %d, %v; want the 2 events' outcomes", n, err)
		}
		// Explicit transactions' outcomes are kept: their replays answer as before.
		if rc := e.mustWrite(explicit); !rc.Replayed || rc.Transaction.Seq != applied.Transaction.Seq || rc.Balance != applied.Balance {
			t.Fatalf("replay after purge %+v, want the receipt of transaction %d", rc, applied.Transaction.Seq)
		}
		_, err = e.ledger.Write(e.ctx, refused)
		wantCode(t, err, tally.EINSUFFICIENT)
		// A purged event that wrote a transaction still holds its key: a redelivery is refused, naming it.
		_, err = e.ledger.Write(e.ctx, earned)
		wantNamed(t, err, tally.ECONFLICT, event.Transaction.Seq)
		if got := e.balance(c); got != 15 {
			t.Fatalf("balance %d after replays past the purge, want 15", got)
		}
		e.mustVerify()
	})

	t.Run("an explicit key whose outcome is gone", func(t *testing.T) {
		e := newEnv(t, h)
		c := e.customer("outcome-gone")
		same := ledger.Request{Kind: tally.KindAccrual, Account: c, Key: "gone", Amount: 10, Reason: "test"}
		applied := e.mustWrite(same)
		// As an earlier version's purge did, or an operator by hand.
		e.h.Exec(t, e.store, `DELETE FROM processed_events WHERE channel = 'api' AND event_id = 'gone'`)
		count := func() int64 {
			t.Helper()
			n, err := e.store.Audit().CountTransactions(e.ctx)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		before := count()

		_, err := e.ledger.Write(e.ctx, same)
		wantNamed(t, err, tally.ECONFLICT, applied.Transaction.Seq)
		other := same
		other.Amount = 11
		_, err = e.ledger.Write(e.ctx, other)
		wantNamed(t, err, tally.EIDEMPOTENCY, applied.Transaction.Seq)

		// Within a busy batch, too: only the replay is refused, the writes beside it apply.
		errs := parallel(20, func(i int) error {
			if i%5 == 0 {
				_, err := e.ledger.Write(e.ctx, same)
				return err
			}
			_, err := e.ledger.Accrue(e.ctx, ledger.Request{Account: c, Key: "beside-" + itoa(i), Amount: 1})
			return err
		})
		for i, err := range errs {
			if i%5 == 0 {
				wantNamed(t, err, tally.ECONFLICT, applied.Transaction.Seq)
			} else if err != nil {
				t.Fatalf("write %d beside the replay: %v", i, err)
			}
		}
		if got, want := count(), before+16; got != want {
			t.Fatalf("%d transactions, want %d: the key was written again", got, want)
		}
		if got := e.balance(c); got != 10+16 {
			t.Fatalf("balance %d, want %d", got, 10+16)
		}
		e.mustVerify()
	})
}

// wantNamed checks that err carries code and names transaction seq.
func wantNamed(t testing.TB, err error, code tally.Code, seq int64) {
	t.Helper()
	wantCode(t, err, code)
	if msg := tally.ErrorMessage(err); !strings.Contains(msg, "transaction "+strconv.FormatInt(seq, 10)) {
		t.Fatalf("message %q does not name transaction %d", msg, seq)
	}
}
