// Package linearizability records concurrent histories of balance reads, accruals and redemptions made
// through Tally's HTTP API and checks them with porcupine against a sequential model of an account.
//
// The model is one customer's balance. An accrual adds its amount; a redemption subtracts its amount
// when the balance covers it and is refused otherwise, leaving the balance as it was; a read returns the
// balance. Every write's answer carries the balance it left (a refusal, the balance it was decided on),
// and the model checks those too, so a lost update shows even without a read in between.
//
// An operation whose answer was lost (a timeout, a 503, a 500) may or may not have been applied. The
// recorder first asks again with the same idempotency key, which returns the remembered outcome or
// decides the write then: either way it is one operation, whose interval runs from the first call to
// the answer of the retry. One that still has no answer is recorded as possibly applied, with no return
// (porcupine: a return after everything else), and the model lets it have happened or not.
package linearizability

import (
	"fmt"
	"time"

	"github.com/anishathalye/porcupine"
)

// Kind is what an operation does to an account.
type Kind int

// The operations of the model.
const (
	Read Kind = iota
	Accrue
	Redeem
)

func (k Kind) String() string {
	switch k {
	case Read:
		return "read"
	case Accrue:
		return "accrue"
	case Redeem:
		return "redeem"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Input is an operation on one customer's account.
type Input struct {
	Customer string
	Kind     Kind
	Amount   int64 // points accrued or redeemed; 0 for a read
}

// Outcome is what became of an operation.
type Outcome int

// The outcomes.
const (
	Applied Outcome = iota // a write applied, or a read answered
	Refused                // a redemption refused for insufficient points
	Unknown                // the answer was lost: the write may or may not have been applied
)

func (o Outcome) String() string {
	return [...]string{"applied", "refused", "unknown"}[o]
}

// Output is the answer of an operation.
type Output struct {
	Outcome Outcome
	// Balance is the balance read, the balance a write left, or the balance a refusal was decided on,
	// when BalanceKnown.
	Balance      int64
	BalanceKnown bool
}

// Model is the sequential specification of an account, partitioned by customer (accounts are
// independent, so a history is linearizable when each customer's part is).
var Model = porcupine.NondeterministicModel{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		var order []string
		by := map[string][]porcupine.Operation{}
		for _, op := range history {
			c := op.Input.(Input).Customer
			if _, ok := by[c]; !ok {
				order = append(order, c)
			}
			by[c] = append(by[c], op)
		}
		parts := make([][]porcupine.Operation, 0, len(order))
		for _, c := range order {
			parts = append(parts, by[c])
		}
		return parts
	},
	Init: func() []any { return []any{int64(0)} },
	Step: func(state, input, output any) []any {
		return step(state.(int64), input.(Input), output.(Output))
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(Input), output.(Output)
		s := in.Kind.String()
		if in.Kind != Read {
			s += fmt.Sprintf("(%d)", in.Amount)
		}
		s += " → " + out.Outcome.String()
		if out.BalanceKnown {
			s += fmt.Sprintf(", balance %d", out.Balance)
		}
		return in.Customer + ": " + s
	},
	DescribeState: func(state any) string { return fmt.Sprintf("balance %d", state.(int64)) },
}

// step returns the balances an account can have after the operation, none when the answer is impossible
// from this balance.
func step(balance int64, in Input, out Output) []any {
	shows := func(b int64) bool { return !out.BalanceKnown || out.Balance == b }
	var next []any
	switch in.Kind {
	case Read:
		if out.Outcome == Applied && shows(balance) {
			next = append(next, balance)
		}
	case Accrue:
		switch out.Outcome {
		case Applied:
			if shows(balance + in.Amount) {
				next = append(next, balance+in.Amount)
			}
		case Unknown:
			next = append(next, balance, balance+in.Amount)
		}
		// An accrual is never refused for want of points.
	case Redeem:
		covered := balance >= in.Amount
		switch out.Outcome {
		case Applied:
			if covered && shows(balance-in.Amount) {
				next = append(next, balance-in.Amount)
			}
		case Refused:
			if !covered && shows(balance) {
				next = append(next, balance)
			}
		case Unknown:
			next = append(next, balance)
			if covered {
				next = append(next, balance-in.Amount)
			}
		}
	}
	return next
}

// Check checks a history against the model within timeout. porcupine.Unknown means the search did not
// end in time; callers treat it as a failure, since a bounded test must be able to decide its history.
func Check(history []porcupine.Operation, timeout time.Duration) (porcupine.CheckResult, porcupine.LinearizationInfo) {
	return porcupine.CheckOperationsVerbose(Model.ToModel(), history, timeout)
}
