package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tally-ledger/tally"
)

// ErrUnchanged is returned by TakeCheckpoint, when asked to skip an unchanged ledger, if no account
// head changed since the previous checkpoint.
var ErrUnchanged = errors.New("no account changed since the previous checkpoint")

// TakeCheckpoint computes a signed digest of the ledger head: every customer account's head (version,
// newest hash, balance) in a HeadTree, the highest transaction number and the number of transactions
// covered, numbered after the previous checkpoint and signed with the ledger key. It records in the
// store the heads that changed since they were last recorded, so that a later audit can name an account
// whose chain no longer matches; the caller writes the returned checkpoint outside the database.
//
// A head that went backwards (fewer transactions than recorded, or the same number with another hash or
// balance) means the database was altered since the last checkpoint: TakeCheckpoint then records
// nothing and returns a *Breach naming the account and the checkpoint that recorded it. prev, when
// given, is the newest checkpoint kept outside the database: the database must still hold it, and when
// it is the database's newest, the heads recorded there must still hash to its signed root.
func TakeCheckpoint(ctx context.Context, store tally.Store, key *tally.LedgerKey, now time.Time, skipUnchanged bool, prev *tally.Checkpoint) (tally.Checkpoint, error) {
	var cp tally.Checkpoint
	err := store.Checkpoint(ctx, func(ctx context.Context, tx tally.CheckpointTx) error {
		last, err := tx.LastCheckpoint(ctx)
		if err != nil {
			return err
		}
		if prev != nil && last < prev.No {
			return &Breach{AccountID: "(ledger)", Checkpoint: prev.No, Problem: fmt.Sprintf(
				"the database's checkpoints end at %d, but checkpoint %d was taken and kept: checkpoints were deleted from the database", last, prev.No)}
		}
		maxSeq, err := tx.MaxSeq(ctx)
		if err != nil {
			return err
		}
		tree, recorded := tally.NewHeadTree(), tally.NewHeadTree()
		var changed []tally.Head
		err = tx.ScanHeads(ctx, func(cur tally.Head, rec *tally.Head) error {
			if rec != nil && *rec != cur {
				if cur.Version < rec.Version || cur.Version == rec.Version {
					return &Breach{AccountID: cur.AccountID, Checkpoint: last, Problem: fmt.Sprintf(
						"the account's head went back (now %d transactions, balance %d; recorded %d transactions, balance %d, with another hash): the database was altered",
						cur.Version, cur.Balance, rec.Version, rec.Balance)}
				}
			}
			if rec == nil || *rec != cur {
				changed = append(changed, cur)
			}
			if rec != nil {
				recorded.Put(*rec)
			}
			tree.Put(cur)
			return nil
		})
		if err != nil {
			return err
		}
		if prev != nil && last == prev.No && (recorded.Root() != prev.Root || recorded.Accounts() != prev.Accounts) {
			excused, err := erasedSince(ctx, store, key, prev.No)
			if err != nil {
				return err
			}
			if !excused {
				return &Breach{AccountID: "(ledger)", Checkpoint: prev.No, Problem: fmt.Sprintf(
					"the heads recorded in the database (%d accounts) no longer hash to checkpoint %d's signed root (%d accounts): recorded heads, or accounts, were altered or deleted", recorded.Accounts(), prev.No, prev.Accounts)}
			}
		}
		if skipUnchanged && last > 0 && len(changed) == 0 {
			return ErrUnchanged
		}
		cp = tally.Checkpoint{
			No: last + 1, CreatedAt: tally.LedgerTime(now), MaxSeq: maxSeq,
			Transactions: tree.Transactions(), Accounts: tree.Accounts(), Root: tree.Root(),
		}
		key.SignCheckpoint(&cp)
		return tx.RecordCheckpoint(ctx, cp, changed)
	})
	if err != nil {
		return tally.Checkpoint{}, err
	}
	return cp, nil
}

// erasedSince reports whether an erasure re-keyed recorded heads after checkpoint no was taken, so that
// they no longer hash to its root. An erasure takes the checkpoint lock, so any that ran before this
// checkpoint began is visible here. A record that does not verify under the key excuses nothing.
func erasedSince(ctx context.Context, store tally.Store, key *tally.LedgerKey, no int64) (bool, error) {
	erasures, err := store.Erasures(ctx)
	if err != nil {
		return false, err
	}
	through, err := excusedRoots(erasures, key)
	return err == nil && through >= no, nil
}
