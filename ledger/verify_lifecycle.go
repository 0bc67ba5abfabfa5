package ledger

import (
	"context"
	"fmt"
	"sort"

	"github.com/tally-ledger/tally"
)

// creditIndex finds the account chain of each crediting transaction by its seq: every lot must be one
// (the database keeps no foreign key from lots to transactions, so Verify does). 16 bytes a credit.
type creditIndex []struct {
	seq   int64
	chain *chain
}

func (x *creditIndex) add(seq int64, c *chain) {
	*x = append(*x, struct {
		seq   int64
		chain *chain
	}{seq, c})
}

func (x creditIndex) sort() { sort.Slice(x, func(i, j int) bool { return x[i].seq < x[j].seq }) }

// of returns the chain of the credit numbered seq, nil when no transaction credited by that number.
func (x creditIndex) of(seq int64) *chain {
	i := sort.Search(len(x), func(i int) bool { return x[i].seq >= seq })
	if i < len(x) && x[i].seq == seq {
		return x[i].chain
	}
	return nil
}

// checkAccrualRules holds every rule line (which rule version paid what of an accrual) to an accrual: the
// database keeps no foreign key from accrual_rules to transactions, so Verify does.
func checkAccrualRules(ctx context.Context, a tally.Auditor) error {
	return a.StrayAccrualRules(ctx, func(seq int64, rule, account string, kind tally.Kind) error {
		if account == "" {
			return &Breach{AccountID: "(ledger)", Seq: seq, Problem: fmt.Sprintf("earning rule %q is recorded as paying transaction %d, which does not exist", rule, seq)}
		}
		return &Breach{AccountID: account, Seq: seq, Problem: fmt.Sprintf("earning rule %q is recorded as paying a %s, not an accrual", rule, kind)}
	})
}

// checkQualifyingBounds holds every customer account's qualifying bound to its accruals: an accrual sums
// a customer's qualifying window only when the bound could reach a higher tier, so a bound below the
// points it bounds would let tier upgrades be missed.
func checkQualifyingBounds(ctx context.Context, a tally.Auditor, chains map[string]*chain) error {
	return a.QualifyingShortfalls(ctx, func(account string, bound, points int64) error {
		return &Breach{AccountID: account, Seq: chainLast(chains, account), Problem: fmt.Sprintf(
			"qualifying bound %d is below the %d qualifying points it bounds: tier upgrades could be missed", bound, points)}
	})
}
