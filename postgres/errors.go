package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/tally-ledger/tally"
)

// SQLSTATE codes this adapter acts on.
const (
	codeUniqueViolation      = "23505"
	codeCheckViolation       = "23514"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeReadOnly             = "25006" // read_only_sql_transaction: the server is (now) a standby
	// The caller's text, not the database: a NUL or a byte that is not UTF-8 (character_not_in_repertoire),
	// or a \u0000 escape where jsonb would hold it (untranslatable_character).
	codeBadText        = "22021"
	codeUntranslatable = "22P05"
)

// classify turns an error from pgx into what the Store contract promises: context cancellation as is,
// domain errors as is, transient faults as EUNAVAILABLE, anything else wrapped with the operation name
// (an internal error for the caller).
func classify(ctx context.Context, op string, err error) error {
	if err == nil {
		return nil
	}
	var domain *tally.Error
	if errors.As(err, &domain) {
		return err
	}
	// A cancelled or expired caller context surfaces from pgx as many different errors (a timeout, a
	// cancelled query, a closed connection); the caller wants to see its own context error.
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if isTransient(err) {
		return tally.Unavailable(fmt.Errorf("postgres: %s: %w", op, err), "database")
	}
	// Every route checks text before it reaches SQL (tally.CheckText); this is the backstop for one that
	// does not, so that bad text is the caller's 422, not a 500.
	if code, _ := pgCode(err); code == codeBadText || code == codeUntranslatable {
		return &tally.Error{Code: tally.EINVALID, Message: "text is not valid UTF-8 or holds a NUL character", Err: fmt.Errorf("postgres: %s: %w", op, err)}
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// isTransient reports whether err is a fault of the database or the path to it that may go away by
// itself: the server cannot be reached, the connection broke, the server is shutting down or starting
// up, it has too many connections, or it is a read-only standby after a failover.
func isTransient(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"): // connection exception
			return true
		case pgErr.Code == "57P01", // admin_shutdown
			pgErr.Code == "57P02", // crash_shutdown
			pgErr.Code == "57P03", // cannot_connect_now: starting up, shutting down, in recovery
			pgErr.Code == "53300", // too_many_connections
			pgErr.Code == codeReadOnly:
			return true
		}
		return false
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true
	}
	if pgconn.Timeout(err) {
		return true
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, puddle.ErrClosedPool) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "the database system is shutting down") ||
		strings.Contains(msg, "the database system is starting up") ||
		strings.Contains(msg, "conn closed")
}

// isRetryable reports whether the transaction lost a race that running it again can win.
func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == codeSerializationFailure || pgErr.Code == codeDeadlockDetected
	}
	return false
}

// pgCode returns the SQLSTATE of err and the constraint it names, if err came from the server.
func pgCode(err error) (code, constraint string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code, pgErr.ConstraintName
	}
	return "", ""
}

// checkViolation turns a failed CHECK constraint into EINVALID naming what was out of range (what is
// called only then), except the balance constraint: a customer balance below zero is an invariant of
// the ledger broken, EINTERNAL. It returns nil for any other error.
func checkViolation(err error, what func() string) error {
	code, constraint := pgCode(err)
	switch {
	case code != codeCheckViolation:
		return nil
	case constraint == tally.BalanceConstraint:
		return tally.InvariantViolated(tally.NegativeBalance, err)
	}
	return &tally.Error{Code: tally.EINVALID, Message: what() + " is out of range", Err: err}
}
