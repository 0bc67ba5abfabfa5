package ledger

import (
	"context"
	"fmt"
	"sort"

	"github.com/tally-ledger/tally"
)

// Every credit of a customer (accrual, positive adjustment, a reversal that gives points back) is a lot,
// numbered by its transaction's seq; every debit (redemption, negative adjustment, expiry, a reversal
// that takes points back) takes points out of lots in FIFO order (tally.LotLess) and records which in
// lot_uses. The invariants `tally verify` checks, per customer account:
//
//	pending == the remainders of the pending lots
//	the remainders of the active lots == max(0, balance - pending)
//
// The second holds when an account is overdrawn (a clawback under the allow_negative return policy):
// its active lots are then all spent, and the next active credit first settles the overdraft.

// lotRun is what one batch attempt knows of the lots its ops touch.
type lotRun struct {
	open    map[string][]*tally.Lot // open lots of accounts that debits touch, in FIFO order
	loaded  map[string]bool         // accounts whose open lots are in open
	bySeq   map[int64]*tally.Lot    // lots read or created, by seq
	dirty   map[int64]bool          // existing lots changed
	created []*lotCredit            // new lots, in batch order
	uses    []*lotUse               // lot uses, in batch order
	usesOf  map[int64][]tally.LotUse
}

// lotCredit is a new lot whose seq is its transaction's, known only when the batch is numbered.
type lotCredit struct {
	t   *tally.Transaction
	lot tally.Lot
	// settled is what the lot paid at once into an overdraft (a use by its own transaction).
	settled int64
}

// lotUse is a use whose debit's seq, and whose lot's when the lot is new, are known only when the batch
// is numbered.
type lotUse struct {
	t      *tally.Transaction
	lot    *tally.Lot
	points int64
}

// loadLots reads, after the accounts are locked, the open lots of the accounts whose ops debit or
// reverse, the lots reversals target, the lot uses of the debits they reverse, and what has lapsed of
// every locked account's lots (Account.Lapsed).
func (b *batchRun) loadLots(ctx context.Context) error {
	if err := b.loadOpenLots(ctx); err != nil {
		return err
	}
	// Lapsed points are gone at their expiry time, whether or not the expiry job has posted them: no
	// debit may take them and no answer shows them as spendable. The accounts whose open lots are
	// loaded count them from those; the others (credits only) in one query.
	var others []string
	for id, a := range b.accounts {
		if b.lots.loaded[id] {
			a.Lapsed = b.lapsedOf(id)
		} else {
			others = append(others, id)
		}
	}
	if len(others) == 0 {
		return nil
	}
	lapsed, err := b.tx.LapsedPointsOf(ctx, sortedUnique(others), b.now)
	if err != nil {
		return err
	}
	for id, n := range lapsed {
		if a, ok := b.accounts[id]; ok {
			a.Lapsed = n
		}
	}
	return nil
}

// lapsedOf is what remains of the account's loaded active lots that have expired at b.now.
func (b *batchRun) lapsedOf(id string) int64 {
	var n int64
	for _, l := range b.lots.open[id] {
		if l.Remaining > 0 && !l.Pending() && l.Lapsed(b.now) {
			n += l.Remaining
		}
	}
	return n
}

// loadOpenLots reads the lots that loadLots describes.
func (b *batchRun) loadOpenLots(ctx context.Context) error {
	b.lots = lotRun{}
	var ids []string
	var targets []int64
	for _, i := range b.fresh {
		r := b.ops[i].req
		switch {
		case r.Kind == tally.KindReversal:
			if t, ok := b.targets[r.ReversesSeq]; ok {
				ids = append(ids, t.AccountID)
				targets = append(targets, t.Seq)
			}
		case r.Kind == tally.KindRedemption || r.Kind == tally.KindExpiry || r.Kind == tally.KindAdjustment && r.Amount < 0:
			ids = append(ids, r.Account)
		}
	}
	if len(ids) == 0 {
		return nil // a batch of credits only reads no lots (its maps stay nil: only debits write them)
	}
	b.lots = lotRun{open: map[string][]*tally.Lot{}, loaded: map[string]bool{}, bySeq: map[int64]*tally.Lot{},
		dirty: map[int64]bool{}, usesOf: map[int64][]tally.LotUse{}}
	ids = sortedUnique(ids)
	open, err := b.tx.OpenLots(ctx, ids)
	if err != nil {
		return err
	}
	for _, id := range ids {
		b.lots.loaded[id] = true
		for _, l := range open[id] {
			l := l
			b.lots.open[id] = append(b.lots.open[id], &l)
			b.lots.bySeq[l.Seq] = &l
		}
	}
	if len(targets) == 0 {
		return nil
	}
	var missing []int64
	for _, s := range targets {
		if _, ok := b.lots.bySeq[s]; !ok {
			missing = append(missing, s)
		}
	}
	uses, err := b.tx.LotUses(ctx, targets)
	if err != nil {
		return err
	}
	b.lots.usesOf = uses
	for _, us := range uses {
		for _, u := range us {
			if _, ok := b.lots.bySeq[u.LotSeq]; !ok {
				missing = append(missing, u.LotSeq)
			}
		}
	}
	if len(missing) == 0 {
		return nil
	}
	spent, err := b.tx.LotsBySeq(ctx, missing)
	if err != nil {
		return err
	}
	for s, l := range spent {
		l := l
		b.lots.bySeq[s] = &l
	}
	return nil
}

// lotPlan is what one op does to lots, decided before it is applied: a refused op changes nothing.
type lotPlan struct {
	pending int64 // change of the account's pending points
	take    []lotTake
	credit  *tally.Lot // a new lot (Seq filled in when numbered)
	restore []lotTake  // points given back to existing lots
	settle  int64      // of credit, what pays the overdraft at once
	limit   int64      // the account's overdraft limit after the op
}

type lotTake struct {
	lot    *tally.Lot
	points int64
}

// activeLots returns the account's open, active lots, in FIFO order, with what is left of them, but
// for lot skip (0: none).
func (b *batchRun) activeLots(id string, skip int64) []*tally.Lot {
	var out []*tally.Lot
	for _, l := range b.lots.open[id] {
		if l.Remaining > 0 && !l.Pending() && (skip == 0 || l.Seq != skip) {
			out = append(out, l)
		}
	}
	return out
}

// takeFIFO takes up to amount points from lots in order and returns the takes and what was not covered.
func takeFIFO(lots []*tally.Lot, amount int64) ([]lotTake, int64) {
	var takes []lotTake
	for _, l := range lots {
		if amount == 0 {
			break
		}
		n := min(l.Remaining, amount)
		takes = append(takes, lotTake{l, n})
		amount -= n
	}
	return takes, amount
}

// insufficient is the refusal of a debit that the spendable balance does not cover.
func insufficient(spendable, debit int64) error {
	return &tally.Error{Code: tally.EINSUFFICIENT, Details: map[string]int64{"balance": spendable},
		Message: fmt.Sprintf("the balance of %d points does not cover %d", spendable, debit)}
}

// creditLot plans a new lot of amount points for a credit asked for by r.
func (b *batchRun) creditLot(a *tally.Account, r Request, amount int64, p *lotPlan) {
	l := &tally.Lot{AccountID: a.ID, Points: amount, Remaining: amount, CreatedAt: b.now}
	if r.ExpiresAt != nil {
		t := r.ExpiresAt.UTC()
		l.ExpiresAt = &t
	} else {
		l.ExpiresAt = b.policy.Expiry.ExpiresAt(b.earnedAt(r)) // points earned before an outage age from then
	}
	if r.PendingUntil != nil && r.PendingUntil.After(b.now) {
		t := r.PendingUntil.UTC()
		l.PendingUntil = &t
		p.pending += amount
	} else if s := a.Posted(); s < 0 {
		p.settle = min(amount, -s)
		l.Remaining -= p.settle
	}
	p.credit = l
}

// planLots decides what op r, whose transaction moves the account by delta, does to lots, and refuses
// it when the account cannot give what it takes. amount is the transaction's amount (for a lapsed
// expiry, set here to what lapsed).
func (b *batchRun) planLots(r Request, a *tally.Account, target tally.Transaction, delta int64, amount *int64) (lotPlan, error) {
	p := lotPlan{limit: a.OverdraftLimit}
	switch {
	case r.Kind == tally.KindExpiry && r.Lapsed:
		var only map[int64]bool
		if len(r.LapsedLots) > 0 {
			only = make(map[int64]bool, len(r.LapsedLots))
			for _, s := range r.LapsedLots {
				only[s] = true
			}
		}
		for _, l := range b.lots.open[a.ID] {
			if l.Remaining > 0 && l.Lapsed(b.now) && (only == nil || only[l.Seq]) {
				p.take = append(p.take, lotTake{l, l.Remaining})
				*amount += l.Remaining
				if l.Pending() {
					p.pending -= l.Remaining
				}
			}
		}
		return p, nil
	case r.Kind == tally.KindReversal && delta > 0:
		return b.planRestore(a, target, delta)
	case r.Kind == tally.KindReversal:
		return b.planClawback(a, target, -delta)
	case delta > 0:
		b.creditLot(a, r, delta, &p)
		return p, nil
	}
	// A.Spendable leaves lapsed points out; the debit takes none of their lots, which the expiry job
	// posts as expired.
	if a.Spendable()+delta < 0 {
		return p, insufficient(a.Spendable(), -delta)
	}
	var live []*tally.Lot
	for _, l := range b.activeLots(a.ID, 0) {
		if !l.Lapsed(b.now) {
			live = append(live, l)
		}
	}
	var short int64
	p.take, short = takeFIFO(live, -delta)
	if short > 0 && b.lots.loaded[a.ID] {
		return p, tally.Errorf(tally.EINTERNAL, "the lots of account %s hold %d points fewer than its spendable balance", a.ID, short)
	}
	return p, nil
}

// planClawback plans the reversal of a credit of amount points: its own lot gives what is left of it
// (pending points are cancelled first), and the programme's return policy decides what happens to
// points already spent. A clawback counts and takes lapsed points not yet posted as expired like any
// active points (FIFO takes them first): taking back points that were gone anyway leaves the customer
// no better off, and keeps the active lots equal to the posted balance when it overdraws.
func (b *batchRun) planClawback(a *tally.Account, target tally.Transaction, amount int64) (lotPlan, error) {
	p := lotPlan{limit: a.OverdraftLimit}
	rest := amount
	own, hasLot := b.lots.bySeq[target.Seq]
	if hasLot && own.Remaining > 0 {
		n := min(own.Remaining, rest)
		p.take = append(p.take, lotTake{own, n})
		rest -= n
		if own.Pending() {
			p.pending -= n
		}
	}
	policy := b.policy.Return
	if policy == tally.ReturnOnlyPending && (!hasLot || !own.Pending() || rest > 0) {
		return p, &tally.Error{Code: tally.EINSUFFICIENT, Details: map[string]int64{"balance": a.Posted()},
			Message: fmt.Sprintf("transaction %d's points are no longer pending, and the return policy (only_pending) cancels only pending points", target.Seq)}
	}
	// The spendable balance once the own lot has given what it could (its pending part was never
	// spendable), before rest is taken from the other lots.
	spendable := a.Posted() - (amount - rest) - p.pending
	floor := int64(0)
	if policy == tally.ReturnAllowNegative {
		floor = -b.policy.OverdraftLimit
	}
	if spendable-rest < floor {
		return p, insufficient(spendable, rest)
	}
	takes, _ := takeFIFO(b.activeLots(a.ID, target.Seq), rest)
	p.take = append(p.take, takes...)
	if spendable-rest < 0 {
		p.limit = max(a.OverdraftLimit, rest-spendable)
	}
	return p, nil
}

// planRestore plans the reversal of a debit of amount points: the lots it took from get their points
// back (so that they expire when they would have), except that the reversal of an expiry gives the
// points back as a new lot, which expires under the programme's policy from now: expired lots stay
// expired. Points a debit took before lots existed come back as a new lot too.
func (b *batchRun) planRestore(a *tally.Account, target tally.Transaction, amount int64) (lotPlan, error) {
	p := lotPlan{limit: a.OverdraftLimit}
	deficit := max(0, -a.Posted())
	rest := amount
	if target.Kind != tally.KindExpiry {
		for _, u := range b.lots.usesOf[target.Seq] {
			l, ok := b.lots.bySeq[u.LotSeq]
			if !ok {
				continue
			}
			n := min(u.Points, rest)
			rest -= n
			if l.Pending() {
				p.pending += n
			} else {
				// An overdrawn account's restored points settle the overdraft first.
				s := min(n, deficit)
				deficit -= s
				n -= s
			}
			if n > 0 {
				p.restore = append(p.restore, lotTake{l, n})
			}
		}
	}
	if rest > 0 {
		b.creditLot(&tally.Account{ID: a.ID, Balance: -deficit}, Request{}, rest, &p)
	}
	return p, nil
}

// applyLots applies a plan to the batch's lots and the account, once the op is decided.
func (b *batchRun) applyLots(t *tally.Transaction, a *tally.Account, p lotPlan) {
	a.Pending += p.pending
	a.OverdraftLimit = p.limit
	if b.lots.loaded[a.ID] {
		defer func() { a.Lapsed = b.lapsedOf(a.ID) }()
	}
	for _, tk := range p.take {
		tk.lot.Remaining -= tk.points
		if tk.lot.Seq != 0 { // a lot new in this batch is written as it ends up
			b.lots.dirty[tk.lot.Seq] = true
		}
		b.lots.uses = append(b.lots.uses, &lotUse{t: t, lot: tk.lot, points: tk.points})
	}
	for _, rs := range p.restore {
		if rs.lot.Remaining == 0 {
			b.reopen(rs.lot)
		}
		rs.lot.Remaining += rs.points
		b.lots.dirty[rs.lot.Seq] = true
	}
	if p.credit != nil {
		c := &lotCredit{t: t, lot: *p.credit, settled: p.settle}
		b.lots.created = append(b.lots.created, c)
		if b.lots.loaded[a.ID] {
			// A later debit of the same account in this batch may take from it: keep FIFO order.
			l := &c.lot
			b.lots.open[a.ID] = append(b.lots.open[a.ID], l)
			sort.SliceStable(b.lots.open[a.ID], func(i, j int) bool { return lessOpen(b.lots.open[a.ID][i], b.lots.open[a.ID][j]) })
		}
	}
}

// lessOpen is tally.LotLess for lots of which some have no seq yet (created in this batch: they come
// after every numbered lot of the same expiry).
func lessOpen(x, y *tally.Lot) bool {
	if x.Seq == 0 || y.Seq == 0 {
		ex, ey := x.ExpiresAt, y.ExpiresAt
		switch {
		case ex == nil && ey == nil, ex != nil && ey != nil && ex.Equal(*ey):
			return x.Seq != 0 && y.Seq == 0
		case ex == nil:
			return false
		case ey == nil:
			return true
		}
		return ex.Before(*ey)
	}
	return tally.LotLess(*x, *y)
}

// reopen puts a spent lot back among its account's open lots.
func (b *batchRun) reopen(l *tally.Lot) {
	if !b.lots.loaded[l.AccountID] {
		return
	}
	for _, o := range b.lots.open[l.AccountID] {
		if o == l {
			return
		}
	}
	b.lots.open[l.AccountID] = append(b.lots.open[l.AccountID], l)
	sort.SliceStable(b.lots.open[l.AccountID], func(i, j int) bool { return lessOpen(b.lots.open[l.AccountID][i], b.lots.open[l.AccountID][j]) })
}

// writeLots writes the new lots, the changed ones and the uses, once the transactions are numbered and
// inserted.
func (b *batchRun) writeLots(ctx context.Context) error {
	var created []tally.Lot
	var uses []tally.LotUse
	for _, c := range b.lots.created {
		c.lot.Seq = c.t.Seq
		created = append(created, c.lot)
		if c.settled > 0 {
			uses = append(uses, tally.LotUse{DebitSeq: c.t.Seq, LotSeq: c.t.Seq, Points: c.settled})
		}
	}
	if err := b.tx.InsertLots(ctx, created); err != nil {
		return err
	}
	var changed []tally.Lot
	for seq := range b.lots.dirty {
		changed = append(changed, *b.lots.bySeq[seq])
	}
	sort.Slice(changed, func(i, j int) bool { return changed[i].Seq < changed[j].Seq })
	if err := b.tx.UpdateLots(ctx, changed); err != nil {
		return err
	}
	// One debit may take from a lot twice (a clawback's own lot, then FIFO, never the same lot; but two
	// restores and takes in one batch are separate transactions): sum per (debit, lot).
	if len(b.lots.uses) == 0 {
		return b.tx.InsertLotUses(ctx, uses)
	}
	type key struct{ debit, lot int64 }
	sum := map[key]int64{}
	var order []key
	for _, u := range b.lots.uses {
		k := key{u.t.Seq, u.lot.Seq}
		if _, ok := sum[k]; !ok {
			order = append(order, k)
		}
		sum[k] += u.points
	}
	for _, k := range order {
		uses = append(uses, tally.LotUse{DebitSeq: k.debit, LotSeq: k.lot, Points: sum[k]})
	}
	sort.Slice(uses, func(i, j int) bool {
		if uses[i].DebitSeq != uses[j].DebitSeq {
			return uses[i].DebitSeq < uses[j].DebitSeq
		}
		return uses[i].LotSeq < uses[j].LotSeq
	})
	return b.tx.InsertLotUses(ctx, uses)
}
