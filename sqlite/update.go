package sqlite

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"time"

	"github.com/tally-ledger/tally"
)

// Update runs fn in one write transaction (BEGIN IMMEDIATE) and commits it. When another process holds
// the file's write lock past busy_timeout, Update rolls back and calls fn again, up to a bounded number
// of attempts, then returns EUNAVAILABLE. Context errors are returned as they are, and so is any other
// error of fn, after rollback.
//
// fn must not call Update, PutReward or PurgeOutcomes: the one write connection is in use.
func (db *DB) Update(ctx context.Context, fn func(ctx context.Context, tx tally.WriteTx) error) error {
	return db.write(ctx, func(tx *sql.Tx) error {
		return fn(ctx, &writeTx{tx: tx})
	})
}

// write is the retry loop of every write.
func (db *DB) write(ctx context.Context, fn func(*sql.Tx) error) error {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := db.writeOnce(ctx, fn)
		if err == nil || isContextErr(err) || !isBusy(err) {
			return err
		}
		if attempt >= db.maxAttempts {
			if tally.ErrorCode(err) == tally.EUNAVAILABLE {
				return err
			}
			return tally.Unavailable(err, "database")
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return err
		}
	}
}

func (db *DB) writeOnce(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.writer.BeginTx(ctx, nil)
	if err != nil {
		return wrap(err, "begin")
	}
	defer tx.Rollback() // after Commit, a no-op
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			// database/sql rolled the transaction back when ctx ended.
			return ctxErr
		}
		return wrap(err, "commit")
	}
	return nil
}

// backoff is the pause before attempt+1: growing, capped, jittered so that processes do not retry in
// step. SQLite's busy_timeout has already waited before the attempt failed.
func backoff(attempt int) time.Duration {
	d := min(time.Millisecond<<min(attempt, 7), 100*time.Millisecond)
	return d/2 + rand.N(d/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
