package storetest

import (
	"sync/atomic"
	"testing"

	"pgregory.net/rapid"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/ledger"
)

// modelTx is what the model remembers of an applied transaction.
type modelTx struct {
	account  string
	delta    int64
	kind     tally.Kind
	reversed bool
}

// testProperty drives the ledger with random sequences of writes (some of them concurrent, some replays
// and conflicting reuses of keys) and checks every answer and balance against a simple model, and the
// ledger's invariants with verify.
func testProperty(t *testing.T, h Harness) {
	e := newEnv(t, h)
	var round atomic.Int64
	rapid.Check(t, func(rt *rapid.T) {
		e := e.on(rt)
		n := round.Add(1)
		customers := make([]string, 4)
		for i := range customers {
			customers[i] = e.customer("prop-" + itoa(int(n)) + "-" + itoa(i))
		}
		balance := map[string]int64{}
		txs := map[int64]*modelTx{}
		var seqs []int64
		type sent struct {
			req ledger.Request
			seq int64
			err tally.Code
		}
		var history []sent
		keyN := 0
		newKey := func() string { keyN++; return "r" + itoa(int(n)) + "-" + itoa(keyN) }

		// expect applies r to the model and returns the outcome the ledger must give.
		expect := func(r ledger.Request) (delta int64, code tally.Code) {
			switch r.Kind {
			case tally.KindAccrual:
				return r.Amount, ""
			case tally.KindRedemption, tally.KindExpiry:
				if balance[r.Account] < r.Amount {
					if _, known := balance[r.Account]; !known {
						return 0, tally.ENOTFOUND
					}
					return 0, tally.EINSUFFICIENT
				}
				return -r.Amount, ""
			case tally.KindAdjustment:
				if _, known := balance[r.Account]; !known && r.Amount < 0 {
					return 0, tally.ENOTFOUND
				}
				if balance[r.Account]+r.Amount < 0 {
					return 0, tally.EINSUFFICIENT
				}
				return r.Amount, ""
			}
			return 0, ""
		}
		check := func(r ledger.Request, rc ledger.Receipt, err error, wantDelta int64, want tally.Code) {
			if got := tally.ErrorCode(err); got != want {
				rt.Fatalf("%s %s of %d: got %v, want code %q", r.Kind, r.Key, r.Amount, err, want)
			}
			if err != nil {
				return
			}
			balance[r.Account] += wantDelta
			if rc.Balance != balance[r.Account] {
				rt.Fatalf("%s %s: receipt balance %d, model %d", r.Kind, r.Key, rc.Balance, balance[r.Account])
			}
			txs[rc.Transaction.Seq] = &modelTx{account: r.Account, delta: wantDelta, kind: r.Kind}
			seqs = append(seqs, rc.Transaction.Seq)
		}
		genWrite := func(rt *rapid.T, c string) ledger.Request {
			kind := rapid.SampledFrom([]tally.Kind{tally.KindAccrual, tally.KindAccrual, tally.KindRedemption, tally.KindExpiry, tally.KindAdjustment}).Draw(rt, "kind")
			amount := rapid.Int64Range(1, 300).Draw(rt, "amount")
			r := ledger.Request{Kind: kind, Account: c, Key: newKey(), Amount: amount}
			if kind == tally.KindAdjustment {
				if rapid.Bool().Draw(rt, "debit") {
					r.Amount = -amount
				}
				r.Reason, r.Actor = "prop", "rapid"
			}
			return r
		}

		steps := rapid.IntRange(1, 30).Draw(rt, "steps")
		for s := 0; s < steps; s++ {
			switch rapid.IntRange(0, 5).Draw(rt, "step") {
			case 0, 1: // one write
				r := genWrite(rt, rapid.SampledFrom(customers).Draw(rt, "customer"))
				d, code := expect(r)
				rc, err := e.ledger.Write(e.ctx, r)
				check(r, rc, err, d, code)
				history = append(history, sent{r, rc.Transaction.Seq, tally.ErrorCode(err)})
			case 2: // one write for each customer, all at once: they share batches
				reqs := make([]ledger.Request, len(customers))
				for i, c := range customers {
					reqs[i] = genWrite(rt, c)
				}
				rcs := make([]ledger.Receipt, len(reqs))
				errs := parallel(len(reqs), func(i int) error {
					var err error
					rcs[i], err = e.ledger.Write(e.ctx, reqs[i])
					return err
				})
				for i, r := range reqs {
					d, code := expect(r)
					check(r, rcs[i], errs[i], d, code)
					history = append(history, sent{r, rcs[i].Transaction.Seq, tally.ErrorCode(errs[i])})
				}
			case 3: // replay an earlier request: same answer, no effect
				if len(history) == 0 {
					continue
				}
				old := rapid.SampledFrom(history).Draw(rt, "replay")
				rc, err := e.ledger.Write(e.ctx, old.req)
				if tally.ErrorCode(err) != old.err {
					rt.Fatalf("replay of %s: %v, first answer had code %q", old.req.Key, err, old.err)
				}
				if err == nil && (!rc.Replayed || rc.Transaction.Seq != old.seq) {
					rt.Fatalf("replay of %s: %+v, want replay of %d", old.req.Key, rc, old.seq)
				}
			case 4: // reuse an earlier key for another request
				if len(history) == 0 {
					continue
				}
				old := rapid.SampledFrom(history).Draw(rt, "reuse")
				r := old.req
				r.Reason += " (changed)"
				_, err := e.ledger.Write(e.ctx, r)
				if old.err == tally.EVERSION {
					continue
				}
				if tally.ErrorCode(err) != tally.EIDEMPOTENCY {
					rt.Fatalf("reuse of key %s for another request: %v", r.Key, err)
				}
			case 5: // reverse an earlier transaction
				if len(seqs) == 0 {
					continue
				}
				seq := rapid.SampledFrom(seqs).Draw(rt, "target")
				m := txs[seq]
				r := ledger.Request{Kind: tally.KindReversal, Key: newKey(), ReversesSeq: seq, Reason: "prop"}
				var want tally.Code
				switch {
				case m.kind == tally.KindReversal:
					want = tally.EINVALID
				case m.reversed:
					want = tally.EALREADY
				case balance[m.account]-m.delta < 0:
					want = tally.EINSUFFICIENT
				}
				rc, err := e.ledger.Write(e.ctx, r)
				if got := tally.ErrorCode(err); got != want {
					rt.Fatalf("reversal of %d: %v, want code %q", seq, err, want)
				}
				if err == nil {
					m.reversed = true
					balance[m.account] -= m.delta
					txs[rc.Transaction.Seq] = &modelTx{account: m.account, delta: -m.delta, kind: tally.KindReversal}
					seqs = append(seqs, rc.Transaction.Seq)
					if rc.Balance != balance[m.account] {
						rt.Fatalf("reversal receipt balance %d, model %d", rc.Balance, balance[m.account])
					}
				}
			}
		}
		for _, c := range customers {
			if got := e.balance(c); got != balance[c] {
				rt.Fatalf("balance %d, model %d", got, balance[c])
			}
		}
		if _, err := ledger.Verify(e.ctx, e.store.Audit(), ledger.VerifyOptions{Key: e.key}); err != nil {
			rt.Fatalf("verify: %v", err)
		}
	})
}
