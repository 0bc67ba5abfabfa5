package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	sqlitedriver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/tally-ledger/tally"
)

// resultCode returns the SQLite result code carried by err (extended codes are on), or 0.
func resultCode(err error) int {
	var e *sqlitedriver.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

// isBusy reports whether err is SQLite's "database is locked": another connection holds the lock past
// busy_timeout. The transaction that met it is rolled back and can be tried again.
func isBusy(err error) bool {
	switch resultCode(err) & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// isTransient reports whether err is a fault of the file or the machine rather than of the statement:
// worth a 503 and a retry later.
func isTransient(err error) bool {
	switch resultCode(err) & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_FULL, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL:
		return true
	}
	return errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone)
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// storeErr maps an error of the driver to the store's vocabulary: context errors and domain errors pass
// through, transient faults become EUNAVAILABLE, anything else stays an internal error.
func storeErr(err error) error {
	var te *tally.Error
	switch {
	case err == nil, isContextErr(err), errors.As(err, &te):
		return err
	case isTransient(err):
		return tally.Unavailable(err, "database")
	}
	return err
}

// wrap is storeErr with the operation named, for internal errors.
func wrap(err error, op string) error {
	err = storeErr(err)
	if err == nil || isContextErr(err) || tally.ErrorCode(err) != tally.EINTERNAL {
		return err
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

// transactionConflict turns a unique violation on insert into ECONFLICT, naming what was reused.
func transactionConflict(err error, t *tally.Transaction) error {
	switch resultCode(err) {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
	default:
		return nil
	}
	msg := err.Error()
	var e *tally.Error
	switch {
	case strings.Contains(msg, "transactions.channel"), strings.Contains(msg, "transactions.idempotency_key"):
		e = tally.Errorf(tally.ECONFLICT, "idempotency key %q is already used on channel %q",
			t.IdempotencyKey, t.Channel)
	case strings.Contains(msg, "transactions.reverses_seq"):
		e = tally.Errorf(tally.ECONFLICT, "transaction %d is already reversed", t.ReversesSeq)
	case strings.Contains(msg, "transactions.seq"):
		e = tally.Errorf(tally.ECONFLICT, "ledger sequence %d is already used", t.Seq)
	default:
		return nil
	}
	e.Err = err
	return e
}

// checkViolation turns a failed CHECK constraint into EINVALID naming what was out of range, except the
// balance constraint: a customer balance below zero is an invariant of the ledger broken, EINTERNAL.
// SQLite names the failed constraint only in its message.
func checkViolation(err error, what string) error {
	if resultCode(err) != sqlite3.SQLITE_CONSTRAINT_CHECK {
		return nil
	}
	if strings.Contains(err.Error(), tally.BalanceConstraint) {
		return tally.InvariantViolated(tally.NegativeBalance, err)
	}
	return &tally.Error{Code: tally.EINVALID, Message: what + " is out of range", Err: err}
}

// isUniqueViolation reports whether err is a violated UNIQUE or PRIMARY KEY constraint.
func isUniqueViolation(err error) bool {
	switch resultCode(err) {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}
