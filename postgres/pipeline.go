package postgres

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// A write transaction defers the statements whose results the ledger does not read (inserts, updates,
// deletes) and sends them in one pipelined round trip with the next read, or just before COMMIT. A
// batch of a hundred writes then costs a handful of round trips instead of one per statement. An error
// of a deferred statement surfaces from that read or from Update, which the ledger treats alike: the
// whole attempt fails.

// deferred is one statement waiting to be sent.
type deferred struct {
	op   string // names it in errors
	sql  string
	args []any
	// mapErr, when set, turns the statement's error into a domain error first.
	mapErr func(error) error
	// check, when set, judges the statement's result: how many rows it touched is known only here, when
	// the result is read, and not when the statement is deferred.
	check func(pgconn.CommandTag) error
}

// exec defers a statement.
func (w *writeTx) exec(op, sql string, args ...any) {
	w.pending = append(w.pending, deferred{op: op, sql: sql, args: args})
}

// query sends the deferred statements and then sql in one round trip and returns sql's rows. The rows
// must be closed.
func (w *writeTx) query(ctx context.Context, op, sql string, args ...any) (pgx.Rows, error) {
	if len(w.pending) == 0 {
		rows, err := w.tx.Query(ctx, sql, args...)
		if err != nil {
			return nil, w.fail(ctx, op, err)
		}
		return rows, nil
	}
	b := w.batch()
	b.Queue(sql, args...)
	br := w.tx.SendBatch(ctx, b)
	if err := w.drain(ctx, br); err != nil {
		br.Close()
		return nil, err
	}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return nil, w.fail(ctx, op, err)
	}
	return &batchRows{Rows: rows, br: br}, nil
}

// flush sends the deferred statements.
func (w *writeTx) flush(ctx context.Context) error {
	if len(w.pending) == 0 {
		return nil
	}
	br := w.tx.SendBatch(ctx, w.batch())
	err := w.drain(ctx, br)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = w.fail(ctx, "flush", cerr)
	}
	return err
}

// batch queues the deferred statements (and forgets them).
func (w *writeTx) batch() *pgx.Batch {
	b := &pgx.Batch{}
	for _, d := range w.pending {
		b.Queue(d.sql, d.args...)
	}
	return b
}

// drain reads the results of the deferred statements, in order, and returns the first error.
func (w *writeTx) drain(ctx context.Context, br pgx.BatchResults) error {
	pending := w.pending
	w.pending = nil
	for _, d := range pending {
		tag, err := br.Exec()
		if err != nil {
			if d.mapErr != nil {
				if mapped := d.mapErr(err); mapped != nil {
					w.fail(ctx, d.op, err) // records a retryable failure
					return mapped
				}
			}
			return w.fail(ctx, d.op, err)
		}
		if d.check != nil {
			if err := d.check(tag); err != nil {
				return err
			}
		}
	}
	return nil
}

// batchRows closes the batch with the rows.
type batchRows struct {
	pgx.Rows
	br pgx.BatchResults
}

func (r *batchRows) Close() {
	r.Rows.Close()
	r.br.Close()
}
