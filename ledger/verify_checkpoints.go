package ledger

import (
	"context"
	"fmt"
	"sort"

	"github.com/tally-ledger/tally"
)

// headIndex holds the account heads that checkpoints recorded, for Verify to find in the chains. A
// recorded head is authenticated by its checkpoint's signed root; Verify checks the heads against the
// chains first, so that a breach names the account, and the roots last.
type headIndex struct {
	byAccount map[string][]recordedHead // in the order recorded
	rootErr   error                     // the first checkpoint whose recorded heads do not match its root
}

type recordedHead struct {
	checkpoint int64
	tally.Head
}

// recordedHeads checks the checkpoints' signatures, replays the heads recorded in the database up to
// the newest checkpoint, and compares the tree they build with each checkpoint's signed root.
func recordedHeads(ctx context.Context, a tally.Auditor, opts VerifyOptions, rep *VerifyReport) (*headIndex, error) {
	idx := &headIndex{byAccount: map[string][]recordedHead{}}
	erasures, err := a.Erasures(ctx)
	if err != nil {
		return nil, err
	}
	// The roots of checkpoints taken before an erasure commit to the forgotten id, which the recorded
	// heads no longer hold: those roots cannot be recomputed. Their heads are still checked against the
	// chains, and the first checkpoint taken after the erasure commits to the re-keyed heads.
	excused, err := excusedRoots(erasures, opts.Key)
	if err != nil {
		return nil, err
	}
	rep.Erasures = len(erasures)
	if len(opts.Checkpoints) == 0 {
		return idx, nil
	}
	cps := append([]tally.Checkpoint(nil), opts.Checkpoints...)
	sort.SliceStable(cps, func(i, j int) bool { return cps[i].No < cps[j].No })
	for i, c := range cps {
		if !opts.Key.VerifyCheckpoint(c) {
			return nil, &Breach{AccountID: "(checkpoints)", Checkpoint: c.No,
				Problem: "the signature does not verify under the ledger key: the checkpoint was altered or not written by this ledger"}
		}
		if i > 0 && cps[i-1].No == c.No && cps[i-1] != c {
			return nil, &Breach{AccountID: "(checkpoints)", Checkpoint: c.No, Problem: "two different checkpoints carry this number"}
		}
	}
	tree := tally.NewHeadTree()
	next := 0 // the first checkpoint not compared yet
	compareUpTo := func(no int64) {
		for next < len(cps) && cps[next].No < no {
			c := cps[next]
			next++
			if c.No <= excused {
				rep.ErasedRoots++
				continue
			}
			if idx.rootErr != nil {
				continue
			}
			if tree.Root() != c.Root || tree.Accounts() != c.Accounts || tree.Transactions() != c.Transactions {
				idx.rootErr = &Breach{AccountID: "(ledger)", Checkpoint: c.No, Problem: fmt.Sprintf(
					"the heads recorded in the database (%d accounts, %d transactions) do not match the checkpoint's signed root (%d accounts, %d transactions): recorded heads were altered or deleted",
					tree.Accounts(), tree.Transactions(), c.Accounts, c.Transactions)}
			}
		}
	}
	last := cps[len(cps)-1].No
	err = a.ScanRecordedHeads(ctx, last, func(no int64, h tally.Head) error {
		compareUpTo(no)
		tree.Put(h)
		idx.byAccount[h.AccountID] = append(idx.byAccount[h.AccountID], recordedHead{checkpoint: no, Head: h})
		return nil
	})
	if err != nil {
		return nil, err
	}
	compareUpTo(last + 1)
	rep.Checkpoints, rep.LastCheckpoint = len(cps), last
	return idx, nil
}

// check compares the state of an account after its n-th transaction with every head recorded at n.
func (x *headIndex) check(account string, n int64, hash string, balance, seq int64) error {
	for _, r := range x.byAccount[account] {
		if r.Version != n {
			continue
		}
		if r.Hash != hash {
			return &Breach{AccountID: account, Seq: seq, Checkpoint: r.checkpoint,
				Problem: fmt.Sprintf("transaction #%d of this account is not the one the checkpoint recorded: the chain was rewritten", n)}
		}
		if r.Balance != balance {
			return &Breach{AccountID: account, Seq: seq, Checkpoint: r.checkpoint,
				Problem: fmt.Sprintf("the balance after transaction #%d is %d, the checkpoint recorded %d", n, balance, r.Balance)}
		}
	}
	return nil
}

// checkCovered finds accounts whose chains are shorter than a checkpoint recorded them: their newest
// transactions were deleted (and the balance rolled back) since.
func (x *headIndex) checkCovered(chains map[string]*chain) error {
	for _, id := range sortedKeys(x.byAccount) {
		var count, last int64
		if c := chains[id]; c != nil {
			count, last = c.count, c.last
		}
		for _, r := range x.byAccount[id] {
			if r.Version > count {
				return &Breach{AccountID: id, Seq: last, Checkpoint: r.checkpoint, Problem: fmt.Sprintf(
					"the checkpoint covered %d transactions of this account, the ledger now holds %d: transactions were deleted", r.Version, count)}
			}
		}
	}
	return nil
}

// checkAccountsExist finds accounts a checkpoint covered that are gone, then reports a root mismatch.
func (x *headIndex) checkAccountsExist(seen map[string]bool) error {
	for _, id := range sortedKeys(x.byAccount) {
		if !seen[id] {
			return &Breach{AccountID: id, Checkpoint: x.byAccount[id][0].checkpoint, Problem: "the checkpoint covered this account, which no longer exists"}
		}
	}
	return x.rootErr
}
