package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/tally-ledger/tally"
)

func TestClassify(t *testing.T) {
	pg := func(code, msg string) error {
		return fmt.Errorf("query: %w", &pgconn.PgError{Code: code, Message: msg})
	}
	domain := tally.Errorf(tally.ENOTFOUND, "nope")
	for _, tc := range []struct {
		name string
		err  error
		want tally.Code
	}{
		{"admin shutdown", pg("57P01", "terminating connection due to administrator command"), tally.EUNAVAILABLE},
		{"shutting down", pg("57P03", "the database system is shutting down"), tally.EUNAVAILABLE},
		{"connection failure", pg("08006", "connection failure"), tally.EUNAVAILABLE},
		{"too many connections", pg("53300", "sorry, too many clients already"), tally.EUNAVAILABLE},
		{"read-only standby", pg("25006", "cannot execute INSERT in a read-only transaction"), tally.EUNAVAILABLE},
		{"refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), tally.EUNAVAILABLE},
		{"reset", fmt.Errorf("read: %w", syscall.ECONNRESET), tally.EUNAVAILABLE},
		{"eof", fmt.Errorf("receive: %w", io.ErrUnexpectedEOF), tally.EUNAVAILABLE},
		{"closed pool", puddle.ErrClosedPool, tally.EUNAVAILABLE},
		{"message only", errors.New("FATAL: the database system is shutting down"), tally.EUNAVAILABLE},
		{"unique violation", pg("23505", "duplicate key"), tally.EINTERNAL},
		{"deadlock", pg("40P01", "deadlock detected"), tally.EINTERNAL},
		{"syntax", pg("42601", "syntax error"), tally.EINTERNAL},
		{"NUL in text", pg("22021", `invalid byte sequence for encoding "UTF8": 0x00`), tally.EINVALID},
		{"NUL escape in jsonb", pg("22P05", "unsupported Unicode escape sequence"), tally.EINVALID},
		{"domain", domain, tally.ENOTFOUND},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := classify(context.Background(), "op", tc.err)
			if got := tally.ErrorCode(err); got != tc.want {
				t.Errorf("classify(%v) code = %q, want %q", tc.err, got, tc.want)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("classify(%v) = %v, which hides the cause", tc.err, err)
			}
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := classify(ctx, "op", fmt.Errorf("timeout: %w", context.Canceled)); err != context.Canceled {
		t.Errorf("cancelled: %v, want context.Canceled as is", err)
	}
	if err := classify(context.Background(), "op", nil); err != nil {
		t.Errorf("nil: %v", err)
	}
}

func TestIsRetryable(t *testing.T) {
	for code, want := range map[string]bool{"40001": true, "40P01": true, "23505": false, "57P01": false} {
		if got := isRetryable(fmt.Errorf("x: %w", &pgconn.PgError{Code: code})); got != want {
			t.Errorf("isRetryable(%s) = %v, want %v", code, got, want)
		}
	}
}
