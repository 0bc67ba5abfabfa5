package tally

import (
	"errors"
	"fmt"
)

// Code is a stable, machine-readable error code. The HTTP layer maps codes to statuses in one table.
type Code string

// The error vocabulary.
const (
	EINVALID      Code = "invalid"              // a value is out of range or malformed
	ENOTFOUND     Code = "not_found"            // the account, transaction or reward does not exist
	ECONFLICT     Code = "conflict"             // a generic conflict with current state
	EVERSION      Code = "version_conflict"     // the caller's balance_version is stale
	EIDEMPOTENCY  Code = "idempotency_conflict" // the key was used before with a different request
	EINSUFFICIENT Code = "insufficient_points"  // the balance does not cover the debit
	EFROZEN       Code = "account_frozen"       // the account is frozen
	ECLOSED       Code = "account_closed"       // the account is closed
	EALREADY      Code = "already_reversed"     // the transaction has been reversed before
	EOUTOFSTOCK   Code = "out_of_stock"         // the reward has no unit (or coupon code) left
	ECOSTCHANGED  Code = "cost_changed"         // the caller's point_cost is not the reward's current cost
	ETIER         Code = "tier_too_low"         // the customer's tier does not reach the reward's
	EUNAUTHORIZED Code = "unauthorized"
	EFORBIDDEN    Code = "forbidden"
	ETOOLARGE     Code = "too_large"
	EOVERLOADED   Code = "overloaded"  // shed by admission control; try later
	EUNAVAILABLE  Code = "unavailable" // a transient store fault; try later
	EINTERNAL     Code = "internal"
)

// Error is a domain error: a code and a message safe to show to the caller. Err, when set, is the
// underlying cause, for logs only.
type Error struct {
	Code    Code
	Message string
	Err     error
	// Details are numbers the caller needs to act on the refusal (a current balance, a current cost),
	// shown beside the message.
	Details map[string]int64
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Unavailable wraps a transient fault of a dependency.
func Unavailable(err error, what string) *Error {
	return &Error{Code: EUNAVAILABLE, Message: what + " is unavailable", Err: err}
}

// InvariantViolated is the error of a write the store refused because it would break an invariant of the
// ledger that the database also guards (a customer balance below zero). The ledger decides every write
// against locked balances before writing, so the refusal means its logic is broken: an internal error,
// logged, never a refusal the caller could fix (that one is EINSUFFICIENT, decided before the write).
// Both stores answer it alike, naming the invariant in Message.
func InvariantViolated(what string, cause error) *Error {
	return &Error{Code: EINTERNAL, Message: "ledger invariant violated: " + what, Err: cause}
}

// Invariants the stores' constraints guard, as InvariantViolated names them.
const (
	// BalanceConstraint is the name of the CHECK constraint, in both stores' schemas, that keeps customer
	// balances at zero or above.
	BalanceConstraint = "accounts_customer_balance_nonnegative"
	// NegativeBalance is what breaking BalanceConstraint means.
	NegativeBalance = "a customer balance would go below zero"
)

// ErrorCode returns the code of err, EINTERNAL for an error that carries none, "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the message of err that is safe to show, hiding the details of internal errors.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

// Remembered reports whether an outcome with this code is a business answer that idempotency must
// remember, so that a retry with the same key gets it again. Conflicts of version are not: the caller
// is expected to re-read and retry with the same key. Transient faults are never remembered.
func (c Code) Remembered() bool {
	switch c {
	case EINSUFFICIENT, EFROZEN, ECLOSED, ENOTFOUND, EALREADY, EINVALID, EOUTOFSTOCK, ETIER:
		return true
	}
	return false
}
