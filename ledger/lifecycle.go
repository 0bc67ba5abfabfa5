package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/tally-ledger/tally"
)

// ExpiryChannel is the reserved idempotency channel of the expiries the expiry job posts.
const ExpiryChannel = "expiry"

// Balance details: what a balance response shows beside the spendable balance.
type BalanceDetails struct {
	Account tally.Account
	// NextExpiry is the soonest expiry of the account's open lots; nil when none of them expires.
	NextExpiry *tally.LotExpiry
}

// BalanceDetails returns a customer's account and the next expiry of its points. ENOTFOUND when the
// customer has no account yet.
func (s *Service) BalanceDetails(ctx context.Context, account string) (BalanceDetails, error) {
	a, err := s.Balance(ctx, account)
	if err != nil {
		return BalanceDetails{}, err
	}
	d := BalanceDetails{Account: a}
	e, err := s.store.NextExpiry(ctx, account)
	switch tally.ErrorCode(err) {
	case "":
		d.NextExpiry = &e
	case tally.ENOTFOUND:
	default:
		return BalanceDetails{}, err
	}
	return d, nil
}

// Lots returns a customer's open lots, in the order debits consume them.
func (s *Service) Lots(ctx context.Context, account string) ([]tally.Lot, error) {
	if !tally.IsCustomerHash(account) {
		return nil, tally.Errorf(tally.EINVALID, "account must be a customer hash (64 lowercase hex digits)")
	}
	lots, err := s.store.AccountLots(ctx, account)
	if lots == nil && err == nil {
		lots = []tally.Lot{}
	}
	return lots, err
}

// Clawback reverses a credit (an accrual or a positive adjustment), as when the purchase or interaction
// that earned it is refunded: pending points are cancelled first, and the programme's return policy
// decides what happens to points already spent (EINSUFFICIENT when it forbids the clawback). r names
// the credit in ReversesSeq and needs a key, a reason and an actor. EINVALID when the transaction is
// not a credit; ENOTFOUND when it does not exist.
func (s *Service) Clawback(ctx context.Context, r Request) (Receipt, error) {
	if r.ReversesSeq <= 0 {
		return Receipt{}, tally.Errorf(tally.EINVALID, "a clawback must name the transaction it reverses")
	}
	if r.Reason == "" || r.Actor == "" {
		return Receipt{}, tally.Errorf(tally.EINVALID, "a clawback needs a reason and an actor")
	}
	t, err := s.store.Transaction(ctx, r.ReversesSeq)
	if err != nil {
		return Receipt{}, err
	}
	if t.Delta() <= 0 || t.Kind == tally.KindReversal {
		return Receipt{}, tally.Errorf(tally.EINVALID, "transaction %d is a %s, not a credit: a clawback reverses an accrual or a positive adjustment", t.Seq, t.Kind)
	}
	return s.Reverse(ctx, r)
}

// Activate makes a pending lot's points spendable now, whatever its PendingUntil; it writes no ledger
// transaction (the points were posted when earned) but records when the lot was activated. Activating
// an active lot changes nothing and returns it. ENOTFOUND when seq is no lot (EINVALID when seq is a
// transaction that credited nothing).
func (s *Service) Activate(ctx context.Context, seq int64) (tally.Lot, error) {
	if seq <= 0 {
		return tally.Lot{}, tally.Errorf(tally.EINVALID, "transaction number must be positive")
	}
	lot, err := s.store.Lot(ctx, seq)
	if tally.ErrorCode(err) == tally.ENOTFOUND {
		if _, terr := s.store.Transaction(ctx, seq); terr == nil {
			return tally.Lot{}, tally.Errorf(tally.EINVALID, "transaction %d credited no points: it has no lot to activate", seq)
		}
		return tally.Lot{}, tally.Errorf(tally.ENOTFOUND, "transaction %d does not exist", seq)
	}
	if err != nil {
		return tally.Lot{}, err
	}
	if !lot.Pending() {
		return lot, nil
	}
	done, err := s.activate(ctx, []tally.Lot{lot}, time.Time{})
	if err != nil {
		return tally.Lot{}, err
	}
	if l, ok := done[seq]; ok {
		return l, nil
	}
	return s.store.Lot(ctx, seq)
}

// activate activates the given lots that are still pending (and, when due is not zero, due by then) in
// one database transaction, and returns them as activated.
func (s *Service) activate(ctx context.Context, lots []tally.Lot, due time.Time) (map[int64]tally.Lot, error) {
	var out map[int64]tally.Lot
	err := s.store.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		out = map[int64]tally.Lot{}
		now := tally.LedgerTime(s.opts.Clock())
		var ids []string
		seqs := make([]int64, len(lots))
		for i, l := range lots {
			ids, seqs[i] = append(ids, l.AccountID), l.Seq
		}
		accounts, err := tx.LockAccounts(ctx, sortedUnique(ids))
		if err != nil {
			return err
		}
		current, err := tx.LotsBySeq(ctx, seqs) // read after the lock: the lots as they are now
		if err != nil {
			return err
		}
		sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
		var changed []tally.Lot
		var uses []tally.LotUse
		dirty := map[string]bool{}
		for _, seq := range seqs {
			l, ok := current[seq]
			if !ok || !l.Pending() || !due.IsZero() && l.PendingUntil.After(due) {
				continue
			}
			a, ok := accounts[l.AccountID]
			if !ok {
				continue
			}
			// An overdrawn account's newly spendable points settle the overdraft first.
			if settle := min(l.Remaining, max(0, -a.Posted())); settle > 0 {
				a.Pending -= l.Remaining
				l.Remaining -= settle
				uses = append(uses, tally.LotUse{DebitSeq: l.Seq, LotSeq: l.Seq, Points: settle})
			} else {
				a.Pending -= l.Remaining
			}
			l.PendingUntil, l.ActivatedAt = nil, &now
			accounts[l.AccountID] = a
			dirty[a.ID] = true
			changed = append(changed, l)
			out[seq] = l
		}
		var accts []tally.Account
		for _, id := range sortedKeys(dirty) {
			accts = append(accts, accounts[id])
		}
		if err := tx.UpdateAccounts(ctx, accts); err != nil {
			return err
		}
		if err := tx.UpdateLots(ctx, changed); err != nil {
			return err
		}
		return tx.InsertLotUses(ctx, uses)
	})
	return out, err
}

// ActivateDue activates every pending lot whose PendingUntil has come, in chunks of limit lots (one
// database transaction each), and returns how many it activated. Running it on several replicas at
// once is safe: each lot is re-read under its account's lock, and one that is active already is left.
func (s *Service) ActivateDue(ctx context.Context, limit int) (int64, error) {
	if limit <= 0 {
		limit = 500
	}
	now := tally.LedgerTime(s.opts.Clock())
	var n int64
	var after int64
	for {
		lots, err := s.store.DuePendingLots(ctx, now, after, limit)
		if err != nil || len(lots) == 0 {
			return n, err
		}
		done, err := s.activate(ctx, lots, now)
		if err != nil {
			return n, err
		}
		n += int64(len(done))
		after = lots[len(lots)-1].Seq
	}
}

// ExpiryReport is what one run of the expiry job did.
type ExpiryReport struct {
	Accounts     int64 `json:"accounts"`     // accounts with lapsed lots
	Transactions int64 `json:"transactions"` // expiry transactions this run posted (one per LotsPerExpiry lots of an account)
	Lots         int64 `json:"lots"`         // lapsed lots found
	Points       int64 `json:"points"`       // points this run expired
}

// ExpireOptions tune one run of the expiry job.
type ExpireOptions struct {
	// Accounts is how many accounts are read per page (default 256); Parallel how many expiries are in
	// flight at once (default 64), so that they share the ledger's group commits.
	Accounts, Parallel int
	// LotsInFlight bounds the lapsed lots of the expiries in flight at once (default 1,024; an account
	// with more goes alone), so that one group commit of expiries stays well within the ledger's batch
	// timeout and the writes of the live programme are not held behind it.
	LotsInFlight int
	// Rate bounds the lapsed lots the job starts expiring per second (0: DefaultExpiryRate; negative:
	// unpaced), so that the live programme's writes keep their rate while a large backlog expires: the
	// job's work per lot is taken from the same CPU and the same batch workers.
	Rate int
	// LotsPerExpiry bounds the lots of one expiry transaction (default 100): an account with more
	// lapsed lots has them expired in several, so that no commit of the job holds a batch worker, and
	// the live writes queued on it, for long.
	LotsPerExpiry int
	// Progress, when set, is told of every page.
	Progress func(ExpiryReport)
}

// DefaultExpiryRate is the expiry job's pace when none is given, in lots per second: a million lapsed
// lots take about 17 minutes (see BENCHMARKS.md, "Points lifecycle: pacing the expiry job"). Lapsed
// points are not spendable meanwhile (see Account.Lapsed), so a slower job costs no correctness.
const DefaultExpiryRate = 1000

// ExpireLapsed is the expiry job: for every account with lots that have lapsed by now, it posts one
// expiry transaction (to system:expired, on the reserved channel "expiry") of what remains of them. Each
// expiry is decided under the account's lock from the lots as they are then, so it takes exactly the
// lapsed remainders and nothing twice; its idempotency key is derived from the account, its
// balance_version and the lapsed lots, so that replicas running the job at once post it once, and a
// retried run replays it.
func (s *Service) ExpireLapsed(ctx context.Context, opts ExpireOptions) (ExpiryReport, error) {
	if opts.Accounts <= 0 {
		opts.Accounts = 256
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 64
	}
	if opts.LotsInFlight <= 0 {
		opts.LotsInFlight = 1024
	}
	if opts.Rate == 0 {
		opts.Rate = DefaultExpiryRate
	}
	if opts.LotsPerExpiry <= 0 {
		opts.LotsPerExpiry = 100
	}
	now := tally.LedgerTime(s.opts.Clock())
	var rep ExpiryReport
	after := ""
	pace := pacer{start: time.Now(), rate: opts.Rate}
	for {
		page, err := s.store.LapsedLots(ctx, now, after, opts.Accounts)
		if err != nil || len(page) == 0 {
			return rep, err
		}
		after = page[len(page)-1].AccountID
		var (
			mu       sync.Mutex
			wg       sync.WaitGroup
			firstErr error
			budget   = newLotBudget(opts.Parallel, opts.LotsInFlight)
		)
		for _, whole := range page {
			rep.Accounts++
			rep.Lots += int64(len(whole.Lots))
			for _, acct := range expiryChunks(whole, opts.LotsPerExpiry) {
				if err := pace.wait(ctx, len(acct.Lots)); err != nil {
					wg.Wait()
					return rep, err
				}
				weight := budget.take(len(acct.Lots))
				wg.Add(1)
				go func(acct tally.LapsedLots) {
					defer func() { budget.give(weight); wg.Done() }()
					rc, err := s.expireOne(ctx, acct, len(acct.Lots) < len(whole.Lots))
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err != nil && tally.ErrorCode(err) != tally.ECLOSED:
						if firstErr == nil {
							firstErr = err
						}
					case err == nil && rc.Transaction.Seq != 0 && !rc.Replayed:
						rep.Transactions++
						rep.Points += rc.Transaction.Amount
					}
				}(acct)
			}
		}
		wg.Wait()
		if firstErr != nil {
			return rep, firstErr
		}
		if opts.Progress != nil {
			opts.Progress(rep)
		}
	}
}

// expireOne posts the expiry of one account's lapsed lots, trying again (under the same key, so at most
// once) while the store is unavailable, a few times.
func (s *Service) expireOne(ctx context.Context, acct tally.LapsedLots, part bool) (Receipt, error) {
	r := Request{Kind: tally.KindExpiry, Channel: ExpiryChannel, Internal: true, Key: expiryKey(acct),
		Account: acct.AccountID, Lapsed: true, Reason: "points expired", Actor: "tally expiry job"}
	if part {
		for _, l := range acct.Lots {
			r.LapsedLots = append(r.LapsedLots, l.Seq)
		}
	}
	var (
		rc  Receipt
		err error
	)
	for attempt := range 4 {
		if rc, err = s.Write(ctx, r); !isTransient(err) || ctx.Err() != nil {
			return rc, err
		}
		select {
		case <-ctx.Done():
			return rc, err
		case <-time.After(time.Duration(attempt+1) * 250 * time.Millisecond):
		}
	}
	return rc, err
}

// pacer spaces the starts of expiries so that lot n starts no earlier than n/rate seconds after the
// job did. A job that fell behind (slow commits) is not made to wait, and does not catch up faster
// than its lots in flight allow.
type pacer struct {
	start time.Time
	rate  int // lots per second; <= 0: unpaced
	lots  int64
}

// wait returns when the next n lots may start, or with ctx's error.
func (p *pacer) wait(ctx context.Context, n int) error {
	if p.rate <= 0 {
		return nil
	}
	due := p.start.Add(time.Duration(p.lots) * time.Second / time.Duration(p.rate))
	p.lots += int64(n)
	d := time.Until(due)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// expiryChunks splits an account's lapsed lots (in seq order) into parts of at most n lots, each
// keyed by the same reading's balance_version and its own lots: replicas that read the same state post
// each part once, and a part whose lots another reading's expiry took finds nothing left to take.
func expiryChunks(l tally.LapsedLots, n int) []tally.LapsedLots {
	if len(l.Lots) <= n {
		return []tally.LapsedLots{l}
	}
	var out []tally.LapsedLots
	for lo := 0; lo < len(l.Lots); lo += n {
		out = append(out, tally.LapsedLots{AccountID: l.AccountID, BalanceVersion: l.BalanceVersion, Lots: l.Lots[lo:min(lo+n, len(l.Lots))]})
	}
	return out
}

// lotBudget admits expiries while both their number and their lots stay within bounds; one larger than
// the whole budget is admitted alone.
type lotBudget struct {
	mu         sync.Mutex
	cond       *sync.Cond
	n, lots    int
	maxN, maxL int
}

func newLotBudget(maxN, maxLots int) *lotBudget {
	b := &lotBudget{maxN: maxN, maxL: maxLots}
	b.cond = sync.NewCond(&b.mu)
	return b
}

func (b *lotBudget) take(lots int) int {
	w := min(lots, b.maxL)
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.n >= b.maxN || b.n > 0 && b.lots+w > b.maxL {
		b.cond.Wait()
	}
	b.n++
	b.lots += w
	return w
}

func (b *lotBudget) give(w int) {
	b.mu.Lock()
	b.n--
	b.lots -= w
	b.mu.Unlock()
	b.cond.Broadcast()
}

// expiryKey names the expiry of an account's lapsed lots as one reading found them.
func expiryKey(l tally.LapsedLots) string {
	h := sha256.New()
	h.Write([]byte(l.AccountID + "\n" + strconv.FormatInt(l.BalanceVersion, 10) + "\n"))
	for _, lot := range l.Lots {
		h.Write([]byte(strconv.FormatInt(lot.Seq, 10) + ":" + strconv.FormatInt(lot.Remaining, 10) + "\n"))
	}
	return "lapsed-" + hex.EncodeToString(h.Sum(nil))[:40]
}
