package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"time"

	"github.com/tally-ledger/tally"
)

// Forget erases a customer (the right to erasure): the account keyed by the customer hash account is
// re-keyed to a random pseudonym, so that the raw id, hashed again, finds nothing. Balances, versions and
// every transaction stay; the account's chain is hashed again under the ledger key with the pseudonym in
// place of the hash (the chain covers account ids), after checking that the chain as it stands verifies,
// so that an erasure never launders a tampered chain. The heads that checkpoints recorded for the account
// are rewritten to match; the erasure record (actor, reason, time, the pseudonym, never the old id) tells
// Verify and TakeCheckpoint that the signed roots of checkpoints taken before it commit to an id no longer
// in the ledger.
//
// EINVALID for a malformed account, or a missing actor or reason; ENOTFOUND when no account has this hash:
// the customer never had one, or was forgotten already (a forgotten customer cannot be found by its id, so
// the two cannot be told apart, by design). EINTERNAL when the account's chain does not verify.
func (s *Service) Forget(ctx context.Context, account, actor, reason string) (tally.Erasure, error) {
	if !tally.IsCustomerHash(account) {
		return tally.Erasure{}, tally.Errorf(tally.EINVALID, "account must be a customer hash (64 lowercase hex digits)")
	}
	if err := tally.CheckText("actor", actor); err != nil || actor == "" {
		return tally.Erasure{}, tally.Errorf(tally.EINVALID, "an erasure needs an actor (who asked for it)")
	}
	if err := tally.CheckText("reason", reason); err != nil || reason == "" {
		return tally.Erasure{}, tally.Errorf(tally.EINVALID, "an erasure needs a reason")
	}
	chain, err := s.loadChain(ctx)
	if err != nil {
		return tally.Erasure{}, err
	}
	now := tally.LedgerTime(s.opts.Clock())
	return s.store.Erase(ctx, account, func(st tally.ErasureState) (tally.Rekeying, error) {
		return planRekeying(chain, s.opts.Key, st, tally.NewPseudonym(), actor, reason, now)
	})
}

// planRekeying checks the account's chain as stored, then hashes it again under newID.
func planRekeying(chain *tally.Chain, key *tally.LedgerKey, st tally.ErasureState, newID, actor, reason string, now time.Time) (tally.Rekeying, error) {
	old := st.Account.ID
	rk := tally.Rekeying{NewID: newID, Hashes: make(map[int64]string, len(st.Transactions)),
		RequestHashes: make(map[int64]string, len(st.Transactions))}
	oldHeads := make([]string, 0, len(st.Transactions)) // after the n-th transaction, at n-1
	newHeads := make([]string, 0, len(st.Transactions))
	var prevOld, prevNew string
	for _, t := range st.Transactions {
		h, err := chain.Hash(prevOld, &t)
		if err != nil || h != t.Hash {
			return rk, tally.Errorf(tally.EINTERNAL, "transaction %d of this account does not verify: nothing was changed; run 'tally verify'", t.Seq)
		}
		moved := t
		moved.AccountID = newID
		moved.RequestHash = erasedRequestHash(newID, t.Seq)
		moved.Postings = make([]tally.Posting, len(t.Postings))
		for i, p := range t.Postings {
			if p.AccountID == old {
				p.AccountID = newID
			}
			moved.Postings[i] = p
		}
		nh, err := chain.Hash(prevNew, &moved)
		if err != nil {
			return rk, err
		}
		rk.Hashes[t.Seq], rk.RequestHashes[t.Seq] = nh, moved.RequestHash
		prevOld, prevNew = h, nh
		oldHeads, newHeads = append(oldHeads, h), append(newHeads, nh)
	}
	if prevOld != st.Account.LastTxHash || int64(len(st.Transactions)) != st.Account.BalanceVersion {
		return rk, tally.Errorf(tally.EINTERNAL, "the account's head does not match its chain: nothing was changed; run 'tally verify'")
	}
	rk.LastTxHash = prevNew
	for _, h := range st.Heads {
		n := h.Version
		if n < 0 || n > int64(len(oldHeads)) || (n > 0 && oldHeads[n-1] != h.Hash) || (n == 0 && h.Hash != "") {
			return rk, tally.Errorf(tally.EINTERNAL, "checkpoint %d recorded a head of this account that its chain does not hold: nothing was changed; run 'tally verify'", h.Checkpoint)
		}
		h.AccountID = newID
		h.Hash = ""
		if n > 0 {
			h.Hash = newHeads[n-1]
		}
		rk.Heads = append(rk.Heads, h)
	}
	e := tally.Erasure{
		AccountID: newID, Actor: actor, Reason: reason, Transactions: int64(len(st.Transactions)),
		CheckpointThrough: st.LastCheckpoint, ErasedAt: now,
	}
	key.SealErasure(&e)
	rk.Erasure = e
	return rk, nil
}

// excusedRoots returns the newest checkpoint whose signed root an erasure re-keyed away (0 when none),
// after checking every erasure record's seal: a record that does not verify is a breach, since inventing
// one would excuse altered checkpoints.
func excusedRoots(erasures []tally.Erasure, key *tally.LedgerKey) (int64, error) {
	var through int64
	for _, e := range erasures {
		if !key.VerifyErasure(e) {
			return 0, &Breach{AccountID: e.AccountID, Problem: fmt.Sprintf("erasure record %d is not sealed by the ledger key: it was altered or forged", e.No)}
		}
		through = max(through, e.CheckpointThrough)
	}
	return through, nil
}

// erasedRequestHash stands in for the request hash of a forgotten account's transaction: derived from
// the pseudonym alone, it matches no request a caller can send.
func erasedRequestHash(newID string, seq int64) string {
	sum := sha256.Sum256([]byte("tally-erased-request-v1\n" + newID + "\n" + strconv.FormatInt(seq, 10)))
	return hex.EncodeToString(sum[:])
}
