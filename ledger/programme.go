package ledger

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/tally-ledger/tally"
)

// Earner computes what an event earns inside the batch's locked decision step, so that caps hold
// however many events of one customer arrive at once: they serialise on the customer's account lock.
// Package earning implements it over the programme's rules.
type Earner interface {
	// BeginEarning starts one batch attempt's earning, after the accounts are locked, and reads what
	// awards depend on (cap usage) for the accounts whose events may earn. since is the earliest time an
	// award of the batch is decided at (see Request.EarnAt).
	BeginEarning(ctx context.Context, tx tally.WriteTx, accounts []string, since time.Time) (EarningRun, error)
}

// EarningRun is the earning of one batch attempt.
type EarningRun interface {
	// Award returns what an event (its fields) that arrived at at earns a customer who holds tier,
	// counting what this batch granted before against the caps. Points 0 earns nothing.
	Award(account, tier string, fields map[string]any, at time.Time) Award
	// Grant records that an award was posted, so that later awards of the batch count it.
	Grant(account string, a Award)
	// Write stores what the granted awards add to the caps' usage.
	Write(ctx context.Context, tx tally.WriteTx) error
}

// Award is what an event earns: the total, and each paying rule's version and share.
type Award struct {
	Points int64
	Lines  []tally.AccrualRule
	Reason string
	// At is the time the award was decided for: the cap periods it counts in.
	At time.Time
	// PendingUntil, when set, holds the accrual's points pending until then (a paying rule's return
	// window, counted from At).
	PendingUntil *time.Time
}

// farFuture ends the window of qualifying points "as of now": every accrual written so far counts,
// whatever the clocks of the replicas that wrote it.
var farFuture = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// programmeRun is what one batch attempt knows of tiers and earning.
type programmeRun struct {
	stored map[string]tally.CustomerTier // stored tiers of the accounts that accrue or redeem gated rewards
	// qualifying holds, for the accounts whose accruals may raise their tier, their qualifying points once
	// the batch is applied; accounts whose bound stays below their next tier are not summed (qualify).
	qualifying map[string]int64
	earning    EarningRun
	lines      map[int][]tally.AccrualRule // op index -> the rule lines of its accrual
	accrued    map[string]int              // account -> the last op of the batch that accrued to it
}

// prepareProgramme reads, under the account locks, the stored tiers and the cap usage that this batch's
// accruals and tier-gated redemptions depend on. Qualifying points are not read here: qualify sums them
// after the decisions, and only for the accounts whose bound could reach a higher tier.
func (b *batchRun) prepareProgramme(ctx context.Context) error {
	var tiered, earning []string
	for _, i := range b.fresh {
		r := b.ops[i].req
		switch {
		case r.Kind == tally.KindAccrual:
			tiered = append(tiered, r.Account)
			if r.Earn != nil {
				earning = append(earning, r.Account)
			}
		case r.RewardID != "":
			tiered = append(tiered, r.Account)
		}
	}
	pr := &b.pr
	pr.stored, pr.lines, pr.accrued = map[string]tally.CustomerTier{}, map[int][]tally.AccrualRule{}, map[string]int{}
	if b.tiers != nil && len(tiered) > 0 {
		m, err := b.tx.CustomerTiers(ctx, sortedUnique(tiered))
		if err != nil {
			return err
		}
		pr.stored = m
	}
	if b.earner != nil && len(earning) > 0 {
		run, err := b.earner.BeginEarning(ctx, b.tx, sortedUnique(earning), b.earliestEarning())
		if err != nil {
			return err
		}
		pr.earning = run
	}
	return nil
}

// tierOf is the tier a customer holds: the stored one, else the base tier.
func (b *batchRun) tierOf(account string) string {
	if t, ok := b.pr.stored[account]; ok {
		return t.Tier
	}
	if b.tiers == nil {
		return ""
	}
	return b.tiers.TierOf(0)
}

// award decides what an event's accrual earns. ok is false when the op is answered already (refused).
func (b *batchRun) award(i int, account string) (Award, bool) {
	r := b.ops[i].req
	if b.pr.earning == nil {
		b.results[i] = result{err: tally.Errorf(tally.EUNAVAILABLE, "the ledger has no earning rules to apply")}
		return Award{}, false
	}
	return b.pr.earning.Award(account, b.tierOf(account), r.Earn, b.earnedAt(r)), true
}

// granted records an accrual the batch posts.
func (b *batchRun) granted(i int, account string, a *Award) {
	b.pr.accrued[account] = i
	if a != nil {
		b.pr.lines[i] = a.Lines
		b.pr.earning.Grant(account, *a)
		b.results[i].receipt.Rules = a.Lines
	}
}

// writeProgramme stores the rule lines and cap usage of the batch's accruals and raises the tier of every
// customer whose qualifying points now reach a higher one, in the accrual's transaction.
func (b *batchRun) writeProgramme(ctx context.Context) error {
	var lines []tally.AccrualRule
	for i, ls := range b.pr.lines {
		for _, l := range ls {
			l.Seq = b.txOf[i].Seq
			lines = append(lines, l)
		}
	}
	sort.Slice(lines, func(i, j int) bool {
		return lines[i].Seq < lines[j].Seq || lines[i].Seq == lines[j].Seq && lines[i].Rule < lines[j].Rule
	})
	if err := b.tx.InsertAccrualRules(ctx, lines); err != nil {
		return err
	}
	if b.pr.earning != nil {
		if err := b.pr.earning.Write(ctx, b.tx); err != nil {
			return err
		}
	}
	if err := b.upgradeTiers(ctx); err != nil {
		return err
	}
	b.noteTiers()
	return nil
}

// noteTiers puts in the receipts of the batch's accruals and tier-gated redemptions the tier their
// customer holds once the batch commits (upgrades included), so that the caller needs no read of it.
func (b *batchRun) noteTiers() {
	if b.tiers == nil {
		return
	}
	upgraded := map[string]string{}
	for _, i := range b.pr.accrued {
		if c := b.results[i].receipt.TierChange; c != nil {
			upgraded[c.AccountID] = c.To
		}
	}
	for _, i := range b.fresh {
		t, r := b.txOf[i], b.ops[i].req
		if t == nil || b.results[i].err != nil || r.Kind != tally.KindAccrual && r.RewardID == "" {
			continue
		}
		tier, ok := upgraded[t.AccountID]
		if !ok {
			tier = b.tierOf(t.AccountID)
		}
		b.results[i].receipt.Tier = tier
	}
}

// qualify finds, after the decisions, the qualifying points of the customers whose accruals in this
// batch may raise their tier. Each account carries an upper bound of its qualifying points (every
// accrual adds to it, decide included): while the tier that bound reaches is not above the stored one,
// no window sum can be either, and nothing is read. Otherwise the window is summed (one statement for
// the batch, before its own rows are written), with the batch's accruals added and the in-window
// accruals it reverses taken off, and the exact sum becomes the account's new bound from the window's
// start. The bound is written with the balance.
func (b *batchRun) qualify(ctx context.Context) error {
	p := b.tiers
	b.pr.qualifying = map[string]int64{}
	if p == nil || len(b.pr.accrued) == 0 {
		return nil
	}
	since, top := p.QualifyingSince(b.now), p.TierOf(tally.MaxAmount)
	var ids []string
	for id := range b.pr.accrued {
		a := b.accounts[id]
		if b.tierOf(id) == top {
			continue
		}
		have := rank(p, b.tierOf(id))
		if bound, ok := a.QualifyingBoundFor(since); ok && rank(p, p.TierOf(bound)) <= have {
			continue // not even the bound reaches a higher tier (the top tier never rises)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil
	}
	sort.Strings(ids)
	before, err := b.tx.QualifyingPointsOf(ctx, ids, since, farFuture)
	if err != nil {
		return err
	}
	q := make(map[string]int64, len(ids))
	for _, id := range ids {
		q[id] = before[id]
	}
	for _, t := range b.txs {
		if _, ok := q[t.AccountID]; !ok {
			continue
		}
		switch {
		case t.Kind == tally.KindAccrual:
			q[t.AccountID] += t.Amount
		case t.Kind == tally.KindReversal:
			if target, ok := b.targets[t.ReversesSeq]; ok && target.Kind == tally.KindAccrual && !target.CreatedAt.Before(since) {
				q[t.AccountID] -= target.Amount
			}
		}
	}
	for id, n := range q {
		a := b.accounts[id]
		a.QualifyingBound, a.QualifyingFrom = max(0, n), since
		b.pr.qualifying[id] = n
	}
	return nil
}

// upgradeTiers raises tiers at once: the accrual that earns a tier's qualifying points grants it.
func (b *batchRun) upgradeTiers(ctx context.Context) error {
	p := b.tiers
	if p == nil || len(b.pr.qualifying) == 0 {
		return nil
	}
	var tiers []tally.CustomerTier
	var changes []tally.TierChange
	for _, id := range sortedKeys(b.pr.qualifying) {
		q := b.pr.qualifying[id]
		from := b.tierOf(id)
		to := p.TierOf(q)
		if rank(p, to) <= rank(p, from) {
			continue
		}
		i := b.pr.accrued[id]
		seq := b.txOf[i].Seq
		tiers = append(tiers, tally.CustomerTier{AccountID: id, Tier: to, Since: b.now, ReviewedThrough: b.pr.stored[id].ReviewedThrough})
		c := tally.TierChange{AccountID: id, From: from, To: to, At: b.now, Seq: seq,
			Reason: fmt.Sprintf("upgrade: %d qualifying points reach %s", q, to)}
		changes = append(changes, c)
		b.results[i].receipt.TierChange = &c
	}
	return setTiers(ctx, b.tx, tiers, changes) // with their tier.changed events
}

// TierReview is what one ReviewTiers run did.
type TierReview struct {
	PeriodEnd  time.Time `json:"period_end"`
	Reviewed   int       `json:"reviewed"`
	Downgraded int       `json:"downgraded"`
}

// reviewBatch is how many customers one review transaction takes.
const reviewBatch = 200

// ReviewTiers lowers, at the end of a period, the tiers that customers no longer qualify for: a tier
// is kept when the qualifying points of the window that ended at periodEnd, or of the window that ends
// now, reach it; otherwise the customer moves down to the highest tier either reaches. Customers who
// reached their tier at or after periodEnd are not reviewed for it. Every reviewed customer is marked
// reviewed through periodEnd, under the account's lock, so a review run again, or by several replicas at
// once, changes each customer once.
func (s *Service) ReviewTiers(ctx context.Context, periodEnd time.Time) (TierReview, error) {
	p := s.opts.Tiers
	if p == nil {
		return TierReview{}, tally.Errorf(tally.EINVALID, "the programme has no tiers")
	}
	periodEnd = tally.LedgerTime(periodEnd)
	now := tally.LedgerTime(s.opts.Clock())
	if periodEnd.After(now) {
		return TierReview{}, tally.Errorf(tally.EINVALID, "the period has not ended yet")
	}
	out := TierReview{PeriodEnd: periodEnd}
	after := ""
	for {
		var n, down int
		var last string
		err := s.store.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
			n, down, last = 0, 0, ""
			due, err := tx.TiersToReview(ctx, periodEnd, p.TierOf(0), after, reviewBatch)
			if err != nil || len(due) == 0 {
				return err
			}
			ids := make([]string, len(due))
			for k, t := range due {
				ids[k] = t.AccountID
			}
			last = ids[len(ids)-1]
			if _, err := tx.LockAccounts(ctx, ids); err != nil {
				return err
			}
			// Read again under the locks: a concurrent review or upgrade may have moved on.
			stored, err := tx.CustomerTiers(ctx, ids)
			if err != nil {
				return err
			}
			atEnd, err := tx.QualifyingPointsOf(ctx, ids, p.QualifyingSince(periodEnd), periodEnd)
			if err != nil {
				return err
			}
			current, err := tx.QualifyingPointsOf(ctx, ids, p.QualifyingSince(now), farFuture)
			if err != nil {
				return err
			}
			var tiers []tally.CustomerTier
			var changes []tally.TierChange
			for _, id := range ids {
				t, ok := stored[id]
				if !ok || !t.ReviewedThrough.Before(periodEnd) || !t.Since.Before(periodEnd) {
					continue
				}
				n++
				have, _ := p.Rank(t.Tier)
				keep, points := p.TierOf(atEnd[id]), atEnd[id]
				if r1, r2 := rank(p, keep), rank(p, p.TierOf(current[id])); r2 > r1 {
					keep, points = p.TierOf(current[id]), current[id]
				}
				if k := rank(p, keep); k < have {
					changes = append(changes, tally.TierChange{AccountID: id, From: t.Tier, To: keep, At: now,
						Reason: fmt.Sprintf("review of the period ending %s: %d qualifying points reach %s", periodEnd.Format(time.RFC3339), points, keep)})
					t.Tier, t.Since = keep, now
					down++
				}
				t.ReviewedThrough = periodEnd
				tiers = append(tiers, t)
			}
			return setTiers(ctx, tx, tiers, changes)
		})
		if err != nil {
			return out, err
		}
		out.Reviewed += n
		out.Downgraded += down
		if last == "" {
			return out, nil
		}
		after = last
	}
}

func rank(p tally.TierPolicy, tier string) int {
	r, _ := p.Rank(tier)
	return r
}

// BackfillTiers stores a tier for every customer account that has none: the tier its qualifying points
// reach now (base included, so that each account is looked at once), with the reason recorded when above
// base. It brings a ledger written before tiers were stored (when the tier followed the balance) to
// stored tiers; serve runs it at start. Safe to run again and from several replicas at once.
func (s *Service) BackfillTiers(ctx context.Context) (int, error) {
	p := s.opts.Tiers
	if p == nil {
		return 0, tally.Errorf(tally.EINVALID, "the programme has no tiers")
	}
	base, raised, after := p.TierOf(0), 0, ""
	for {
		var last string
		var n int
		err := s.store.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
			now := tally.LedgerTime(s.opts.Clock())
			last, n = "", 0
			ids, err := tx.AccountsWithoutTier(ctx, after, reviewBatch)
			if err != nil || len(ids) == 0 {
				return err
			}
			last = ids[len(ids)-1]
			if _, err := tx.LockAccounts(ctx, ids); err != nil {
				return err
			}
			stored, err := tx.CustomerTiers(ctx, ids) // an accrual may have raised one meanwhile
			if err != nil {
				return err
			}
			q, err := tx.QualifyingPointsOf(ctx, ids, p.QualifyingSince(now), farFuture)
			if err != nil {
				return err
			}
			var tiers []tally.CustomerTier
			var changes []tally.TierChange
			for _, id := range ids {
				if _, ok := stored[id]; ok {
					continue
				}
				tier := p.TierOf(q[id])
				tiers = append(tiers, tally.CustomerTier{AccountID: id, Tier: tier, Since: now})
				if tier != base {
					n++
					changes = append(changes, tally.TierChange{AccountID: id, From: base, To: tier, At: now,
						Reason: fmt.Sprintf("first stored tier: %d qualifying points reach %s", q[id], tier)})
				}
			}
			return setTiers(ctx, tx, tiers, changes)
		})
		if err != nil {
			return raised, err
		}
		raised += n
		if last == "" {
			return raised, nil
		}
		after = last
	}
}
