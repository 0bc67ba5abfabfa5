package ledger

import (
	"context"
	"fmt"
	"math"
	"sort"

	"github.com/tally-ledger/tally"
)

// Breach is the first inconsistency Verify found: the account and, where one is to blame, the
// transaction and the checkpoint whose promise is broken.
type Breach struct {
	AccountID  string
	Seq        int64
	Problem    string
	Checkpoint int64 // 0 when no checkpoint is involved
}

func (b *Breach) Error() string {
	where := "account " + b.AccountID
	if b.Seq != 0 {
		where += fmt.Sprintf(", transaction %d", b.Seq)
	}
	if b.Checkpoint != 0 {
		where += fmt.Sprintf(", checkpoint %d", b.Checkpoint)
	}
	return where + ": " + b.Problem
}

// VerifyReport counts what Verify checked.
type VerifyReport struct {
	Accounts     int64 `json:"accounts"`
	Transactions int64 `json:"transactions"`
	Postings     int64 `json:"postings"`
	// Sealed is false for a ledger that no Tally with a ledger key has written: all its hashes are v1.
	Sealed    bool  `json:"sealed"`
	V1Through int64 `json:"v1_through"` // transactions up to this number carry unkeyed v1 hashes
	// Checkpoints is how many signed checkpoints were proven against the ledger; LastCheckpoint the newest.
	Checkpoints    int   `json:"checkpoints"`
	LastCheckpoint int64 `json:"last_checkpoint,omitempty"`
	// Lots is how many points lots were checked against their accounts' balances.
	Lots int64 `json:"lots"`
	// ErasedRoots is how many of those checkpoints' roots were not recomputed because an erasure, taken
	// after them, re-keyed an account they covered (see tally.Erasure); their heads were still checked.
	ErasedRoots int `json:"erased_roots,omitempty"`
	// Erasures is how many erasure records were found, each sealed by the ledger key.
	Erasures int `json:"erasures,omitempty"`
}

// VerifyOptions are what Verify checks the ledger against.
type VerifyOptions struct {
	// Key is the ledger key: it verifies the keyed chain hashes, the chain seal and the checkpoints.
	Key *tally.LedgerKey
	// Checkpoints, when given, are signed checkpoints kept outside the database (tally checkpoint, or
	// serve's checkpoint file). Verify proves that the ledger still holds everything each one covered.
	Checkpoints []tally.Checkpoint
	// Progress, when set, is called as transactions are read.
	Progress func(done, total int64)
	// AllowUnsealed accepts a ledger that holds transactions but no chain seal, checking every hash as
	// unkeyed (v1): right for a ledger no Tally with a ledger key has written yet, before it is sealed.
	// Without it such a ledger is a breach, since removing the seal is how chains recomputed without
	// the key would be passed off.
	AllowUnsealed bool
}

// Verify audits the whole ledger offline: it recomputes every account's hash chain (keyed by the ledger
// key past the seal), checks that every transaction sums to zero, that sequence numbers are unique and
// increase along each chain, that each account's balance and version match its postings and
// transactions, and that all balances sum to zero. With checkpoints it also proves that the ledger
// still holds every account's head as each checkpoint recorded it: that nothing a checkpoint covered
// was deleted, rolled back or rewritten since. It returns a *Breach naming the first problem.
func Verify(ctx context.Context, a tally.Auditor, opts VerifyOptions) (VerifyReport, error) {
	var rep VerifyReport
	if opts.Key == nil {
		return rep, tally.Errorf(tally.EINVALID, "verify needs the ledger key")
	}
	total, err := a.CountTransactions(ctx)
	if err != nil {
		return rep, err
	}
	chainer, err := verifyingChain(ctx, a, opts.Key, &rep)
	if err != nil {
		return rep, err
	}
	// A missing seal is reported last, so that a checkpoint can first name the account it gives away.
	var unsealed error
	if !rep.Sealed && total > 0 && !opts.AllowUnsealed {
		unsealed = &Breach{AccountID: "(ledger)", Problem: fmt.Sprintf(
			"the ledger holds %d transactions but no chain seal: the seal was removed, or no Tally with a ledger key has written this ledger yet (then check it with --allow-unsealed, and seal it with 'tally migrate --seal-existing')", total)}
	}
	heads, err := recordedHeads(ctx, a, opts, &rep)
	if err != nil {
		return rep, err
	}
	chains := map[string]*chain{}
	sums := map[string]int64{}
	seqs := make([]int64, 0, total)
	var credits creditIndex
	err = a.ScanTransactions(ctx, func(t tally.Transaction) error {
		rep.Transactions++
		c := chains[t.AccountID]
		if c == nil {
			c = &chain{}
			chains[t.AccountID] = c
		}
		if t.Seq <= c.last {
			return &Breach{AccountID: t.AccountID, Seq: t.Seq, Problem: fmt.Sprintf("sequence number does not increase (follows %d)", c.last)}
		}
		if !t.Kind.Valid() {
			return &Breach{AccountID: t.AccountID, Seq: t.Seq, Problem: fmt.Sprintf("unknown kind %q", t.Kind)}
		}
		if len(t.Postings) < 2 {
			return &Breach{AccountID: t.AccountID, Seq: t.Seq, Problem: fmt.Sprintf("has %d postings, needs at least 2", len(t.Postings))}
		}
		var sum int64
		for _, p := range t.Postings {
			sum += p.Amount
			sums[p.AccountID] += p.Amount
			rep.Postings++
		}
		if sum != 0 {
			return &Breach{AccountID: t.AccountID, Seq: t.Seq, Problem: fmt.Sprintf("postings sum to %d, not 0", sum)}
		}
		h, err := chainer.Hash(c.head, &t)
		if err != nil || h != t.Hash {
			return &Breach{AccountID: t.AccountID, Seq: t.Seq, Problem: "hash does not match the transaction and the chain before it (keyed with the ledger key)"}
		}
		c.head, c.last = h, t.Seq
		c.count++
		if t.Delta() > 0 {
			credits.add(t.Seq, c)
		}
		// A customer's postings all come from its own transactions, read in order: sums is its running
		// balance here.
		if err := heads.check(t.AccountID, c.count, h, sums[t.AccountID], t.Seq); err != nil {
			return err
		}
		seqs = append(seqs, t.Seq)
		if opts.Progress != nil && rep.Transactions%10000 == 0 {
			opts.Progress(rep.Transactions, total)
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	if opts.Progress != nil {
		opts.Progress(rep.Transactions, total)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for i := 1; i < len(seqs); i++ {
		if seqs[i] == seqs[i-1] {
			return rep, &Breach{AccountID: "(ledger)", Seq: seqs[i], Problem: "sequence number is used twice"}
		}
	}
	if err := heads.checkCovered(chains); err != nil {
		return rep, err
	}
	credits.sort()
	lots, err := sumLots(ctx, a, &rep, func(l tally.Lot) bool { return credits.of(l.Seq) == chains[l.AccountID] })
	if err != nil {
		return rep, err
	}
	var total0 int64
	seen := map[string]bool{}
	err = a.ScanAccounts(ctx, func(acct tally.Account) error {
		rep.Accounts++
		seen[acct.ID] = true
		total0 += acct.Balance
		c := chains[acct.ID]
		if c == nil {
			c = &chain{}
		}
		if acct.Balance != sums[acct.ID] {
			return &Breach{AccountID: acct.ID, Seq: c.last, Problem: fmt.Sprintf("balance %d differs from its postings' sum %d", acct.Balance, sums[acct.ID])}
		}
		if tally.IsSystemAccount(acct.ID) {
			return nil
		}
		if acct.LastTxHash != c.head {
			return &Breach{AccountID: acct.ID, Seq: c.last, Problem: "last_tx_hash is not the head of its chain"}
		}
		if acct.BalanceVersion != c.count {
			return &Breach{AccountID: acct.ID, Seq: c.last, Problem: fmt.Sprintf("balance_version %d differs from its %d transactions", acct.BalanceVersion, c.count)}
		}
		return lots.check(acct, c.last)
	})
	if err != nil {
		return rep, err
	}
	for _, id := range sortedKeys(chains) {
		if !seen[id] {
			return rep, &Breach{AccountID: id, Seq: chains[id].last, Problem: "transactions name an account that does not exist"}
		}
	}
	for _, id := range sortedKeys(sums) {
		if !seen[id] {
			return rep, &Breach{AccountID: id, Seq: chainLast(chains, id), Problem: "postings name an account that does not exist"}
		}
	}
	if err := heads.checkAccountsExist(seen); err != nil {
		return rep, err
	}
	if total0 != 0 {
		return rep, &Breach{AccountID: "(ledger)", Problem: fmt.Sprintf("balances over all accounts sum to %d, not 0", total0)}
	}
	if err := checkQualifyingBounds(ctx, a, chains); err != nil {
		return rep, err
	}
	if err := checkAccrualRules(ctx, a); err != nil {
		return rep, err
	}
	return rep, unsealed
}

// lotSums are the remainders of each customer account's lots.
type lotSums map[string]*struct{ pending, active int64 }

// sumLots reads every lot, checking each on its own: credited is whether the lot's seq is a transaction
// that credited the lot's account.
func sumLots(ctx context.Context, a tally.Auditor, rep *VerifyReport, credited func(tally.Lot) bool) (lotSums, error) {
	sums := lotSums{}
	err := a.ScanLots(ctx, func(l tally.Lot) error {
		rep.Lots++
		if l.Points <= 0 || l.Remaining < 0 || l.Remaining > l.Points {
			return &Breach{AccountID: l.AccountID, Seq: l.Seq, Problem: fmt.Sprintf("lot of %d points has %d remaining", l.Points, l.Remaining)}
		}
		if !credited(l) {
			return &Breach{AccountID: l.AccountID, Seq: l.Seq, Problem: "lot names no transaction that credited its account"}
		}
		s := sums[l.AccountID]
		if s == nil {
			s = &struct{ pending, active int64 }{}
			sums[l.AccountID] = s
		}
		if l.Pending() {
			s.pending += l.Remaining
		} else {
			s.active += l.Remaining
		}
		return nil
	})
	return sums, err
}

// check holds a customer account to its lots: its pending points are its pending lots' remainders, and
// its spendable points its active lots' (none when it is overdrawn).
func (s lotSums) check(acct tally.Account, last int64) error {
	var pending, active int64
	if l := s[acct.ID]; l != nil {
		pending, active = l.pending, l.active
	}
	if acct.Pending != pending {
		return &Breach{AccountID: acct.ID, Seq: last, Problem: fmt.Sprintf("pending %d differs from its pending lots' remainders %d", acct.Pending, pending)}
	}
	if want := max(0, acct.Posted()); active != want {
		return &Breach{AccountID: acct.ID, Seq: last, Problem: fmt.Sprintf("spendable balance %d is not what its active lots hold (%d)", acct.Posted(), active)}
	}
	return nil
}

// verifyingChain reads the seal and returns the hasher to check the chains with. A ledger without a seal
// was never written with a ledger key: every hash in it must then be v1.
func verifyingChain(ctx context.Context, a tally.Auditor, key *tally.LedgerKey, rep *VerifyReport) (*tally.Chain, error) {
	seal, err := a.ChainSeal(ctx)
	switch tally.ErrorCode(err) {
	case "":
		rep.Sealed, rep.V1Through = true, seal.V1Through
	case tally.ENOTFOUND:
		// Treating every transaction as v1 lets no keyed one pass: deleting the seal hides nothing.
		seal = key.NewChainSeal(math.MaxInt64)
		rep.V1Through = math.MaxInt64
	default:
		return nil, err
	}
	c, err := tally.NewChain(key, seal)
	if err != nil {
		return nil, &Breach{AccountID: "(ledger)", Problem: "the chain seal (" + seal.String() + ") was not made with this ledger key: it was altered, or the key is not the ledger's"}
	}
	return c, nil
}

// chain is what Verify knows of one account's hash chain while reading it.
type chain struct {
	head  string // the newest hash
	count int64  // transactions read
	last  int64  // the newest seq
}

func chainLast(m map[string]*chain, id string) int64 {
	if c := m[id]; c != nil {
		return c.last
	}
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
