package ledger

import (
	"context"
	"fmt"
	"sort"

	"github.com/tally-ledger/tally"
)

// Breach is the first inconsistency Verify found: the account and, where one is to blame, the
// transaction.
type Breach struct {
	AccountID string
	Seq       int64
	Problem   string
}

func (b *Breach) Error() string {
	if b.Seq != 0 {
		return fmt.Sprintf("account %s, transaction %d: %s", b.AccountID, b.Seq, b.Problem)
	}
	return fmt.Sprintf("account %s: %s", b.AccountID, b.Problem)
}

// VerifyReport counts what Verify checked.
type VerifyReport struct {
	Accounts     int64 `json:"accounts"`
	Transactions int64 `json:"transactions"`
	Postings     int64 `json:"postings"`
}

// Verify audits the whole ledger offline: it recomputes every account's hash chain, checks that every
// transaction sums to zero, that sequence numbers are unique and increase along each chain, that each
// account's balance and version match its postings and transactions, and that all balances sum to zero.
// It returns a *Breach naming the first problem. progress, when set, is called as transactions are read.
func Verify(ctx context.Context, a tally.Auditor, progress func(done, total int64)) (VerifyReport, error) {
	var rep VerifyReport
	total, err := a.CountTransactions(ctx)
	if err != nil {
		return rep, err
	}
	chains := map[string]*chain{}
	sums := map[string]int64{}
	seqs := make([]int64, 0, total)
	err = a.ScanTransactions(ctx, func(t tally.Transaction) error {
		rep.Transactions++
		c := chains[t.AccountID]
		if c == nil {
			c = &chain{}
			chains[t.AccountID] = c
		}
		if t.Seq <= c.last {
			return &Breach{t.AccountID, t.Seq, fmt.Sprintf("sequence number does not increase (follows %d)", c.last)}
		}
		if !t.Kind.Valid() {
			return &Breach{t.AccountID, t.Seq, fmt.Sprintf("unknown kind %q", t.Kind)}
		}
		if len(t.Postings) < 2 {
			return &Breach{t.AccountID, t.Seq, fmt.Sprintf("has %d postings, needs at least 2", len(t.Postings))}
		}
		var sum int64
		for _, p := range t.Postings {
			sum += p.Amount
			sums[p.AccountID] += p.Amount
			rep.Postings++
		}
		if sum != 0 {
			return &Breach{t.AccountID, t.Seq, fmt.Sprintf("postings sum to %d, not 0", sum)}
		}
		h, err := tally.ChainHash(c.head, &t)
		if err != nil || h != t.Hash {
			return &Breach{t.AccountID, t.Seq, "hash does not match the transaction and the chain before it"}
		}
		c.head, c.last = h, t.Seq
		c.count++
		seqs = append(seqs, t.Seq)
		if progress != nil && rep.Transactions%10000 == 0 {
			progress(rep.Transactions, total)
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	if progress != nil {
		progress(rep.Transactions, total)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for i := 1; i < len(seqs); i++ {
		if seqs[i] == seqs[i-1] {
			return rep, &Breach{"(ledger)", seqs[i], "sequence number is used twice"}
		}
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
			return &Breach{acct.ID, c.last, fmt.Sprintf("balance %d differs from its postings' sum %d", acct.Balance, sums[acct.ID])}
		}
		if tally.IsSystemAccount(acct.ID) {
			return nil
		}
		if acct.LastTxHash != c.head {
			return &Breach{acct.ID, c.last, "last_tx_hash is not the head of its chain"}
		}
		if acct.BalanceVersion != c.count {
			return &Breach{acct.ID, c.last, fmt.Sprintf("balance_version %d differs from its %d transactions", acct.BalanceVersion, c.count)}
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	for id, c := range chains {
		if !seen[id] {
			return rep, &Breach{id, c.last, "transactions name an account that does not exist"}
		}
	}
	for id := range sums {
		if !seen[id] {
			return rep, &Breach{id, chainLast(chains, id), "postings name an account that does not exist"}
		}
	}
	if total0 != 0 {
		return rep, &Breach{"(ledger)", 0, fmt.Sprintf("balances over all accounts sum to %d, not 0", total0)}
	}
	return rep, nil
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
