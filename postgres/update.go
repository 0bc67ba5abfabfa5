package postgres

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tally-ledger/tally"
)

// maxAttempts bounds how often Update runs fn when the database reports a serialization failure or a
// deadlock. Writers lock rows in one global order, so such failures are rare and a retry usually wins.
const maxAttempts = 5

// Update runs fn in one READ COMMITTED transaction and commits it, running it again after a
// serialization failure or a deadlock. An error fn returns is returned as is after rollback. When every
// attempt loses, Update returns EUNAVAILABLE: contention is transient.
func (db *DB) Update(ctx context.Context, fn func(ctx context.Context, tx tally.WriteTx) error) error {
	for attempt := 1; ; attempt++ {
		retry, err := db.updateOnce(ctx, fn)
		db.dropIfReadOnly(err)
		if !retry {
			return err
		}
		if attempt == maxAttempts {
			return tally.Unavailable(err, "database")
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return err
		}
	}
}

// updateOnce runs one attempt and reports whether it lost a race that another attempt may win.
func (db *DB) updateOnce(ctx context.Context, fn func(ctx context.Context, tx tally.WriteTx) error) (retry bool, err error) {
	pgtx, err := db.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return false, classify(ctx, "begin", err)
	}
	done := false
	defer func() {
		if !done { // fn panicked
			rollback(ctx, pgtx)
		}
	}()

	w := &writeTx{tx: pgtx, unlockedAccounts: db.unlockedAccounts}
	err = fn(ctx, w)
	if err == nil {
		err = w.flush(ctx) // the deferred writes
	}
	if err != nil {
		done = true
		rollback(ctx, pgtx)
		// w.retry also catches a deadlock that fn wrapped beyond recognition.
		if ctx.Err() == nil && (w.retry || isRetryable(err)) {
			return true, err
		}
		return false, err
	}
	done = true
	if err := pgtx.Commit(ctx); err != nil {
		// fn may have swallowed a deadlock: the aborted transaction then fails to commit.
		if ctx.Err() == nil && (w.retry || isRetryable(err)) {
			return true, err
		}
		return false, classify(ctx, "commit", err)
	}
	return false, nil
}

// rollback ends a failed transaction even when ctx is already cancelled, so that the connection goes
// back to the pool clean (pgx closes it if the rollback cannot be sent).
func rollback(ctx context.Context, tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = tx.Rollback(ctx)
}

// backoff returns a jittered delay that grows with the attempt: about 2, 4, 8, 16 ms.
func backoff(attempt int) time.Duration {
	base := time.Millisecond << attempt
	return base/2 + rand.N(base)
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

// dropIfReadOnly empties the pool when a write met a read-only server: the host it is connected to was
// demoted to a standby after a failover. Every idle connection goes now and every busy one when it is
// released, so the next writes connect afresh, and a multi-host URL with target_session_attrs=read-write
// finds the new primary. The write itself is EUNAVAILABLE (25006 is transient), a 503 to retry.
func (db *DB) dropIfReadOnly(err error) {
	if code, _ := pgCode(err); code == codeReadOnly {
		db.pool.Reset()
	}
}
