package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/tally-ledger/tally"
	"github.com/tally-ledger/tally/postgres/pgtest"
)

// TestBadTextBackstop: text that reaches SQL by a path that does not check it (the write path trusts the
// ledger's validation) is still the caller's EINVALID, not an internal error, and the transaction rolls
// back.
func TestBadTextBackstop(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := pgtest.Open(t)
	for _, bad := range []string{"a\x00b", "a\xffb"} {
		err := db.Update(ctx, func(ctx context.Context, tx tally.WriteTx) error {
			_, err := tx.ClaimOutcomes(ctx, []tally.Outcome{{OutcomeKey: tally.OutcomeKey{Channel: "api", Key: bad}, RequestHash: "h", CreatedAt: time.Now()}})
			return err
		})
		if tally.ErrorCode(err) != tally.EINVALID {
			t.Errorf("claiming key %q: %v, want EINVALID", bad, err)
		}
	}
}
