package ledger

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/tally-ledger/tally"
)

// op is one queued write and the channel its caller waits on.
type op struct {
	req     Request
	reqHash string
	done    chan result
}

type result struct {
	receipt Receipt
	err     error
	// replayed marks a remembered answer given again, refusals included (a receipt also says it in
	// Replayed): metrics count replays apart from decisions.
	replayed bool
}

// work takes writes off the queue and commits them in batches: whatever is waiting when a batch starts
// rides along, so under load many writes share one fsync, and when idle a write goes alone at once.
func (s *Service) work(queue chan *op) {
	defer s.wg.Done()
	for first := range queue {
		batch := []*op{first}
	fill:
		for len(batch) < s.opts.MaxBatch {
			select {
			case o, ok := <-queue:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		s.commit(batch)
	}
}

// commit applies a batch in one database transaction and answers every caller after it ends.
func (s *Service) commit(batch []*op) {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.BatchTimeout)
	results, rerun, err := s.apply(ctx, batch)
	cancel()
	if err != nil {
		if len(batch) > 1 && !isTransient(err) {
			// Something in the batch broke the database transaction although every request was validated;
			// apply them one by one so that only the culprit fails.
			for _, o := range batch {
				s.commit([]*op{o})
			}
			return
		}
		if isTransient(err) && tally.ErrorCode(err) != tally.EUNAVAILABLE {
			err = tally.Unavailable(err, "the ledger store")
		}
		if len(batch) == 1 {
			err = s.explainConflict(batch[0], err)
		}
		for _, o := range batch {
			o.done <- result{err: err}
		}
		return
	}
	if s.opts.ObserveBatch != nil {
		s.opts.ObserveBatch(len(batch))
	}
	var again []*op
	for i, o := range batch {
		if rerun[i] {
			again = append(again, o)
			continue
		}
		o.done <- results[i]
	}
	if len(again) > 0 {
		// Writes whose key this batch left free (its first request was refused without being remembered)
		// are decided on their own, now that the batch is committed. Each round answers at least the
		// first of them, so this ends.
		s.commit(again)
	}
}

// apply runs the batch inside store.Update. It may run more than once (the store retries serialization
// failures), so it builds its answers afresh on every run. rerun marks the ops left to a later batch.
func (s *Service) apply(ctx context.Context, batch []*op) (results []result, rerun []bool, err error) {
	chain, err := s.loadChain(ctx)
	if err != nil {
		return nil, nil, err
	}
	err = s.store.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
		b := &batchRun{tx: tx, chain: chain, tiers: s.opts.Tiers, earner: s.opts.Earner, ops: batch, now: tally.LedgerTime(s.opts.Clock()), results: make([]result, len(batch)),
			rerun: make([]bool, len(batch)), policy: s.opts.Lots}
		if err := b.run(ctx); err != nil {
			return err
		}
		results, rerun = b.results, b.rerun
		return nil
	})
	return results, rerun, err
}

// batchRun is one attempt at one batch.
type batchRun struct {
	tx      tally.WriteTx
	chain   *tally.Chain
	ops     []*op
	now     time.Time
	results []result
	rerun   []bool // ops not decided in this batch: commit them again in another
	// eventsWanted answers whether any webhook subscription is active (asked with the account locks).
	eventsWanted func() (bool, error)

	leader   map[tally.OutcomeKey]int           // the first op of each key
	stored   map[tally.OutcomeKey]tally.Outcome // outcomes that existed before this batch
	fresh    []int                              // ops to decide now, in batch order
	accounts map[string]*tally.Account
	targets  map[int64]tally.Transaction // transactions being reversed
	reversed map[int64]int64             // reversed seq -> its reversal
	txs      []*tally.Transaction        // new transactions, in batch order
	txOf     map[int]*tally.Transaction  // op index -> its transaction
	dirty    map[string]bool

	tiers        tally.TierPolicy
	policy       tally.LotPolicy
	lots         lotRun
	earner       Earner
	pr           programmeRun
	rw           rewardRun
	redemptionTx []*tally.Transaction // the transaction of each of rw.redemptions
}

func (b *batchRun) run(ctx context.Context) error {
	if err := b.claim(ctx); err != nil {
		return err
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	for _, i := range b.fresh {
		b.decide(i)
	}
	if err := b.qualify(ctx); err != nil {
		return err
	}
	if err := b.write(ctx); err != nil {
		return err
	}
	b.answerFollowers()
	return nil
}

// claim groups the batch by idempotency key and claims every key in the store. Keys answered before
// are replayed (or refused, when reused for another request); the rest are fresh.
func (b *batchRun) claim(ctx context.Context) error {
	b.leader = make(map[tally.OutcomeKey]int)
	var claims []tally.Outcome
	for i, o := range b.ops {
		k := o.req.outcomeKey()
		if _, seen := b.leader[k]; seen {
			continue
		}
		b.leader[k] = i
		claims = append(claims, tally.Outcome{OutcomeKey: k, RequestHash: o.reqHash, CreatedAt: b.now})
	}
	sort.Slice(claims, func(i, j int) bool { return keyLess(claims[i].OutcomeKey, claims[j].OutcomeKey) })
	existing, err := b.tx.ClaimOutcomes(ctx, claims)
	if err != nil {
		return err
	}
	b.stored = make(map[tally.OutcomeKey]tally.Outcome, len(existing))
	for _, e := range existing {
		b.stored[e.OutcomeKey] = e
	}
	for i, o := range b.ops {
		k := o.req.outcomeKey()
		if b.leader[k] != i {
			continue
		}
		e, ok := b.stored[k]
		switch {
		case !ok:
			b.fresh = append(b.fresh, i)
		case e.RequestHash != o.reqHash:
			b.results[i] = result{err: errKeyReused(k)}
		default:
			b.results[i] = replay(e)
		}
	}
	return nil
}

func errKeyReused(k tally.OutcomeKey) error {
	return tally.Errorf(tally.EIDEMPOTENCY, "idempotency key %q was already used with a different request", k.Key)
}

func keyLess(a, b tally.OutcomeKey) bool {
	if a.Channel != b.Channel {
		return a.Channel < b.Channel
	}
	return a.Key < b.Key
}

// lock finds the accounts the fresh ops touch, creates customer accounts that credits need, and locks
// them in id order.
func (b *batchRun) lock(ctx context.Context) error {
	b.targets = map[int64]tally.Transaction{}
	var targetSeqs []int64
	for _, i := range b.fresh {
		if r := b.ops[i].req; r.Kind == tally.KindReversal {
			targetSeqs = append(targetSeqs, r.ReversesSeq)
		}
	}
	if len(targetSeqs) > 0 {
		t, err := b.tx.Transactions(ctx, targetSeqs)
		if err != nil {
			return err
		}
		b.targets = t
	}
	var lockIDs, createIDs []string
	for _, i := range b.fresh {
		r := b.ops[i].req
		if r.Kind == KindNone {
			continue
		}
		id := r.Account
		if r.Kind == tally.KindReversal {
			t, ok := b.targets[r.ReversesSeq]
			if !ok {
				continue
			}
			id = t.AccountID
		}
		lockIDs = append(lockIDs, id)
		if r.Kind == tally.KindAccrual || r.Kind == tally.KindAdjustment && r.Amount > 0 {
			createIDs = append(createIDs, id)
		}
	}
	lockIDs, createIDs = sortedUnique(lockIDs), sortedUnique(createIDs)
	if len(lockIDs) > 0 {
		b.eventsWanted = b.tx.EventsWanted(ctx) // answered with the lock's round trip
	}
	if len(createIDs) > 0 {
		if err := b.tx.EnsureAccounts(ctx, createIDs, b.now); err != nil {
			return err
		}
	}
	b.accounts = map[string]*tally.Account{}
	if len(lockIDs) > 0 {
		locked, err := b.tx.LockAccounts(ctx, lockIDs)
		if err != nil {
			return err
		}
		for id, a := range locked {
			a := a
			b.accounts[id] = &a
		}
	}
	b.reversed = map[int64]int64{}
	if len(targetSeqs) > 0 {
		// Read after the lock: a reversal of the same transaction committed meanwhile is seen here.
		r, err := b.tx.ReversedBy(ctx, targetSeqs)
		if err != nil {
			return err
		}
		b.reversed = r
	}
	if err := b.loadLots(ctx); err != nil {
		return err
	}
	if err := b.prepareProgramme(ctx); err != nil {
		return err
	}
	return b.lockRewards(ctx, targetSeqs)
}

func sortedUnique(ids []string) []string {
	sort.Strings(ids)
	out := ids[:0]
	for i, id := range ids {
		if i == 0 || id != ids[i-1] {
			out = append(out, id)
		}
	}
	return out
}

// decide applies the ledger's rules to one fresh op against the locked balances, and on success
// records its transaction and moves the in-memory balance.
func (b *batchRun) decide(i int) {
	r := b.ops[i].req
	if r.Kind == KindNone {
		b.results[i] = result{}
		return
	}
	fail := func(code tally.Code, format string, args ...any) {
		b.results[i] = result{err: tally.Errorf(code, format, args...)}
	}
	refuse := func(err error) { b.results[i] = result{err: err} }
	accountID := r.Account
	var target tally.Transaction
	if r.Kind == tally.KindReversal {
		t, ok := b.targets[r.ReversesSeq]
		if !ok {
			fail(tally.ENOTFOUND, "transaction %d does not exist", r.ReversesSeq)
			return
		}
		target, accountID = t, t.AccountID
	}
	a, ok := b.accounts[accountID]
	if !ok && r.RewardID != "" {
		// A customer who never earned is asked for the reward like anyone, with nothing to spend: the
		// answer is about the reward, or insufficient points, not a missing account.
		a, ok = &tally.Account{ID: accountID, Status: tally.StatusActive}, true
	}
	if !ok {
		fail(tally.ENOTFOUND, "no account for this customer")
		return
	}
	if r.ExpectedVersion != nil && *r.ExpectedVersion != a.BalanceVersion {
		fail(tally.EVERSION, "balance_version is %d, not %d", a.BalanceVersion, *r.ExpectedVersion)
		return
	}
	switch {
	case a.Status == tally.StatusClosed:
		fail(tally.ECLOSED, "the account is closed")
		return
	case a.Status == tally.StatusFrozen && r.Kind != tally.KindAdjustment && r.Kind != tally.KindReversal && !r.Lapsed:
		fail(tally.EFROZEN, "the account is frozen")
		return
	}
	var postings []tally.Posting
	amount := r.Amount
	var earned *Award
	switch r.Kind {
	case tally.KindAccrual:
		if r.Earn != nil {
			aw, ok := b.award(i, a.ID)
			if !ok {
				return
			}
			if aw.Points <= 0 { // nothing earned (a cap reached, a window closed): remembered as ignored
				b.results[i] = result{}
				return
			}
			earned, amount, r.Reason = &aw, aw.Points, aw.Reason
			if aw.PendingUntil != nil && r.PendingUntil == nil {
				r.PendingUntil = aw.PendingUntil // a paying rule's return window
			}
		}
		postings = pair(a.ID, amount, tally.AccountIssuance)
	case tally.KindRedemption:
		if r.RewardID != "" {
			cost, err := b.rewardPrice(r, a)
			if err != nil {
				refuse(err)
				return
			}
			amount = cost
		}
		postings = pair(a.ID, -amount, tally.AccountRedemptions)
	case tally.KindExpiry:
		postings = pair(a.ID, -amount, tally.AccountExpired)
	case tally.KindAdjustment:
		postings = pair(a.ID, amount, tally.AccountAdjustments)
	case tally.KindReversal:
		if target.Kind == tally.KindReversal {
			fail(tally.EINVALID, "transaction %d is a reversal and cannot be reversed", target.Seq)
			return
		}
		if by, done := b.reversed[target.Seq]; done {
			if by < 0 { // reversed earlier in this batch, before its number was known
				fail(tally.EALREADY, "transaction %d has already been reversed", target.Seq)
			} else {
				fail(tally.EALREADY, "transaction %d was reversed by transaction %d", target.Seq, by)
			}
			return
		}
		if err := b.reversalBlocked(target, r); err != nil {
			refuse(err)
			return
		}
		for _, p := range target.Postings {
			postings = append(postings, tally.Posting{AccountID: p.AccountID, Amount: -p.Amount})
		}
		amount = target.Amount
	}
	delta := postings[0].Amount
	if r.Kind == tally.KindReversal {
		delta = -target.Delta()
	}
	// The lots decide whether the account can give what a debit takes (and what a lapsed expiry takes).
	plan, err := b.planLots(r, a, target, delta, &amount)
	if err != nil {
		refuse(err)
		return
	}
	if r.Lapsed {
		if amount == 0 {
			b.results[i] = result{receipt: Receipt{Balance: a.Spendable(), Pending: a.Pending, Lapsed: a.Lapsed, BalanceVersion: a.BalanceVersion}}
			return
		}
		postings, delta = pair(a.ID, -amount, tally.AccountExpired), -amount
	}
	if a.Balance+delta > tally.MaxAmount {
		fail(tally.EINVALID, "the balance would exceed %d points", tally.MaxAmount)
		return
	}
	t := &tally.Transaction{
		Kind: r.Kind, AccountID: a.ID, Channel: r.Channel, IdempotencyKey: r.Key, RequestHash: b.ops[i].reqHash,
		Amount: amount, Reason: r.Reason, Actor: r.Actor, Metadata: r.Metadata, ReversesSeq: r.ReversesSeq,
		CreatedAt: b.now, Postings: postings,
	}
	if r.Kind == tally.KindReversal {
		b.reversed[target.Seq] = -1 // reversed within this batch; the seq is not known yet
		b.refundReward(target)
	}
	a.Balance += delta
	a.BalanceVersion++
	if r.Kind == tally.KindAccrual {
		a.QualifyingBound += amount // qualifying points count accruals (qualify)
	}
	b.applyLots(t, a, plan)
	b.txs = append(b.txs, t)
	if b.txOf == nil {
		b.txOf = map[int]*tally.Transaction{}
		b.dirty = map[string]bool{}
	}
	b.txOf[i] = t
	b.dirty[a.ID] = true
	b.results[i] = result{receipt: Receipt{Balance: a.Spendable(), Pending: a.Pending, Lapsed: a.Lapsed, BalanceVersion: a.BalanceVersion}}
	if r.RewardID != "" {
		b.takeReward(i, t)
	}
	if r.Kind == tally.KindAccrual {
		b.granted(i, a.ID, earned)
	}
}

// pair is the two postings of a transfer between a customer and a system account.
func pair(customer string, amount int64, system string) []tally.Posting {
	return []tally.Posting{{AccountID: customer, Amount: amount}, {AccountID: system, Amount: -amount}}
}

// write numbers and chains the new transactions, writes every row, and records outcomes.
func (b *batchRun) write(ctx context.Context) error {
	if len(b.txs) > 0 {
		seqs, err := b.tx.NextSeqs(ctx, len(b.txs))
		if err != nil {
			return err
		}
		// Hash in batch order: an account's transactions in this batch chain one after the other.
		head := map[string]string{}
		for id, a := range b.accounts {
			head[id] = a.LastTxHash
		}
		system := map[string]int64{}
		for n, t := range b.txs {
			t.Seq = seqs[n]
			h, err := b.chain.Hash(head[t.AccountID], t)
			if err != nil {
				return err
			}
			t.Hash, head[t.AccountID] = h, h
			for _, p := range t.Postings {
				if p.AccountID != t.AccountID {
					system[p.AccountID] += p.Amount
				}
			}
		}
		rows := make([]tally.Transaction, len(b.txs))
		for n, t := range b.txs {
			rows[n] = *t
		}
		if err := b.tx.InsertTransactions(ctx, rows); err != nil {
			return err
		}
		if err := b.writeLots(ctx); err != nil {
			return err
		}
		var accts []tally.Account
		for id := range b.dirty {
			a := b.accounts[id]
			a.LastTxHash = head[id]
			accts = append(accts, *a)
		}
		sort.Slice(accts, func(i, j int) bool { return accts[i].ID < accts[j].ID })
		if err := b.tx.UpdateAccounts(ctx, accts); err != nil {
			return err
		}
		if err := b.tx.AddSystemBalances(ctx, systemDeltas(system)); err != nil {
			return err
		}
		if err := b.writeRewards(ctx); err != nil {
			return err
		}
		if err := b.writeProgramme(ctx); err != nil {
			return err
		}
		if err := b.writeEvents(ctx); err != nil {
			return err
		}
	}
	return b.recordOutcomes(ctx)
}

// systemDeltas spreads the batch's net change of each system account onto one random shard, so that
// concurrent batches rarely wait on each other for a system account.
func systemDeltas(sum map[string]int64) []tally.SystemDelta {
	var out []tally.SystemDelta
	for id, d := range sum {
		if d != 0 {
			out = append(out, tally.SystemDelta{AccountID: id, Shard: rand.IntN(tally.SystemShards), Delta: d})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AccountID < out[j].AccountID })
	return out
}

// recordOutcomes stores the answer of every fresh op whose answer is to be remembered, and releases the
// claims of the others.
func (b *batchRun) recordOutcomes(ctx context.Context) error {
	var save []tally.Outcome
	var release []tally.OutcomeKey
	for _, i := range b.fresh {
		o, res := b.ops[i], &b.results[i]
		k := o.req.outcomeKey()
		if res.err == nil {
			var seq int64
			if t := b.txOf[i]; t != nil {
				res.receipt.Transaction = *t
				seq = t.Seq
			}
			body, err := json.Marshal(res.receipt)
			if err != nil {
				return err
			}
			save = append(save, tally.Outcome{OutcomeKey: k, RequestHash: o.reqHash, TxSeq: seq, Response: body, CreatedAt: b.now})
			continue
		}
		code := tally.ErrorCode(res.err)
		if !code.Remembered() {
			release = append(release, k)
			continue
		}
		body, err := json.Marshal(failure{Code: code, Message: tally.ErrorMessage(res.err), Details: errorDetails(res.err)})
		if err != nil {
			return err
		}
		save = append(save, tally.Outcome{OutcomeKey: k, RequestHash: o.reqHash, Code: code, Response: body, CreatedAt: b.now})
	}
	sort.Slice(save, func(i, j int) bool { return keyLess(save[i].OutcomeKey, save[j].OutcomeKey) })
	sort.Slice(release, func(i, j int) bool { return keyLess(release[i], release[j]) })
	if len(save) > 0 {
		if err := b.tx.SaveOutcomes(ctx, save); err != nil {
			return err
		}
	}
	if len(release) > 0 {
		return b.tx.ReleaseClaims(ctx, release)
	}
	return nil
}

// answerFollowers answers every later op of a key in the batch by what the key now holds: the outcome
// stored before the batch, else the one just decided for the key's first op. A follower is a replay
// when it asks for the same as the request that outcome answered, and a reused key otherwise; never is
// it compared with a first op that was itself refused as a reused key. When the first op's answer is
// not remembered (a stale balance_version), the key is still free: a follower asking the same at the
// same version gets the same answer, any other is left to a later batch.
func (b *batchRun) answerFollowers() {
	for i, o := range b.ops {
		k := o.req.outcomeKey()
		l := b.leader[k]
		if l == i {
			continue
		}
		if e, ok := b.stored[k]; ok {
			if o.reqHash != e.RequestHash {
				b.results[i] = result{err: errKeyReused(k)}
			} else {
				b.results[i] = replay(e)
			}
			continue
		}
		res := b.results[l]
		if res.err != nil && !tally.ErrorCode(res.err).Remembered() {
			if o.reqHash != b.ops[l].reqHash || !sameVersion(o.req.ExpectedVersion, b.ops[l].req.ExpectedVersion) {
				b.rerun[i] = true
				continue
			}
			b.results[i] = res
			continue
		}
		if o.reqHash != b.ops[l].reqHash {
			b.results[i] = result{err: errKeyReused(k)}
			continue
		}
		if res.err == nil {
			res.receipt.Replayed = true
		}
		res.replayed = true
		b.results[i] = res
	}
}

func sameVersion(a, b *int64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
